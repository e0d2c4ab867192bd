"""The admin API of deliveries: POST /api/admin/leads/<id>/deliver marks the lead won and starts its
run (201; 200 with the existing run when it has one; 409 when the lead will never have a site to deliver);
GET reads the lead's run and its steps."""
from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE
from django.db import transaction
from django.http import HttpRequest, JsonResponse

from access.audit import log_api_change
from access.auth import Scope, admin_api
from delivery import services
from delivery.models import DeliveryRun
from delivery.steps import step_title
from leads.models import Lead
from resilience.http import ApiError, iso_utc, json_object_body

VIEW, START = "delivery.view_deliveryrun", "delivery.add_deliveryrun"


def serialize_run(run: DeliveryRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "lead_id": run.lead_id,
        "state": run.state,
        "current_step": run.current_step,
        "started_by": run.started_by,
        "error": run.error,
        "created_at": iso_utc(run.created_at),
        "finished_at": iso_utc(run.finished_at),
        "steps": [
            {
                "position": step.position,
                "name": step.name,
                "title": step_title(step.name),
                "state": step.state,
                "attempts": step.attempts,
                "waits": step.waits,
                "waiting_for": step.waiting_for,
                "started_at": iso_utc(step.started_at),
                "finished_at": iso_utc(step.finished_at),
                "last_error": step.last_error,
                "job_id": str(step.job_id) if step.job_id else None,
            }
            for step in run.steps.order_by("position")
        ],
    }


def _start(request: HttpRequest, lead_id: int) -> JsonResponse:
    if request.body:  # nothing to say, but what is said must be an empty object: a typo is not ignored
        body = json_object_body(request)
        if body:
            raise ApiError(400, f"unknown field(s) {', '.join(sorted(body))[:200]}: this endpoint takes no fields")
    try:
        with transaction.atomic():
            run, created = services.start_delivery(lead_id, by=request.actor)
            if created:
                log_api_change(request.actor_user, run.lead, CHANGE, f"Marked won; delivery run {run.pk} started")
                log_api_change(request.actor_user, run, ADDITION, "Started")
    except services.LeadNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except services.NoSiteComing as exc:
        raise ApiError(409, f"not started: {exc}") from None
    return JsonResponse({"success": True, "created": created, "run": serialize_run(run)},
                        status=201 if created else 200)


def _read(request: HttpRequest, lead_id: int) -> JsonResponse:
    run = DeliveryRun.objects.filter(lead_id=lead_id).first()
    if run is None:
        if not Lead.objects.filter(pk=lead_id).exists():
            raise ApiError(404, f"no lead {lead_id}")
        raise ApiError(404, f"lead {lead_id} has no delivery run: POST here to mark it won and start one")
    return JsonResponse({"success": True, "run": serialize_run(run)})


@admin_api({"GET": VIEW, "POST": START}, scope=Scope.DELIVER)
def lead_delivery(request: HttpRequest, lead_id: int) -> JsonResponse:
    return (_start if request.method == "POST" else _read)(request, lead_id)
