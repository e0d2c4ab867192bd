"""make chaos-hosts' TCP relay in the root namespace: each host's end of its veth links forwards to the
servers on 127.0.0.1, so the throwaway PostgreSQL cluster, redis-server and SMTP sink keep listening on
loopback only (no listen_addresses or pg_hba change) while each host reaches them over its own link.

    python -m chaos.relay 10.22.1.1:56021=56021 10.22.2.1:56020=56020 ...

A cut is made on the link (its root end set down), never here: the relay only copies bytes, so a
partition looks to the host the way a dead switch port does (its packets vanish, no reset).
"""
from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):  # the other side is gone already
            writer.close()


def _handler(target_port: int):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    return handle


def parse(spec: str) -> tuple[str, int, int]:
    """'10.22.1.1:56021=56021' -> (address, port, target port on 127.0.0.1)."""
    listen, _, target = spec.partition("=")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not target.isdigit():
        raise SystemExit(f"chaos.relay: bad forward {spec!r}: want ADDRESS:PORT=TARGET_PORT")
    return host, int(port), int(target)


async def serve(specs: list[str]) -> None:
    servers = [await asyncio.start_server(_handler(target), host, port, reuse_address=True)
               for host, port, target in map(parse, specs)]
    print(f"chaos.relay: {len(servers)} forwards up", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
