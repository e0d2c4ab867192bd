from django.contrib import admin

from leads.models import Lead, LeadSubmission


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("email", "first_name", "last_name", "company", "score", "status", "times_seen", "created_at")
    list_filter = ("status",)
    search_fields = ("email", "first_name", "last_name", "company", "domain")
    readonly_fields = ("created_at", "updated_at")  # when it was first seen and last merged into


@admin.register(LeadSubmission)
class LeadSubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "status", "lead", "received_at", "processed_at")
    list_filter = ("status", "source")
    search_fields = ("error",)
    readonly_fields = ("source", "payload", "status", "lead", "job_id", "batch_id", "error", "received_at",
                       "processed_at")

    def has_add_permission(self, request) -> bool:
        return False
