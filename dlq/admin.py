import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from dlq import actions
from dlq.models import DeadLetter
from resilience.links import job_story_link
from resilience.redaction import redact_text
from workers.bulk_admin import BulkPlan, bulk_action, over_cap, plural

# Enough refusals to see the pattern without a message that fills the screen.
_MAX_LISTED = 10


class ResolveForm(forms.Form):
    notes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text="What was wrong and what was done, for the post-mortem. Stored on each entry this resolves.",
    )

    def clean_notes(self) -> str:
        # A secret pasted into the notes (a key that "was wrong") is kept, and shown, as REDACTED.
        return redact_text(self.cleaned_data["notes"])


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("failed_at", "queue_name", "short_error", "attempts_made", "resolved", "resolved_by")
    list_filter = ("queue_name", "resolved", "failed_at")
    search_fields = ("error_message", "job_id")
    date_hierarchy = "failed_at"
    ordering = ("-failed_at",)
    readonly_fields = ("id", "queue_name", "job_id", "job_story", "pretty_job_data", "error_message", "pretty_stack",
                       "attempts_made", "failed_at", "resolved", "resolved_at", "resolved_by", "notes")
    fieldsets = (
        ("Job", {"fields": ("id", "queue_name", "job_id", "job_story", "pretty_job_data")}),
        ("Failure", {"fields": ("error_message", "pretty_stack", "attempts_made", "failed_at")}),
        ("Resolution", {"fields": ("resolved", "resolved_at", "resolved_by", "notes")}),
    )
    # Each on the rows checked or on everything the filter selects ("Select all"), at most
    # BULK_ACTION_MAX at once. Deletion is Django's own delete_selected (confirmation page, logged).
    actions = ["resolve_selected", "requeue_selected", "delete_selected"]

    @admin.display(description="job's story")
    def job_story(self, entry: DeadLetter) -> str:
        return job_story_link(entry.job_id)

    @admin.display(description="error")
    def short_error(self, entry: DeadLetter) -> str:
        return entry.error_preview(100)

    @admin.display(description="job data")
    def pretty_job_data(self, entry: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", json.dumps(entry.job_data, indent=2, sort_keys=True))

    @admin.display(description="stack trace")
    def pretty_stack(self, entry: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", entry.error_stack or "")

    def has_add_permission(self, request) -> bool:
        return False  # entries are made by failing jobs only

    @admin.action(description="Resolve selected entries (asks for notes)", permissions=["change"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> TemplateResponse | None:
        # First call: the intermediate page. Its submit posts the same action again with post=yes,
        # the way delete_selected confirms.
        if over_cap(self, request, queryset):
            return None
        form = ResolveForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_bound and form.is_valid():
            notes = form.cleaned_data["notes"].strip() or None
            selected = len(queryset)
            resolved = actions.resolve_many(queryset.values_list("pk", flat=True), by=request.user.get_username(),
                                            notes=notes)
            for entry in resolved:
                self.log_change(request, entry, "Resolved" + (f": {notes}" if notes else ""))
            count, skipped = len(resolved), selected - len(resolved)
            self.message_user(request, f"Resolved {count} dead-letter entr{'y' if count == 1 else 'ies'}.",
                              messages.SUCCESS)
            if skipped:
                self.message_user(request, f"{skipped} selected entr{'y was' if skipped == 1 else 'ies were'} "
                                  "already resolved and left as they were.", messages.WARNING)
            return None  # back to the change list
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve dead-letter entries",
            "subtitle": None,
            "opts": self.opts,
            "queryset": queryset,
            "unresolved_count": queryset.filter(resolved=False).count(),
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "resolve_selected",
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/dlq/deadletter/resolve_selected.html", context)

    @admin.action(description="Requeue selected entries' jobs", permissions=["change"])
    def requeue_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> TemplateResponse | None:
        def plan(rows: QuerySet[DeadLetter]) -> BulkPlan:
            unresolved = rows.filter(resolved=False).count()
            lines = [f"{plural(unresolved, 'unresolved entry', 'unresolved entries')}: each one's job goes back to "
                     "its queue with fresh attempts, and the entry is marked resolved by you."]
            done = rows.count() - unresolved
            warnings = [f"{plural(done, 'entry is', 'entries are')} resolved already and will not be requeued."
                        ] if done else []
            return BulkPlan(lines, warnings)

        def apply(rows: QuerySet[DeadLetter], _form) -> None:
            self._requeue(request, list(rows.values_list("pk", flat=True)))

        return bulk_action(self, request, queryset, action="requeue_selected", verb="Requeue", plan=plan,
                           apply=apply)

    def _requeue(self, request: HttpRequest, entry_ids: list) -> None:
        by = request.user.get_username()
        outcome = actions.requeue_many(entry_ids, by=by)
        for entry, job in outcome.requeued:
            self.log_change(request, entry, f"Requeued ledger job {job.id}")
        if outcome.requeued:
            count = len(outcome.requeued)
            self.message_user(request, f"Requeued {count} job{'' if count == 1 else 's'}; "
                              f"{'its entry is' if count == 1 else 'their entries are'} marked resolved.",
                              messages.SUCCESS)
        # One message per refusal: each reason names its entry, and they differ (resolved, not dead, pruned).
        for _, reason in outcome.refused[:_MAX_LISTED]:
            self.message_user(request, f"Not requeued: {reason}", messages.WARNING)
        if len(outcome.refused) > _MAX_LISTED:
            self.message_user(request, f"… and {len(outcome.refused) - _MAX_LISTED} more not requeued.",
                              messages.WARNING)

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> TemplateResponse | None:
        # Django's own confirmation page and logging, behind the cap every bulk action has.
        if over_cap(self, request, queryset):
            return None
        return django_delete_selected(self, request, queryset)
