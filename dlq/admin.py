import json

from django.contrib import admin
from django.utils.html import format_html

from dlq.models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("failed_at", "queue_name", "short_error", "attempts_made", "resolved", "resolved_by")
    list_filter = ("queue_name", "resolved", "failed_at")
    search_fields = ("error_message", "job_id")
    date_hierarchy = "failed_at"
    ordering = ("-failed_at",)
    readonly_fields = ("id", "queue_name", "job_id", "pretty_job_data", "error_message", "pretty_stack",
                       "attempts_made", "failed_at", "resolved", "resolved_at", "resolved_by", "notes")
    fieldsets = (
        ("Job", {"fields": ("id", "queue_name", "job_id", "pretty_job_data")}),
        ("Failure", {"fields": ("error_message", "pretty_stack", "attempts_made", "failed_at")}),
        ("Resolution", {"fields": ("resolved", "resolved_at", "resolved_by", "notes")}),
    )

    @admin.display(description="error")
    def short_error(self, entry: DeadLetter) -> str:
        message = entry.error_message or ""
        return message if len(message) <= 100 else message[:99] + "…"

    @admin.display(description="job data")
    def pretty_job_data(self, entry: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", json.dumps(entry.job_data, indent=2, sort_keys=True))

    @admin.display(description="stack trace")
    def pretty_stack(self, entry: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", entry.error_stack or "")

    def has_add_permission(self, request) -> bool:
        return False  # entries are made by failing jobs only
