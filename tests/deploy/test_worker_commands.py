"""The make workers* commands: deploy/workers_helper.py's reading of supervisord.conf and of `celery inspect`
replies, the supervisord settings issue 3 asks for, and the pieces of manage.py run_workers_dev."""
from __future__ import annotations

import configparser
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from django.conf import settings

from workers.management.commands import run_workers_dev

ROOT = Path(__file__).resolve().parents[2]
CONF_TEXT = (ROOT / "deploy" / "supervisord.conf").read_text()


def _load_helper():
    spec = importlib.util.spec_from_file_location("workers_helper", ROOT / "deploy" / "workers_helper.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


helper = _load_helper()


def _conf() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.read_string(CONF_TEXT)
    return parser


# Each pool: a prefork worker for the queues whose jobs work here, a threads worker for those that wait
# on the network, and a dispatcher candidate (docs/operating.md, "Processes").
LAYOUT = {"local": (("lead-processing", "delivery"), "LOCAL_QUEUES_CONCURRENCY"),
          "network": (("site-generation", "email-sending"), "NETWORK_QUEUES_CONCURRENCY")}


def test_each_pool_runs_its_two_named_workers_over_every_queue_and_a_dispatcher():
    groups, workers = helper.parse_config(CONF_TEXT)
    for pool in ("primary", "backup"):
        assert f"dispatcher-{pool}" in groups[pool]
        pool_workers = {worker.program: worker for worker in workers if worker.pool == pool}
        assert sorted(q for worker in pool_workers.values() for q in worker.queues) == sorted(settings.QUEUE_NAMES)
        for kind, (queues, _) in LAYOUT.items():
            worker = pool_workers[f"{kind}-{pool}"]
            assert worker.queues == queues
            assert worker.node == f"{'+'.join(queues)}@{pool}.%h"
            assert worker.node_name("host1") == f"{'+'.join(queues)}@{pool}.host1"
    assert len({worker.node for worker in workers}) == len(workers) == 4


def test_worker_programs_carry_the_restart_memory_and_shutdown_settings():
    parser = _conf()
    _, workers = helper.parse_config(CONF_TEXT)
    for worker in workers:
        section = parser[f"program:{worker.program}"]
        kind = worker.program.rsplit("-", 1)[0]
        total = LAYOUT[kind][1]
        # prefork: children on demand, up to the queues' concurrency summed; threads: that many threads
        expected = f"--autoscale=%(ENV_{total})s,1" if kind == "local" else f"-P threads -c %(ENV_{total})s"
        assert expected in section["command"]
        assert "--max-memory-per-child=%(ENV_WORKER_MAX_MEMORY_PER_CHILD_KB)s" in section["command"]
        assert section["autorestart"] == "true"
        assert section["startsecs"] == "10"
        assert section["startretries"] == "10"
        assert section["stopsignal"] == "TERM"  # Celery's warm shutdown
        assert section["stopwaitsecs"] == "%(ENV_WORKER_STOP_WAIT_SECONDS)s"  # task time limit + 30 s
        assert section["stopasgroup"] == "false"  # no TERM to the pool children running tasks
        assert section["killasgroup"] == "true"


def test_the_summed_concurrencies_are_exported_for_the_workers():
    text = (ROOT / "deploy" / "common.sh").read_text()
    assert "LOCAL_QUEUES_CONCURRENCY=$((LEAD_PROCESSING_CONCURRENCY + DELIVERY_CONCURRENCY))" in text
    assert "NETWORK_QUEUES_CONCURRENCY=$((SITE_GENERATION_CONCURRENCY + EMAIL_SENDING_CONCURRENCY))" in text


def test_an_event_listener_releases_the_jobs_of_workers_that_exit():
    section = _conf()["eventlistener:worker-exits"]
    assert "supervisor_events.py %(here)s/supervisord.conf" in section["command"]
    assert set(section["events"].split(",")) == {"PROCESS_STATE_EXITED", "PROCESS_STATE_BACKOFF",
                                                 "PROCESS_STATE_STOPPED"}


def test_every_program_restarts_and_kills_its_whole_group_at_the_end():
    parser = _conf()
    for section in parser.sections():
        if section.startswith("program:"):
            assert parser[section]["autorestart"] == "true", section
            assert parser[section]["stopasgroup"] == "false", section
            assert parser[section]["killasgroup"] == "true", section


def test_a_worker_without_node_name_is_refused():
    text = """
[program:w]
command=celery -A resilience worker -Q delivery
[group:primary]
programs=w
"""
    with pytest.raises(ValueError, match="without -n and -Q"):
        helper.parse_config(text)


def test_long_options_and_percent_escapes_are_read():
    text = """
[program:w]
command=%(here)s/../.venv/bin/celery -A resilience worker --queues=a,b --hostname w@x.%%h -c 2
[program:other]
command=python manage.py run_dispatcher
[group:backup]
programs=w,other
"""
    groups, workers = helper.parse_config(text)
    assert groups == {"backup": ["w", "other"]}
    assert workers == [helper.Worker("w", "backup", "w@x.%h", ("a", "b"))]


def test_consumer_problems_from_inspect_replies():
    expected = {"lead-processing@primary.h": ("lead-processing",), "delivery@primary.h": ("delivery",)}
    good = {"lead-processing@primary.h": [{"name": "lead-processing"}], "delivery@primary.h": [{"name": "delivery"}]}
    assert helper.consumer_problems(expected, good) == {}
    assert helper.consumer_problems(expected, None) == {node: "does not answer" for node in expected}
    wrong = {"lead-processing@primary.h": [{"name": "lead-processing"}], "delivery@primary.h": []}
    assert helper.consumer_problems(expected, wrong) == {"delivery@primary.h": "answers but does not consume delivery"}


def test_dev_worker_consumes_every_queue_under_one_node_name():
    command = run_workers_dev.worker_command(4, settings.QUEUE_NAMES)
    assert command[:3] == [sys.executable, "-m", "celery"]
    assert command[command.index("-Q") + 1] == "lead-processing,site-generation,email-sending,delivery"
    assert command[command.index("-n") + 1] == "dev@%h"
    assert command[command.index("-c") + 1] == "4"


def test_dev_runner_watches_the_project_packages_only(tmp_path):
    for name in ("leads", "workers", "tests", ".venv", "var", "docs"):
        (tmp_path / name).mkdir()
    for name in ("leads", "workers", "tests", ".venv", "var"):
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "leads" / "sub").mkdir()
    (tmp_path / "leads" / "sub" / "m.py").write_text("")
    assert [path.name for path in run_workers_dev.project_python_dirs(tmp_path)] == ["leads", "workers"]
    snapshot = run_workers_dev.python_files_snapshot(tmp_path)
    assert {path.relative_to(tmp_path).as_posix() for path in snapshot} == {
        "manage.py", "leads/__init__.py", "leads/sub/m.py", "workers/__init__.py"}


def test_running_pid_checks_the_process_and_its_command_line(tmp_path):
    pid_file = tmp_path / "x.pid"
    assert run_workers_dev.running_pid(pid_file, "python") is None  # no file
    pid_file.write_text("not a pid")
    assert run_workers_dev.running_pid(pid_file, "python") is None
    pid_file.write_text(f"{os.getpid()}\n")
    if Path("/proc/self/cmdline").exists():
        assert run_workers_dev.running_pid(pid_file, "no-such-program-name") is None
    assert run_workers_dev.running_pid(pid_file, "pytest") == os.getpid()


def test_autoscaled_workers_give_back_their_children_before_the_idle_memory_is_measured():
    """An autoscaled worker keeps the children a burst forked until Celery's AUTOSCALE_KEEPALIVE has
    passed since its last task, checked once every keepalive: with Celery's 30 s they lived up to a
    minute, and the memory idle after a workload (bench/footprint.py) held them (867 MB against 552 MB
    before the first job). Every --autoscale worker of the conf sets it so that two of its checks fit
    in the bench's idle wait, which is what an operator looking between two bursts sees."""
    from bench.footprint import AFTER_IDLE_SECONDS

    parser = _conf()
    autoscaled = [s for s in parser.sections() if s.startswith("program:") and "--autoscale" in parser.get(s, "command")]
    assert autoscaled, "no autoscaled worker in supervisord.conf"
    for section in autoscaled:
        pairs = dict(item.split("=", 1) for item in parser.get(section, "environment").split(","))
        assert "AUTOSCALE_KEEPALIVE" in pairs, f"[{section}] keeps Celery's 30 s keepalive"
        keepalive = float(pairs["AUTOSCALE_KEEPALIVE"].strip('"'))
        assert 0 < keepalive and 2 * keepalive < AFTER_IDLE_SECONDS, (section, keepalive)
