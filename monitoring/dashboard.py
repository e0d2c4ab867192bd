"""The worker dashboard in Django admin (/admin/workers/).

One JSON document feeds it: the page embeds it for the first paint and its script fetches it again
from /admin/workers/data every 10 s, so the page and its refreshes share one rendering path (the
script). Both views sit behind admin.site.admin_view (staff only; the data URL sends an expired
session to the login page, which the script detects and reports), and both need the model
permissions to view jobs and dead-letter entries, whose data they show.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from access.auth import missing_permission, permission_error
from dlq.models import DeadLetter
from emails.suppression import counts as suppression_counts
from resilience.db import db_now
from resilience.http import iso_utc
from sites.services import spend_today_summary
from monitoring.health import health_report, worker_report

REFRESH_SECONDS = 10
DEAD_LETTERS_SHOWN = 10
# The list shows the start of each error; the entry's admin page has all of it and the stack.
ERROR_PREVIEW_CHARS = 300
# The page shows the ledger's figures and the newest dead-letter entries (with their job data's
# errors): a person needs the admin's permission to view both.
DASHBOARD_PERMISSIONS = ("workers.view_job", "dlq.view_deadletter")
DELIVERY_RUNS_SHOWN = 10


def flower_url(request: HttpRequest) -> str:
    """FLOWER_PUBLIC_URL when set, else Flower's port on the host the browser used for this page."""
    if settings.FLOWER_PUBLIC_URL:
        return settings.FLOWER_PUBLIC_URL
    domain, _port = split_domain_port(request.get_host())
    return f"{request.scheme}://{domain or 'localhost'}:{settings.FLOWER_PORT}/"




def _job_admin_url(job_id: str | None) -> str | None:
    try:
        return reverse("admin:workers_job_change", args=[uuid.UUID(str(job_id))])
    except (TypeError, ValueError):
        return None  # not a ledger job id (entries may come from elsewhere)


def dead_letter_summary(entry: DeadLetter) -> dict[str, Any]:
    """An unresolved entry as the dashboard lists it: the DLQ API's field names, the error cut short."""
    return {
        "id": str(entry.id),
        "queue_name": entry.queue_name,
        "job_id": entry.job_id,
        "error_message": entry.error_preview(ERROR_PREVIEW_CHARS),
        "attempts_made": entry.attempts_made,
        "failed_at": iso_utc(entry.failed_at),
        "resolved": entry.resolved,
        "adminUrl": reverse("admin:dlq_deadletter_change", args=[entry.pk]),
        "jobAdminUrl": _job_admin_url(entry.job_id),
    }


def delivery_runs_summary(request: HttpRequest) -> dict[str, Any] | None:
    """Delivery runs in progress, newest first, each at its current step; None (not shown) for a
    user who may not view runs."""
    if not request.user.has_perm("delivery.view_deliveryrun"):
        return None
    from delivery.services import runs_in_progress
    from delivery.steps import step_title

    runs, total = runs_in_progress(DELIVERY_RUNS_SHOWN)
    shown = []
    for run in runs:
        steps = sorted(run.steps.all(), key=lambda step: step.position)
        current = next((step for step in steps if step.position == run.current_step), None)
        shown.append({
            "id": run.pk,
            "lead": run.lead.email,
            "step": run.current_step,
            "steps": len(steps),
            "stepName": step_title(current.name) if current else "",
            # A step waiting for the lead's site is not stuck: say so, and why, where its error would be.
            "stepState": ("waiting" if current.waiting_for else current.state) if current else "",
            "stepAttempts": current.attempts if current else 0,
            "lastError": (current.last_error or current.waiting_for if current else "")[:ERROR_PREVIEW_CHARS],
            "startedAt": iso_utc(run.created_at),
            "adminUrl": reverse("admin:delivery_deliveryrun_change", args=[run.pk]),
        })
    return {"inProgress": total, "runs": shown,
            "listUrl": reverse("admin:delivery_deliveryrun_changelist") + "?state__exact=running"}


def dashboard_payload(request: HttpRequest) -> dict[str, Any]:
    now = db_now()
    unresolved = DeadLetter.objects.filter(resolved=False)
    newest = unresolved.order_by("-failed_at").only(
        "id", "queue_name", "job_id", "error_message", "attempts_made", "failed_at", "resolved"
    )[:DEAD_LETTERS_SHOWN]
    return {
        "health": health_report(now),
        "workers": worker_report(now),
        "deadLetters": [dead_letter_summary(entry) for entry in newest],
        "deadLetterUnresolved": unresolved.count(),
        "deliveryRuns": delivery_runs_summary(request),
        "flowerUrl": flower_url(request),
        "aiSpendToday": spend_today_summary(now),
        "emailSuppressions": suppression_counts(),
        "generatedAt": iso_utc(now),
    }


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    if missing := missing_permission(request.user, DASHBOARD_PERMISSIONS):
        context = {**admin.site.each_context(request), "title": "Worker dashboard", "missing_permission": missing}
        return TemplateResponse(request, "admin/workers/forbidden.html", context, status=403)
    context = {
        **admin.site.each_context(request),
        "title": "Worker dashboard",
        "dashboard_data": (data := dashboard_payload(request)),
        "ai_spend": data["aiSpendToday"],
        "suppressions": data["emailSuppressions"],
        "dashboard_config": {
            "dataUrl": reverse("workers-dashboard-data"),
            "requeueUrl": reverse("dead-letter-requeue"),
            "loginUrl": reverse("admin:login"),
            "deadLetterListUrl": reverse("admin:dlq_deadletter_changelist") + "?resolved__exact=0",
            "csrfToken": get_token(request),
            "refreshSeconds": REFRESH_SECONDS,
        },
    }
    return TemplateResponse(request, "admin/workers/dashboard.html", context)


@require_GET
def dashboard_data(request: HttpRequest) -> JsonResponse:
    if missing := missing_permission(request.user, DASHBOARD_PERMISSIONS):
        return permission_error(request.user, missing)
    return JsonResponse(dashboard_payload(request))
