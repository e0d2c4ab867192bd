"""Delivery test helpers: the lead's generated site, each step's outside effect counted, and a way to
make a step fail."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import pytest
from django.db.models.functions import Now

import uuid

from delivery import steps
from delivery.tasks import run_step
from leads.models import Lead
from sites.models import Site
from sites.services import enqueue_site_generation
from workers import ledger
from workers.models import Job


@dataclass
class Executions:
    counts: Counter = field(default_factory=Counter)  # step name -> executions of its call
    failing: dict[str, BaseException] = field(default_factory=dict)  # step name -> raised by its call


def make_site(lead: Lead) -> Site:
    """The site that site generation recorded for `lead` (what delivery publishes and links to)."""
    return Site.objects.create(lead=lead, job_id=uuid.uuid4(), design="bold", content={}, html="<p>site</p>",
                               model="claude-3-haiku-20240307", cost_usd=0)


@pytest.fixture
def site_ready(monkeypatch, lead) -> list[int]:
    """The lead has its site; returns the ids of the sites the publish step published, in order."""
    make_site(lead)
    published: list[int] = []
    real = steps.mark_site_published

    def mark(site):
        published.append(site.pk)
        return real(site)

    monkeypatch.setattr(steps, "mark_site_published", mark)
    return published


@pytest.fixture
def executions(monkeypatch, site_ready) -> Executions:
    seen = Executions()

    def counted(step: steps.Step) -> steps.Step:
        def call(ctx):
            seen.counts[step.name] += 1
            if step.name in seen.failing:
                raise seen.failing[step.name]
            return step.call(ctx) if step.call else {}
        return replace(step, call=call)

    monkeypatch.setattr(steps, "STEPS", tuple(counted(s) for s in steps.STEPS))
    return seen


@pytest.fixture
def lead(db) -> Lead:
    """A qualified lead, with the site-generation job its qualification enqueued (not run: no site yet)."""
    lead = Lead.objects.create(email="won@acme.io", company="Acme", status="qualified", score=80)
    enqueue_site_generation(lead)
    return lead


def run_due_steps(rounds: int = 30) -> list[str]:
    """What the delivery workers do, in this process: every due job (retries made due at once),
    until none is left."""
    results = []
    for _ in range(rounds):
        Job.objects.filter(queue="delivery", state=Job.State.RETRY).update(next_attempt_at=Now())
        due = ledger.take_due_jobs("delivery", 10)
        if not due:
            break
        results += [run_step.run(d.job_id, d.token) for d in due]
    return results
