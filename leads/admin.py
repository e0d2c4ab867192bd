from django.contrib import admin

from leads.models import Lead, LeadSubmission
from resilience.links import job_story_link, search_link


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("email", "first_name", "last_name", "company", "score", "status", "times_seen", "won_at",
                    "delivered_at", "created_at")
    list_filter = ("status", ("won_at", admin.EmptyFieldListFilter), ("delivered_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "first_name", "last_name", "company", "domain")
    # when it was first seen and last merged into; won and delivered are set by the delivery workflow
    # (delivery/admin.py adds the lead's delivery run and "Mark won and deliver" to this page)
    readonly_fields = ("story", "created_at", "updated_at", "won_at", "delivered_at")

    @admin.display(description="story")
    def story(self, lead: Lead) -> str:
        # A lead has many jobs (its submissions', its site's, its messages', its delivery's): the search
        # from its email lists them all, each with its story.
        return search_link(lead.email, "everything about this lead: its jobs, site, messages, dead letters") \
            if lead.pk else "–"


@admin.register(LeadSubmission)
class LeadSubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "status", "lead", "received_at", "processed_at")
    list_filter = ("status", "source")
    search_fields = ("error",)
    readonly_fields = ("source", "payload", "status", "lead", "job_id", "job_story", "batch_id", "error",
                       "received_at", "processed_at")

    @admin.display(description="job's story")
    def job_story(self, submission: LeadSubmission) -> str:
        return job_story_link(submission.job_id)

    def has_add_permission(self, request) -> bool:
        return False
