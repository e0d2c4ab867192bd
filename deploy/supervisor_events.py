"""supervisord event listener: when a worker program's process is gone, its running jobs are released now.

A worker whose main process is SIGKILLed (or dies any other way) leaves its jobs `running` in the
ledger with a lease nobody renews; without this they wait for the lease to run out
(JOB_LEASE_SECONDS and its grace, 3 + 0.5 s). supervisord sees the exit at once (it is the parent) and tells this
listener (PROCESS_STATE_EXITED, or BACKOFF when it died within startsecs, or STOPPED when a stop
had to kill it). The listener ends the leases of the jobs running under that worker's node name that
the dead process claimed, and the leading dispatcher's reaper returns them at its next sweep, within
a second: the attempt counts and the last one dead-letters, as for any expired lease. The lease is
left for what no supervisor on the host can see (the whole host gone).

Which jobs the dead process claimed: every claim records the pid of the worker's main process (the
pid supervisord started and names in EXITED and STOPPED; a prefork child's own differs), so a job
claimed under the same node name by the process supervisord already started again is never
released, even when it claimed before this listener handled the event. BACKOFF names no pid: there,
and for lives this listener missed (it was restarting), the jobs whose claiming process no longer
exists on this host are released (workers.liveness).

Which programs are workers, and their node names, come from supervisord.conf (the path is the only
argument), read as `make workers-*` reads it. The process stays small (no Django: psycopg2 and
DATABASE_URL only, about 14 MB PSS): it runs the statements of workers.ledger.running_pids_of and
expire_leases_of, which workers/sql.py holds as text.

The event protocol (http://supervisord.org/events.html): write READY, read a header line and its
payload, do the work, answer RESULT 2\\nOK. stdout belongs to the protocol; the log goes to stderr.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from workers_helper import parse_config  # noqa: E402 - the sibling script: one reading of the config
from workers.liveness import gone_pids  # noqa: E402 - standard library only, as the worker asks it
from workers.sql import EXPIRE_LEASES_SQL, RUNNING_PIDS_SQL  # noqa: E402 - the ledger's statements

GONE = {"PROCESS_STATE_EXITED", "PROCESS_STATE_BACKOFF", "PROCESS_STATE_STOPPED"}


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor_events {os.getpid()} {message}", file=sys.stderr,
          flush=True)


def node_names(conf_text: str, hostname: str) -> dict[str, str]:
    """supervisord program -> the Celery node name its worker runs as on this host."""
    _, workers = parse_config(conf_text)
    # %h is what Celery expands it to (socket.gethostname()); the celery import is not needed for it.
    return {worker.program: worker.node.replace("%h", hostname) for worker in workers}


def parse_payload(payload: str) -> dict[str, str]:
    return dict(token.split(":", 1) for token in payload.split() if ":" in token)


def expire_leases(database_url: str, node: str, exited_pid: int | None) -> tuple[int, set[int]]:
    """End the leases of `node`'s running jobs claimed by `exited_pid` or by any other process of
    that name that is gone; returns how many, and the pids they were claimed by."""
    import psycopg2

    conn = psycopg2.connect(database_url, connect_timeout=5, application_name="supervisor_events")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(RUNNING_PIDS_SQL, [node[:200]])
            # The exited pid counts even if another process took that number since: supervisord
            # reaped it, so it is the dead one's.
            pids = gone_pids(pid for (pid,) in cur.fetchall()) | ({exited_pid} if exited_pid else set())
            if not pids:
                return 0, pids
            cur.execute(EXPIRE_LEASES_SQL, [node[:200], sorted(pids)])
            return cur.rowcount, pids
    finally:
        conn.close()


def handle(event: str, payload: dict[str, str], nodes: dict[str, str], database_url: str) -> None:
    node = nodes.get(payload.get("processname", ""))
    if event not in GONE or node is None:
        return
    raw_pid = payload.get("pid", "")
    exited_pid = int(raw_pid) if raw_pid.isdigit() else None  # BACKOFF names none
    started = time.monotonic()
    try:
        released, pids = expire_leases(database_url, node, exited_pid)
    except Exception as exc:  # PostgreSQL away: the leases run out by themselves
        log(f"{node} (pid {raw_pid or '?'}) is gone ({event}) but its jobs could not be released "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
            f"their leases will run out")
        return
    log(f"{node} (pid {raw_pid or '?'}) is gone ({event}): {released} running job(s) released (claimed by pid "
        f"{', '.join(map(str, sorted(pids))) or 'none'}) in {(time.monotonic() - started) * 1000:.0f} ms")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: supervisor_events.py SUPERVISORD_CONF", file=sys.stderr)
        return 2
    nodes = node_names(Path(argv[1]).read_text(), socket.gethostname())
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        log("DATABASE_URL is not set: cannot release the jobs of dead workers (their leases will run out)")
    log(f"watching {len(nodes)} worker program(s): {', '.join(sorted(nodes.values()))}")
    stdin, stdout = sys.stdin, sys.stdout
    while True:
        stdout.write("READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return 0  # supervisord closed our stdin: it is stopping
        headers = parse_payload(line)
        payload = parse_payload(stdin.read(int(headers.get("len", 0))))
        if database_url:
            handle(headers.get("eventname", ""), payload, nodes, database_url)
        stdout.write("RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
