"""deploy/supervisor_events.py: supervisord's event protocol, and the jobs of the exited worker released."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

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


def running(worker: str, pid: int) -> Job:
    """A job claimed under node name `worker` by the worker whose main process is `pid`."""
    job = ledger.enqueue("lead-processing", "leads.process_lead", {"n": 1})
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    return ledger.claim(dispatch.job_id, dispatch.token, worker, pid=pid)


def event(name: str, payload: str) -> bytes:
    header = f"ver:3.0 server:supervisor serial:1 pool:worker-exits poolserial:1 eventname:{name} len:{len(payload)}\n"
    return (header + payload).encode()


def listen(events: bytes) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "supervisor_events.py"), str(CONF)], input=events,
                          capture_output=True, timeout=30, env={"DATABASE_URL": database_url(), "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def dead_pid() -> int:
    """The pid of a real process that has exited (and was reaped, as supervisord reaps its children)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    """The pid of a real process that is still running: the worker supervisord started again."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def state_and_lease(job: Job) -> tuple[str, bool]:
    job.refresh_from_db()
    return job.state, job.lease_expires_at is not None and job.lease_expires_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_an_exited_worker_program_releases_its_running_jobs_and_nothing_else(dead_pid):
    gone = running(f"lead-processing+delivery@primary.{HOST}", dead_pid)
    alive = running(f"lead-processing+delivery@backup.{HOST}", dead_pid)
    events = (event("PROCESS_STATE_RUNNING", "processname:local-backup groupname:backup from_state:STARTING pid:1")
              + event("PROCESS_STATE_EXITED", "processname:local-primary groupname:primary from_state:RUNNING "
                                              f"expected:0 pid:{dead_pid}")
              + event("PROCESS_STATE_EXITED", "processname:web groupname:web from_state:RUNNING expected:0 pid:7"))
    done = listen(events)
    # READY before each event, a RESULT after each, READY again; nothing else on the protocol's stdout.
    assert done.stdout == b"READY\nRESULT 2\nOK" * 3 + b"READY\n"
    assert (f"(pid {dead_pid}) is gone (PROCESS_STATE_EXITED): 1 running job(s) released (claimed by pid {dead_pid})"
            in done.stderr.decode())
    gone.refresh_from_db()
    alive.refresh_from_db()
    assert gone.state == Job.State.RUNNING and ledger.reap_expired_leases() == 1  # the lease ended: reaped now
    assert alive.lease_expires_at is not None
    alive.refresh_from_db()
    assert alive.state == Job.State.RUNNING
    gone.refresh_from_db()
    assert gone.state == Job.State.PENDING


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["PROCESS_STATE_EXITED", "PROCESS_STATE_STOPPED"])
def test_the_worker_already_started_again_under_the_same_name_keeps_its_jobs(name, dead_pid, live_pid):
    """Given: the dead process's job, and one that the process supervisord started again under the same
    node name claimed before the listener handled the exit (supervisord restarts at once; the event
    waits in the listener's buffer). Then only the dead process's job is released."""
    node = f"site-generation+email-sending@primary.{HOST}"
    dead_ones = running(node, dead_pid)
    successors = running(node, live_pid)
    done = listen(event(name, f"processname:network-primary groupname:primary from_state:RUNNING expected:0 "
                              f"pid:{dead_pid}"))
    assert f"1 running job(s) released (claimed by pid {dead_pid})" in done.stderr.decode()
    assert state_and_lease(successors) == (Job.State.RUNNING, True)
    assert state_and_lease(dead_ones) == (Job.State.RUNNING, False)
    assert ledger.reap_expired_leases() == 1
    assert state_and_lease(dead_ones)[0] == Job.State.PENDING


@pytest.mark.django_db(transaction=True)
def test_a_worker_dead_within_startsecs_is_known_by_the_pids_that_are_gone(dead_pid, live_pid):
    """BACKOFF (the process died before startsecs) carries no pid: the jobs of the node whose claiming
    process no longer exists are released, those of a live process of that name are not."""
    node = f"lead-processing+delivery@backup.{HOST}"
    dead_ones, successors = running(node, dead_pid), running(node, live_pid)
    done = listen(event("PROCESS_STATE_BACKOFF", "processname:local-backup groupname:backup from_state:STARTING "
                                                 "tries:1"))
    assert f"(pid ?) is gone (PROCESS_STATE_BACKOFF): 1 running job(s) released (claimed by pid {dead_pid})" in done.stderr.decode()
    assert state_and_lease(dead_ones) == (Job.State.RUNNING, False)
    assert state_and_lease(successors) == (Job.State.RUNNING, True)
