"""Prometheus metrics: the figures of the health report, the ledger by state, broker queue depths,
the dead-letter queue and every worker's heartbeat. Built per scrape from PostgreSQL and Redis, so
every web process answers the same and nothing is lost when one restarts."""
from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import redis
from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dlq.models import DeadLetter
from monitoring.health import (HEALTHY, DEGRADED, PAUSED, UNHEALTHY, collect_figures, collect_leader, judge,
                            worker_report)
from resilience.db import db_now
from sites.services import paid_requests_by_model_and_outcome
from workers.models import Job
from workers.redis_client import shared_client

STATUSES = (HEALTHY, DEGRADED, UNHEALTHY, PAUSED)
# kombu's Redis transport keeps a queue's messages in the list named after the queue, and messages
# with a priority in lists named <queue>\x06\x16<priority> (its default priority steps).
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (3, 6, 9)


def broker_queue_lengths() -> dict[str, int] | None:
    """Messages waiting in Redis per queue, or None when Redis does not answer."""
    try:
        pipe = shared_client().pipeline(transaction=False)
        for queue in settings.QUEUE_NAMES:
            pipe.llen(queue)
            for step in _KOMBU_PRIORITY_STEPS:
                pipe.llen(f"{queue}{_KOMBU_PRIORITY_SEP}{step}")
        lengths = pipe.execute()
    except redis.RedisError:
        return None
    per_queue = 1 + len(_KOMBU_PRIORITY_STEPS)
    return {q: sum(lengths[i * per_queue:(i + 1) * per_queue]) for i, q in enumerate(settings.QUEUE_NAMES)}


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"resilience_{name}", documentation, labels=labels)


def _counter(name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    """Exposed as resilience_<name>_total (prometheus_client adds the suffix)."""
    return CounterMetricFamily(f"resilience_{name}", documentation, labels=labels)


def _deprecated(name: str, replacement: str | None = None, why: str = "") -> str:
    """The HELP of a gauge kept one release under its old name beside its replacement (docs/operating.md)."""
    return (f"Deprecated, removed in the next release: use resilience_{replacement or name + '_total'}"
            f"{why or ' (a counter, so rate() and increase() apply)'}")


class ResilienceCollector:
    def collect(self) -> Iterator[Metric]:
        now = db_now()
        figures = collect_figures(now)

        by_state = _gauge("jobs", "Jobs in the ledger by queue and state", ["queue", "state"])
        for q in figures.values():
            for state in Job.State.values:
                by_state.add_metric([q.name, state], q.by_state.get(state, 0))
        yield by_state

        # Lifetime totals only grow: counters (named ..._total), so rate() and increase() apply.
        lifetime = {
            "queue_completed": ("Jobs succeeded, lifetime (ledger plus daily statistics)", lambda q: q.completed),
            "queue_failed": ("Jobs dead-lettered, lifetime, rejected input excepted", lambda q: q.failed),
            "queue_rejected": ("Jobs dead-lettered for invalid input, lifetime", lambda q: q.rejected),
        }
        for name, (doc, value) in lifetime.items():
            counter = _counter(name, doc, ["queue"])
            for q in figures.values():
                counter.add_metric([q.name], value(q))
            yield counter

        per_queue = {
            "queue_waiting": ("Jobs not started yet (pending, retrying or published)", lambda q: q.waiting),
            "queue_active": ("Jobs running now", lambda q: q.active),
            **{name: (_deprecated(name), value) for name, (_, value) in lifetime.items()},
            "queue_recent_rejected": ("Jobs rejected for invalid input over the health window",
                                      lambda q: q.recent_rejected),
            "queue_failure_rate_percent": ("Dead-lettered / finished jobs, lifetime, in percent",
                                           lambda q: q.failure_rate),
            "queue_recent_failure_rate_percent": ("Failure rate over the health window, in percent",
                                                  lambda q: q.recent_failure_rate),
            "queue_recent_errors": ("Failed attempts over the health window", lambda q: q.recent_errors),
            "queue_consumers": ("Workers with a live heartbeat consuming the queue", lambda q: q.consumers),
            "queue_paused": ("1 when the queue is paused on purpose", lambda q: int(q.paused is not None)),
        }
        for name, (doc, value) in per_queue.items():
            gauge = _gauge(name, doc, ["queue"])
            for q in figures.values():
                gauge.add_metric([q.name], value(q))
            yield gauge

        status = _gauge("queue_status", "1 for the queue's current health status", ["queue", "status"])
        for q in figures.values():
            verdict = judge(q).status
            for s in STATUSES:
                status.add_metric([q.name, s], int(s == verdict))
        yield status

        leader = _gauge("dispatcher_leader_up", "1 while a dispatcher leader's heartbeat is live", [])
        leader.add_metric([], int(collect_leader(now).live))
        yield leader

        lengths = broker_queue_lengths()
        broker_up = _gauge("broker_up", "1 when Redis answered this scrape", [])
        broker_up.add_metric([], int(lengths is not None))
        yield broker_up
        if lengths is not None:
            depth = _gauge("broker_queue_length", "Messages waiting in the Redis queue", ["queue"])
            for queue, length in lengths.items():
                depth.add_metric([queue], length)
            yield depth

        dlq = _gauge("dead_letter_entries", "Dead-letter entries by queue and resolution", ["queue", "resolved"])
        dlq_counts = {(row["queue_name"], row["resolved"]): row["n"]
                      for row in DeadLetter.objects.values("queue_name", "resolved").annotate(n=Count("id"))}
        for queue in sorted(set(settings.QUEUE_NAMES) | {q for q, _ in dlq_counts}):
            for resolved in (False, True):
                dlq.add_metric([queue, str(resolved).lower()], dlq_counts.get((queue, resolved), 0))
        yield dlq

        yield from ai_spend_counters()

        labels = ["worker", "pool", "queue"]
        age = _gauge("worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat", labels)
        up = _gauge("worker_up", "1 while the worker's heartbeat is live", labels)
        # A worker process beats once per queue it consumes: its memory is one figure per process, or
        # sum() would count it once per queue.
        process_memory = _gauge("worker_process_memory_bytes", "RSS of the worker process and its pool processes, "
                                "once per process", ["worker", "pool", "host", "pid"])
        memory = _gauge("worker_memory_bytes", _deprecated("worker_memory_bytes", "worker_process_memory_bytes",
                                                           "; repeated per queue row, so its sum() overcounts"),
                        labels)
        done = _counter("worker_jobs_done", "Jobs the worker process finished since it started", labels)
        failed = _counter("worker_jobs_failed", "Job attempts that failed in the worker process since it started, "
                          "rejected input excepted", labels)
        rejected = _counter("worker_jobs_rejected", "Jobs the worker process dead-lettered for their own invalid "
                            "input since it started (not failures)", labels)
        done_gauge = _gauge("worker_jobs_done", _deprecated("worker_jobs_done"), labels)
        failed_gauge = _gauge("worker_jobs_failed", _deprecated("worker_jobs_failed"), labels)
        processes: set[tuple[str, int]] = set()
        for worker in worker_report(now):
            key = [worker["name"], worker["pool"], worker["queue"]]
            age.add_metric(key, worker["heartbeatAgeSeconds"])
            up.add_metric(key, int(worker["live"]))
            if (worker["host"], worker["pid"]) not in processes:  # its rows are "<node>/<queue>" (workers.heartbeat)
                processes.add((worker["host"], worker["pid"]))
                process_memory.add_metric([worker["name"].split("/")[0], worker["pool"], worker["host"],
                                           str(worker["pid"])], worker["memoryBytes"])
            memory.add_metric(key, worker["memoryBytes"])
            for total, gauge, figure in ((done, done_gauge, worker["jobsDone"]), (failed, failed_gauge, worker["jobsFailed"])):
                total.add_metric(key, figure)
                gauge.add_metric(key, figure)
            rejected.add_metric(key, worker["jobsRejected"])  # new: a counter only, no deprecated gauge
        yield from (age, up, process_memory, memory, done, failed, rejected, done_gauge, failed_gauge)


def ai_spend_counters() -> Iterator[Metric]:
    """Every paid request since the books began (MOCK_MODE's left out): counters, since the books only
    grow (a request's model and outcome never change, and paid requests are never pruned)."""
    spend = CounterMetricFamily("resilience_ai_spend_usd", "USD paid for Claude requests, by model", labels=["model"])
    requests = CounterMetricFamily("resilience_ai_requests", "Paid Claude requests by model and outcome "
                                   "(valid, malformed, refused)", labels=["model", "outcome"])
    by_model: dict[str, Decimal] = {}
    for row in paid_requests_by_model_and_outcome():
        by_model[row["model"]] = by_model.get(row["model"], Decimal(0)) + row["cost"]
        requests.add_metric([row["model"], row["outcome"]], row["requests"])
    for model, cost in sorted(by_model.items()):
        spend.add_metric([model], float(cost))
    yield from (spend, requests)


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResilienceCollector())
    return generate_latest(registry)
