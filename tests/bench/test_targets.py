"""Issue 22's targets as make bench judges them (bench/targets.py): each line says NOT met when its
figure misses the bound, and the rate-limit line counts the starts from the ledger's rows."""
from datetime import UTC, datetime, timedelta

import pytest

from bench.footprint import Footprint
from bench.limits import limit_figures
from bench.speed import CPU_PARTS, SideFigures, SpeedFigures
from bench.targets import (
    accuracy_line,
    issue22_lines,
    memory_lines,
    peer_rows,
    speed_lines,
)
from workers.models import Job


def side(throughput: float, p50: float, cpu: dict[str, float]) -> SideFigures:
    return SideFigures(throughput=[throughput], p50_ms=[p50], cpu_ms={part: [cpu.get(part, 0.0)] for part in CPU_PARTS})


def speed(ledger_jobs: float, ledger_p50: float, ledger_pool_cpu: float, procrastinate_jobs: float | None) -> SpeedFigures:
    figures = SpeedFigures(bare=side(500, 2.0, {"worker pool children": 1.0, "worker main process": 1.0}),
                           ledger=side(ledger_jobs, ledger_p50, {"worker pool children": ledger_pool_cpu,
                                                                 "worker main process": 1.0,
                                                                 "PostgreSQL backends": 0.5}),
                           jobs=100, samples=10, concurrency=2)
    if procrastinate_jobs is None:
        figures.peers_skipped = "could not build var/bench-venv: no index"
    else:
        figures.peers = {"procrastinate": side(procrastinate_jobs, 6.0, {"worker main process": 2.0}),
                         "pgqueuer": side(1500, 3.0, {"worker main process": 0.5})}
    return figures


def test_a_ledger_that_meets_every_speed_target_is_met():
    lines = speed_lines(speed(ledger_jobs=400, ledger_p50=3.9, ledger_pool_cpu=2.0, procrastinate_jobs=250))
    assert [line.row()[-1] for line in lines] == ["met"] * 4, [line.row() for line in lines]
    assert lines[0].figure == "400 / 500 jobs/s" and lines[0].ratio == "0.80"


@pytest.mark.parametrize("ledger_jobs, ledger_p50, ledger_pool_cpu, missed", [
    (300, 3.9, 2.0, "throughput, ledger / plain Celery"),  # 0.6x plain Celery
    (400, 3.9, 2.0, "throughput, ledger / Procrastinate"),  # 1.33x Procrastinate (300)
    (400, 4.2, 2.0, "p50 enqueue->start, ledger / plain Celery"),  # 2.1x
    (400, 3.9, 3.0, "CPU per job (all processes), ledger / plain Celery"),  # 4.5 / 2.0 ms
], ids=["throughput", "vs Procrastinate", "p50", "cpu"])
def test_a_figure_that_misses_its_bound_says_not_met(ledger_jobs, ledger_p50, ledger_pool_cpu, missed):
    procrastinate = 300 if missed.endswith("Procrastinate") else 150
    lines = speed_lines(speed(ledger_jobs, ledger_p50, ledger_pool_cpu, procrastinate))
    judged = {line.target.split(" (")[0] if "round(s)" in line.target else line.target: line.row()[-1]
              for line in lines}
    assert judged[missed] == "NOT met", judged
    assert [t for t, v in judged.items() if v == "NOT met"] == [missed], judged


def test_a_miss_of_throughput_or_cpu_comes_with_the_profile_largest_gap_first():
    lines = speed_lines(speed(ledger_jobs=300, ledger_p50=3.9, ledger_pool_cpu=3.0, procrastinate_jobs=150))
    profile = lines[-1]
    assert profile.met is None and profile.target.strip().startswith("what holds it back")
    assert profile.figure.startswith("worker pool children +2.00 ms, PostgreSQL backends +0.50 ms"), profile.figure


def test_peers_not_measured_say_why_and_are_not_judged():
    lines = speed_lines(speed(ledger_jobs=400, ledger_p50=3.9, ledger_pool_cpu=2.0, procrastinate_jobs=None))
    line = next(line for line in lines if line.target.endswith("Procrastinate"))
    assert line.met is None and "no index" in line.figure


def test_the_peers_table_gives_each_side_against_plain_celery():
    rows = peer_rows(speed(ledger_jobs=400, ledger_p50=3.9, ledger_pool_cpu=2.0, procrastinate_jobs=250))
    assert [row[:3] for row in rows] == [["plain Celery", "500", "1.00"], ["ledger", "400", "0.80"],
                                         ["Procrastinate", "250", "0.50"], ["PgQueuer", "1500", "3.00"]]


def test_memory_after_the_workload_over_its_cap_is_not_met():
    mb = 1024
    after = {"whole system": Footprint(14, 900 * mb, 610 * mb), "primary": Footprint(4, 300 * mb, 199 * mb),
             "backup": Footprint(4, 300 * mb, 201 * mb)}
    assert [line.row()[-1] for line in memory_lines(after)] == ["NOT met", "met", "NOT met"]


LIMIT = (5, 1.0)
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def ledger_rows(offsets: list[float]) -> None:
    """Succeeded delivery jobs that started at T0 + each offset, their slot 2 ms before."""
    Job.objects.bulk_create([Job(queue="delivery", task="bench.t", state=Job.State.SUCCEEDED, attempts=1,
                                 next_attempt_at=T0, started_at=T0 + timedelta(seconds=s),
                                 slot_at=T0 + timedelta(seconds=s - 0.002)) for s in offsets])


def accuracy(offsets: list[float]):
    ledger_rows(offsets)
    end = T0.timestamp() + 10
    figures = limit_figures("delivery", LIMIT, T0, [(T0.timestamp(), end)])
    return figures, accuracy_line([figures])


@pytest.mark.django_db
def test_starts_at_the_full_rate_from_the_ledger_are_met():
    figures, line = accuracy([i * 0.2 for i in range(30)])  # 5 a second, evenly
    assert figures.starts.most == 5 and line.met, line.row()


@pytest.mark.django_db
def test_one_start_more_in_a_window_of_the_ledger_is_not_met():
    figures, line = accuracy(sorted([i * 0.2 for i in range(30)] + [2.1]))
    assert figures.starts.most == 6 and line.met is False and "off: delivery" in line.figure, line.row()


@pytest.mark.django_db
def test_starts_short_of_the_limit_are_not_met():
    figures, line = accuracy([i * 0.25 for i in range(24)])  # 4 a second: 80 % of the rate used
    assert figures.starts.most == 4 and line.met is False, line.row()


def test_no_figures_no_lines():
    assert issue22_lines(None, [], None) == []
