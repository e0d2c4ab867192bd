"""The peers' side of the speed bench, run by the bench-only virtualenv's Python (bench/peers.py makes it),
never by the project's: nothing of this project is imported here.

  python -m bench.peer_jobs worker procrastinate|pgqueuer    a worker, configured as its documentation says
  python -m bench.peer_jobs enqueue procrastinate|pgqueuer   the submitting side, driven over stdin/stdout

The job is the same no-op as plain Celery's and the ledger's (bench/bare.py, bench/ledger_noop.py): one
INCR on a Redis connection the worker keeps; given the time it was submitted, it also records how long it
waited to start, in the same round trip. Environment: PEER_DSN (the peer's own database), REDIS_URL.

The enqueue side answers lines on stdin: "drain N" queues N jobs in one batch call and waits until all
ran, then prints {"seconds", "publish_cpu"}; "samples K" submits K jobs one at a time, each when the
last one ran, and prints {"waits_ms"}.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import redis
import redis.asyncio

COUNTER = "resilience:bench:peer-done"
WAITS = "resilience:bench:peer-waits"
READY = "resilience:bench:peer-ready"
QUEUE = "bench"
TASK = "bench_noop"
# Procrastinate: one worker process, concurrency 10 (its docs: a worker runs up to `concurrency` jobs at
# once on its event loop; the default is 1, raise it for I/O-bound jobs). PgQueuer: batch 5 and at most
# 10 in flight (its QueueManager.run: max_concurrent_tasks must be at least twice the batch size).
PROCRASTINATE_CONCURRENCY = 10
PGQUEUER_BATCH = 5
PGQUEUER_IN_FLIGHT = 10

DSN = os.environ.get("PEER_DSN", "")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")
_client: redis.asyncio.Redis | None = None


async def noop(sent_at: float | None) -> None:
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(REDIS_URL)
    if sent_at is None:
        await _client.incr(COUNTER)
        return
    waited = time.time() - sent_at
    pipe = _client.pipeline(transaction=False)
    pipe.incr(COUNTER)
    pipe.rpush(WAITS, waited)
    await pipe.execute()


def procrastinate_app():
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=DSN))

    @app.task(name=TASK, queue=QUEUE)
    async def bench_noop(sent_at: float | None = None) -> None:
        await noop(sent_at)

    return app, bench_noop


async def procrastinate_worker() -> None:
    app, _ = procrastinate_app()
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        redis.Redis.from_url(REDIS_URL).set(READY, "procrastinate")
        await app.run_worker_async(queues=[QUEUE], concurrency=PROCRASTINATE_CONCURRENCY)


async def pgqueuer_worker() -> None:
    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.queries import Queries

    connection = await asyncpg.connect(DSN)
    queries = Queries.from_asyncpg_connection(connection)
    await queries.install()
    manager = QueueManager(queries)

    @manager.entrypoint(TASK)
    async def bench_noop(job) -> None:
        await noop(float(job.payload) if job.payload else None)

    redis.Redis.from_url(REDIS_URL).set(READY, "pgqueuer")
    await manager.run(batch_size=PGQUEUER_BATCH, max_concurrent_tasks=PGQUEUER_IN_FLIGHT)


class Submitter:
    """Queues jobs for one peer: `many` in one batch call, `one` with its submission time."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    async def __aenter__(self) -> Submitter:
        if self.peer == "procrastinate":
            self.app, self.task = procrastinate_app()
            await self.app.open_async()
        else:
            import asyncpg
            from pgqueuer.queries import Queries

            self.connection = await asyncpg.connect(DSN)
            self.queries = Queries.from_asyncpg_connection(self.connection)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.peer == "procrastinate":
            await self.app.close_async()
        else:
            await self.connection.close()

    async def many(self, n: int) -> None:
        if self.peer == "procrastinate":
            await self.task.batch_defer_async(*({} for _ in range(n)))
        else:
            await self.queries.enqueue([TASK] * n, [None] * n, [0] * n)

    async def one(self) -> None:
        sent_at = time.time()
        if self.peer == "procrastinate":
            await self.task.defer_async(sent_at=sent_at)
        else:
            await self.queries.enqueue(TASK, str(sent_at).encode())


async def wait_count(client: redis.asyncio.Redis, at_least: int, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while int(await client.get(COUNTER) or 0) < at_least:
        if time.monotonic() > deadline:
            raise SystemExit(f"peer bench: {COUNTER} reached {int(await client.get(COUNTER) or 0)}, "
                             f"not {at_least}, in {timeout:g}s")
        await asyncio.sleep(poll)


async def enqueue(peer: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    done = 0
    async with Submitter(peer) as submit:
        print("ready", flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            n = int(arg)
            if command == "drain":
                started, cpu = time.monotonic(), time.process_time()
                await submit.many(n)
                cpu = time.process_time() - cpu
                done += n
                await wait_count(client, done, 300, 0.01)
                print(json.dumps({"seconds": time.monotonic() - started, "publish_cpu": cpu}), flush=True)
            elif command == "samples":
                await client.delete(WAITS)
                for _ in range(n):
                    await submit.one()
                    done += 1
                    await wait_count(client, done, 60, 0.0005)
                waits = [float(w) * 1000 for w in await client.lrange(WAITS, 0, -1)]
                print(json.dumps({"waits_ms": waits}), flush=True)
            else:
                raise SystemExit(f"peer bench: unknown command {line!r}")


def main() -> None:
    role, peer = sys.argv[1], sys.argv[2]
    if peer not in ("procrastinate", "pgqueuer") or role not in ("worker", "enqueue"):
        raise SystemExit("usage: python -m bench.peer_jobs worker|enqueue procrastinate|pgqueuer")
    if role == "enqueue":
        asyncio.run(enqueue(peer))
    else:
        asyncio.run(procrastinate_worker() if peer == "procrastinate" else pgqueuer_worker())


if __name__ == "__main__":
    main()
