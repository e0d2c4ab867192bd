from django.contrib import admin

from leads.models import Lead, LeadSubmission


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("email", "first_name", "last_name", "company", "score", "status", "times_seen", "won_at",
                    "delivered_at", "created_at")
    list_filter = ("status", ("won_at", admin.EmptyFieldListFilter), ("delivered_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "first_name", "last_name", "company", "domain")
    # when it was first seen and last merged into; won and delivered are set by the delivery workflow
    # (delivery/admin.py adds the lead's delivery run and "Mark won and deliver" to this page)
    readonly_fields = ("created_at", "updated_at", "won_at", "delivered_at")


@admin.register(LeadSubmission)
class LeadSubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "status", "lead", "received_at", "processed_at")
    list_filter = ("status", "source")
    search_fields = ("error",)
    readonly_fields = ("source", "payload", "status", "lead", "job_id", "batch_id", "error", "received_at",
                       "processed_at")

    def has_add_permission(self, request) -> bool:
        return False
