"""The window in which a paid Claude answer can be lost: from the moment the SDK hands the answer to
our code to the commit of its record (sites.AiRequest). A worker killed inside it leaves an answer
that was paid for and is on no books, and the job's next attempt pays again; everywhere else the
answer is on the books and the next attempt uses it.

    .venv/bin/python -m bench.ai_window [--requests 100]

Runs site-generation jobs one after another in this process (no broker: the task's own code, as a
worker runs it) against make bench's database, the real `anthropic` client and the loopback fake
API of the tests, with MOCK_MODE off; prints the median, 95th percentile and longest window.
"""
from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

# MOCK_MODE off sends real mail too, which needs PUBLIC_BASE_URL (no email is sent here).
os.environ.update({"MOCK_MODE": "false", "ANTHROPIC_API_KEY": "sk-ant-bench-0123456789", "SITE_GENERATION_RATE": "0",
                   "PUBLIC_BASE_URL": "http://127.0.0.1:8000"})
from bench.run import prepare  # noqa: E402 - sets the bench database and Redis first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    prepare()

    from django.conf import settings

    from fakes.anthropic import FakeAnthropic
    from leads.models import Lead
    from sites import claude
    from sites.models import AiRequest, Site
    from sites.services import enqueue_site_generation
    from sites.tasks import generate_site
    from workers import ledger

    fake = FakeAnthropic().start()
    settings.ANTHROPIC_BASE_URL = fake.url
    arrived: dict[int, float] = {}
    windows: list[float] = []
    real_request, real_save = claude._request, AiRequest.save

    def request(*a, **k):
        reply = real_request(*a, **k)
        arrived[threading.get_ident()] = time.perf_counter()
        return reply

    def save(self, *a, **k):
        real_save(self, *a, **k)  # autocommit: returned means committed
        windows.append(time.perf_counter() - arrived.pop(threading.get_ident()))

    claude._request, AiRequest.save = request, save
    try:
        AiRequest.objects.all().delete()  # the books point at the sites (PROTECT): first
        Site.objects.all().delete()
        Lead.objects.filter(email__endswith="@ai-window.bench").delete()
        for n in range(args.requests):
            lead = Lead.objects.create(email=f"ceo{n}@ai-window.bench", title="CEO", company=f"Bench {n}",
                                       industry="logistics", score=90, status="qualified")
            enqueue_site_generation(lead)
            for dispatch in ledger.take_due_jobs("site-generation", 1):
                generate_site.run(dispatch.job_id, dispatch.token)
    finally:
        claude._request, AiRequest.save = real_request, real_save
        fake.stop()
    windows_ms = sorted(w * 1000 for w in windows)
    p95 = windows_ms[max(0, int(len(windows_ms) * 0.95) - 1)]
    print(f"answer handed to our code -> its record committed, {len(windows_ms)} paid requests: "
          f"median {statistics.median(windows_ms):.1f} ms, 95th percentile {p95:.1f} ms, longest {windows_ms[-1]:.1f} ms")


if __name__ == "__main__":
    main()
