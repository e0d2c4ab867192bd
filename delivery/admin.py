"""Runs with their steps (state, attempts, waits, timings, the job of each), read-only: runs are started by
"mark won" on a lead (or the admin API) and moved on by their jobs; a failed run is resumed by
requeueing its dead-letter entry. "Mark won" and the lead's run are delivery's part of the leads' admin
page: leads knows nothing of delivery, so delivery registers the leads' admin again with them."""
from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html

from delivery.models import DeliveryRun, DeliveryStep
from delivery.services import NoSiteComing, start_delivery
from delivery.steps import step_title
from leads.admin import LeadAdmin
from leads.models import Lead
from workers.admin import ReadOnlyAdmin


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "–"
    seconds = (end - start).total_seconds()
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _job_link(job_id: uuid.UUID | None) -> str:
    if job_id is None:
        return "–"
    return format_html('<a href="{}">{}</a> (<a href="{}" class="job-story-link">story</a>)',
                       reverse("admin:workers_job_change", args=[job_id]), job_id, reverse("job-story", args=[job_id]))


class DeliveryStepInline(admin.TabularInline):
    model = DeliveryStep
    fields = ("position", "step", "state", "attempts", "waits", "waiting_for", "started_at", "finished_at", "took",
              "job", "last_error", "result")
    readonly_fields = fields
    ordering = ("position",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="step")
    def step(self, step: DeliveryStep) -> str:
        return f"{step_title(step.name)} ({step.name})"

    @admin.display(description="took")
    def took(self, step: DeliveryStep) -> str:
        return _duration(step.started_at, step.finished_at)

    @admin.display(description="ledger job")
    def job(self, step: DeliveryStep) -> str:
        return _job_link(step.job_id)


class CurrentStepFilter(admin.SimpleListFilter):
    title, parameter_name = "at step", "at_step"

    def lookups(self, request, model_admin):
        from delivery.steps import STEPS

        return [(str(i), f"{i}. {step.title}") for i, step in enumerate(STEPS, 1)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(current_step=int(value)) if value and value.isdigit() else queryset


@admin.register(DeliveryRun)
class DeliveryRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "lead", "state", "at_step", "attempts", "started_by", "created_at", "finished_at", "took")
    list_filter = ("state", CurrentStepFilter, "created_at")
    search_fields = ("lead__email", "lead__company", "error", "started_by")
    date_hierarchy = "created_at"
    list_select_related = ("lead",)
    inlines = [DeliveryStepInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("steps")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record of a delivery; a running one would lose its steps under its job

    @admin.display(description="step")
    def at_step(self, run: DeliveryRun) -> str:
        steps = list(run.steps.all())
        current = next((s for s in steps if s.position == run.current_step), None)
        name = step_title(current.name) if current else "?"
        return f"{run.current_step} of {len(steps)}: {name}"

    @admin.display(description="attempts")
    def attempts(self, run: DeliveryRun) -> int:
        return sum(step.attempts for step in run.steps.all())

    @admin.display(description="took")
    def took(self, run: DeliveryRun) -> str:
        return _duration(run.created_at, run.finished_at)


class DeliveringLeadAdmin(LeadAdmin):
    """The leads' admin with delivery's part: the lead's run, and the action that starts it."""

    readonly_fields = (*LeadAdmin.readonly_fields, "delivery")
    actions = ["mark_won"]

    @admin.display(description="delivery run")
    def delivery(self, lead: Lead) -> str:
        run = getattr(lead, "delivery_run", None)
        if run is None:
            return "none (not marked won)"
        url = reverse("admin:delivery_deliveryrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a>', url, f"{run.state}, step {run.current_step}")

    def has_deliver_permission(self, request) -> bool:
        return request.user.has_perm("delivery.add_deliveryrun")

    @admin.action(description="Mark won and deliver (one delivery run per lead)", permissions=["deliver"])
    def mark_won(self, request, queryset) -> None:
        started = existing = 0
        for lead in queryset:
            try:
                with transaction.atomic():  # the run and its history record stand or fall together
                    run, created = start_delivery(lead.pk, by=request.user.get_username())
                    if created:
                        self.log_change(request, lead, f"Marked won; delivery run {run.pk} started")
            except NoSiteComing as exc:
                self.message_user(request, f"Not marked won, no delivery started for {lead.email}: {exc}.",
                                  messages.ERROR)
                continue
            if created:
                started += 1
            else:
                existing += 1
        if started:
            self.message_user(request, f"Marked won and started delivery of {started} lead(s).", messages.SUCCESS)
        if existing:
            self.message_user(request, f"{existing} lead(s) already had a delivery run; nothing started again "
                                       "(a failed run resumes by requeueing its dead-letter entry).", messages.WARNING)


# leads.admin registered Lead when it was imported above; the page becomes this one.
admin.site.unregister(Lead)
admin.site.register(Lead, DeliveringLeadAdmin)
