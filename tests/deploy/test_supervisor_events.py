"""deploy/supervisor_events.py: supervisord's event protocol, and the jobs of the exited worker released."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.system.processes import database_url
from workers import ledger
from workers.models import Job

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "supervisord.conf"
sys.path.insert(0, str(ROOT / "deploy"))
import supervisor_events  # noqa: E402

HOST = socket.gethostname()


def test_each_worker_program_is_known_by_its_node_name_on_this_host():
    nodes = supervisor_events.node_names(CONF.read_text(), "h1")
    assert nodes == {
        "local-primary": "lead-processing+delivery@primary.h1",
        "network-primary": "site-generation+email-sending@primary.h1",
        "local-backup": "lead-processing+delivery@backup.h1",
        "network-backup": "site-generation+email-sending@backup.h1",
    }


def running(worker: str) -> Job:
    job = ledger.enqueue("lead-processing", "leads.process_lead", {"n": 1})
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    return ledger.claim(dispatch.job_id, dispatch.token, worker)


def event(name: str, payload: str) -> bytes:
    header = f"ver:3.0 server:supervisor serial:1 pool:worker-exits poolserial:1 eventname:{name} len:{len(payload)}\n"
    return (header + payload).encode()


@pytest.mark.django_db(transaction=True)
def test_an_exited_worker_program_releases_its_running_jobs_and_nothing_else():
    gone = running(f"lead-processing+delivery@primary.{HOST}")
    alive = running(f"lead-processing+delivery@backup.{HOST}")
    events = (event("PROCESS_STATE_RUNNING", "processname:local-backup groupname:backup from_state:STARTING pid:1")
              + event("PROCESS_STATE_EXITED", "processname:local-primary groupname:primary from_state:RUNNING "
                                              "expected:0 pid:4242")
              + event("PROCESS_STATE_EXITED", "processname:web groupname:web from_state:RUNNING expected:0 pid:7"))
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "supervisor_events.py"), str(CONF)], input=events,
                          capture_output=True, timeout=30, env={"DATABASE_URL": database_url(), "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    # READY before each event, a RESULT after each, READY again; nothing else on the protocol's stdout.
    assert done.stdout == b"READY\nRESULT 2\nOK" * 3 + b"READY\n"
    assert b"(pid 4242) is gone (PROCESS_STATE_EXITED): 1 running job(s) released" in done.stderr
    gone.refresh_from_db()
    alive.refresh_from_db()
    assert gone.state == Job.State.RUNNING and ledger.reap_expired_leases() == 1  # the lease ended: reaped now
    assert alive.lease_expires_at is not None
    alive.refresh_from_db()
    assert alive.state == Job.State.RUNNING
    gone.refresh_from_db()
    assert gone.state == Job.State.PENDING
