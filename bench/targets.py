"""make bench, issue 22's targets: each a line of the targets table with its bound, the measured figure,
the ratio and met or NOT met, from the figures the run measured (bench/speed.py SpeedFigures,
bench/limits.py LimitFigures, bench/footprint.py Footprint). No import-time side effects (unlike
bench/run.py), so tests/bench can judge made-up figures.

A target whose figures were not measured in this run (a section not run, the peers' venv not made)
gets no line rather than a guess; the peers' line says why they are missing.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

# Issue 22, item 2.
THROUGHPUT_VS_CELERY = 0.7  # ledger jobs/s >= this x plain Celery's
THROUGHPUT_VS_PROCRASTINATE = 1.5  # ledger jobs/s >= this x Procrastinate's
P50_VS_CELERY = 2.0  # ledger p50 enqueue->start <= this x plain Celery's
CPU_VS_CELERY = 2.0  # ledger CPU per job, all processes, <= this x plain Celery's
RATE_USED = 0.98  # each queue's achieved rate (bench/limits.py reuse_ratio) >= this, its busiest window == limit
MEMORY_WHOLE_MB = 600  # idle after the workload, whole system
MEMORY_POOL_MB = 200  # idle after the workload, each pool


@dataclass(frozen=True)
class Line:
    target: str
    bound: str
    figure: str
    ratio: str
    met: bool | None  # None: a line that explains, judged by no bound

    def row(self) -> list[str]:
        return [self.target, self.bound, self.figure, self.ratio,
                "" if self.met is None else ("met" if self.met else "NOT met")]


def _spread(values: list[float], fmt: str) -> str:
    from bench.speed import spread

    return spread(values, fmt)


def speed_lines(speed) -> list[Line]:
    """Throughput, p50 and CPU per job of the ledger against plain Celery and Procrastinate (medians of
    the per-round ratios), then, when throughput or CPU missed, the CPU profile of the gap."""
    if not speed.ledger.throughput:
        return []
    lines = []
    tr = speed.ratios("ledger", "bare", "throughput")
    lines.append(Line(f"throughput, ledger / plain Celery ({len(tr)} round(s))", f">= {THROUGHPUT_VS_CELERY:.2f}",
                      f"{_spread(speed.ledger.throughput, '.0f')} / {_spread(speed.bare.throughput, '.0f')} jobs/s",
                      _spread(tr, ".2f"), statistics.median(tr) >= THROUGHPUT_VS_CELERY))
    if "procrastinate" in speed.peers:
        pr = speed.ratios("ledger", "procrastinate", "throughput")
        lines.append(Line("throughput, ledger / Procrastinate", f">= {THROUGHPUT_VS_PROCRASTINATE:.2f}",
                          f"{_spread(speed.ledger.throughput, '.0f')} / "
                          f"{_spread(speed.peers['procrastinate'].throughput, '.0f')} jobs/s",
                          _spread(pr, ".2f"), statistics.median(pr) >= THROUGHPUT_VS_PROCRASTINATE))
    else:
        lines.append(Line("throughput, ledger / Procrastinate", f">= {THROUGHPUT_VS_PROCRASTINATE:.2f}",
                          f"not measured: {speed.peers_skipped or 'peers not run'}", "", None))
    lr = speed.ratios("ledger", "bare", "p50_ms")
    lines.append(Line("p50 enqueue->start, ledger / plain Celery", f"<= {P50_VS_CELERY:.2f}",
                      f"{_spread(speed.ledger.p50_ms, '.1f')} / {_spread(speed.bare.p50_ms, '.2f')} ms",
                      _spread(lr, ".2f"), statistics.median(lr) <= P50_VS_CELERY))
    ours, theirs = speed.cpu_total("ledger"), speed.cpu_total("bare")
    cpu_ratio = ours / theirs if theirs else float("inf")
    lines.append(Line("CPU per job (all processes), ledger / plain Celery", f"<= {CPU_VS_CELERY:.2f}",
                      f"{ours:.2f} / {theirs:.2f} ms", f"{cpu_ratio:.2f}", cpu_ratio <= CPU_VS_CELERY))
    if statistics.median(tr) < THROUGHPUT_VS_CELERY or cpu_ratio > CPU_VS_CELERY:
        lines.append(Line("   what holds it back: CPU per job, ledger - plain Celery, per process", "",
                          profile(speed), "", None))
    return lines


def profile(speed) -> str:
    """The parts of the CPU gap per job, largest first: "pool children +2.80 ms, ..."."""
    gaps = []
    for part, values in speed.ledger.cpu_ms.items():
        bare = statistics.median(speed.bare.cpu_ms.get(part) or [0.0])
        gaps.append((statistics.median(values) - bare, part))
    return ", ".join(f"{part} {gap:+.2f} ms" for gap, part in sorted(gaps, reverse=True))


def accuracy_line(figures: list) -> Line | None:
    """The global rate limits, counted from the ledger's start times: every queue's busiest window
    held exactly its limit (not more: the limit kept; not fewer: the rate used) and every measured
    phase achieved at least RATE_USED of the rate. Phases with too few starts to judge are left out."""
    if not figures:
        return None
    bad = []
    for f in figures:
        used = [a for a in f.achieved if a is not None]
        if not f.ok or f.starts.most != f.count or any(a < RATE_USED for a in used) or not used:
            bad.append(f.queue)
    worst_used = min((a for f in figures for a in f.achieved if a is not None), default=None)
    figure = ", ".join(f"{f.queue} {f.most()} of {f.limit()}" for f in figures)
    ratio = f"{max(f.ratio for f in figures):.2f}; used >= " + (
        "n/a" if worst_used is None else f"{worst_used:.1%}")
    return Line("rate limits from the ledger's starts: most in any window == limit, rate used",
                f"== 1.00, >= {RATE_USED:.0%}", figure + (f" (off: {', '.join(bad)})" if bad else ""), ratio,
                not bad)


def memory_lines(after: dict | None) -> list[Line]:
    """PSS of what make up starts, idle after the workload (bench/footprint.py idle_after_workload)."""
    if not after:
        return []
    lines = []
    for part, cap in (("whole system", MEMORY_WHOLE_MB), ("primary", MEMORY_POOL_MB), ("backup", MEMORY_POOL_MB)):
        mb = after[part].pss_mb
        lines.append(Line(f"memory idle after the workload (20 s), PSS: {part}", f"<= {cap} MB", f"{mb:.0f} MB",
                          f"{mb / cap:.2f} of target", mb <= cap))
    return lines


def peer_rows(speed) -> list[list[str]]:
    """Every side measured: throughput, p50 and CPU per job, each with its ratio to plain Celery."""
    names = {"bare": "plain Celery", "ledger": "ledger", "procrastinate": "Procrastinate", "pgqueuer": "PgQueuer"}
    sides = ["bare"] + (["ledger"] if speed.ledger.throughput else []) + list(speed.peers)
    rows = []
    for side in sides:
        figures = speed.side(side)
        rows.append([names[side], _spread(figures.throughput, ".0f"),
                     _spread(speed.ratios(side, "bare", "throughput"), ".2f"), _spread(figures.p50_ms, ".2f"),
                     _spread(speed.ratios(side, "bare", "p50_ms"), ".2f"), f"{speed.cpu_total(side):.2f}"])
    return rows


PEER_HEADERS = ["side", "jobs/s", "x plain", "p50 enqueue->start (ms)", "x plain", "CPU ms per job (all)"]


def issue22_lines(speed, rate_figures: list, after: dict | None) -> list[Line]:
    lines = speed_lines(speed) if speed else []
    accuracy = accuracy_line(rate_figures)
    return lines + ([accuracy] if accuracy else []) + memory_lines(after)
