from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html

from delivery.services import NoSiteComing, start_delivery
from leads.models import Lead, LeadSubmission


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("email", "first_name", "last_name", "company", "score", "status", "times_seen", "won_at",
                    "delivered_at", "created_at")
    list_filter = ("status", ("won_at", admin.EmptyFieldListFilter), ("delivered_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "first_name", "last_name", "company", "domain")
    # when it was first seen and last merged into; won and delivered are set by the delivery workflow
    readonly_fields = ("created_at", "updated_at", "won_at", "delivered_at", "delivery")
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


@admin.register(LeadSubmission)
class LeadSubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "status", "lead", "received_at", "processed_at")
    list_filter = ("status", "source")
    search_fields = ("error",)
    readonly_fields = ("source", "payload", "status", "lead", "job_id", "batch_id", "error", "received_at",
                       "processed_at")

    def has_add_permission(self, request) -> bool:
        return False
