"""What workers.processes reads of real processes: spawned children of this test process, their
memory seen in its tree, their CPU time, command line and environment; and a process that exited
meanwhile, which counts 0 rather than failing a heartbeat."""
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from tests.system.processes import wait_for
from workers import processes

HOLD_64_MIB = "import time; x = b'x' * (64 << 20); print('ready', flush=True); time.sleep(30)"


@contextmanager
def child(code: str, **popen) -> Iterator[subprocess.Popen]:
    """A Python child running `code`, started and waited for once it printed 'ready'."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **popen)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # exited and reaped: no process has this pid now (unless one took it since)
    return proc.pid


def test_a_childs_memory_is_seen_in_its_parents_tree():
    with child(HOLD_64_MIB) as proc:
        assert processes.rss_bytes(proc.pid) >= 64 << 20  # written to: resident, not just reserved
        assert proc.pid in processes.child_pids(os.getpid())
        alone = processes.rss_bytes(os.getpid())
        assert processes.tree_rss_bytes(os.getpid()) - alone >= 64 << 20


def test_a_zombie_child_is_no_live_child_and_holds_no_memory():
    with child(HOLD_64_MIB) as live:
        zombie = subprocess.Popen([sys.executable, "-c", "pass"])
        try:
            # Exited but not waited for: a zombie until we reap it.
            assert wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, 10)
            assert processes.rss_bytes(zombie.pid) == 0
            children = processes.child_pids(os.getpid())
            assert live.pid in children and zombie.pid not in children
        finally:
            zombie.wait()


def test_the_tree_holds_grandchildren_and_the_tree_memory_only_children():
    code = ("import subprocess, sys, time; "
            f"g = subprocess.Popen([sys.executable, '-c', {HOLD_64_MIB!r}], stdout=subprocess.PIPE, text=True); "
            "g.stdout.readline(); print('ready', g.pid, flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        word, grandchild = proc.stdout.readline().split()
        assert word == "ready"
        assert processes.process_tree(proc.pid) == [proc.pid, int(grandchild)]
        assert processes.child_pids(proc.pid) == [int(grandchild)]
        assert processes.tree_rss_bytes(proc.pid) >= processes.rss_bytes(proc.pid) + (64 << 20)
    finally:
        proc.kill()  # the grandchild sleeps on alone, then exits: its 30 s are a bound, not a wait
        proc.wait()
        os.kill(int(grandchild), 9)


def test_pss_is_at_most_rss_and_both_see_the_childs_memory():
    with child(HOLD_64_MIB) as proc:
        rss_kib, pss_kib = processes.rss_and_pss_kib(proc.pid)
        assert pss_kib <= rss_kib and pss_kib >= 64 << 10  # the 64 MiB are the child's own pages
        assert abs(rss_kib * 1024 - processes.rss_bytes(proc.pid)) < 4 << 20  # one figure, two readings


def test_cpu_time_of_a_live_process_and_of_its_reaped_children():
    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with child(f"{burn}\nprint('ready', flush=True); time.sleep(30)") as proc:
        assert processes.cpu_seconds(proc.pid) >= 0.25
    before = processes.cpu_seconds(os.getpid(), with_reaped_children=True) - processes.cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", burn], check=True)  # run and reaped
    after = processes.cpu_seconds(os.getpid(), with_reaped_children=True) - processes.cpu_seconds(os.getpid())
    assert after - before >= 0.25


def test_the_command_line_and_the_environment_find_a_child():
    mark = f"resilience-test-{os.getpid()}-{time.monotonic_ns()}"
    code = "import time; print('ready', flush=True); time.sleep(30)"
    with child(code, env={**os.environ, "RESILIENCE_TEST_MARK": mark}) as proc:
        assert processes.cmdline(proc.pid) == f"{sys.executable} -c {code}"
        assert processes.pids_with_environment("RESILIENCE_TEST_MARK", mark) == [proc.pid]
        assert processes.pids_with_environment("RESILIENCE_TEST_MARK", mark, besides=proc.pid) == []


@pytest.mark.parametrize("read, nothing", [
    (processes.rss_bytes, 0), (processes.tree_rss_bytes, 0), (processes.child_pids, []),
    (processes.rss_and_pss_kib, (0, 0)), (processes.cpu_seconds, 0.0), (processes.cmdline, ""),
])
def test_a_process_that_exited_meanwhile_counts_nothing_and_raises_nothing(read, nothing):
    assert read(gone_pid()) == nothing


def test_the_tree_of_a_process_that_exited_is_its_pid_alone():
    pid = gone_pid()
    assert processes.process_tree(pid) == [pid]
