import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from dlq import actions, corrections
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


class CorrectionForm(forms.Form):
    """One text field per field the job's intake accepts (dlq.corrections.Corrector.fields)."""

    def __init__(self, corrector: corrections.Corrector, original: dict, data=None) -> None:
        super().__init__(data)
        values = corrector.values(original)
        for name in corrector.fields:
            value = values.get(name)
            self.fields[name] = forms.CharField(required=False, initial="" if value is None else str(value),
                                                label=name.replace("_", " "), strip=True)
        self.fields["notes"] = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                                               help_text="What was wrong, for the post-mortem.")

    def clean_notes(self) -> str:
        return redact_text(self.cleaned_data["notes"])


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("failed_at", "queue_name", "short_error", "attempts_made", "resolved", "resolved_by")
    list_filter = ("queue_name", "resolved", "failed_at")
    search_fields = ("error_message", "job_id")
    date_hierarchy = "failed_at"
    ordering = ("-failed_at",)
    readonly_fields = ("id", "queue_name", "job_id", "job_story", "pretty_job_data", "fix", "error_message",
                       "pretty_stack", "attempts_made", "failed_at", "resolved", "resolved_at", "resolved_by", "notes",
                       "corrections_made")
    fieldsets = (
        ("Job", {"fields": ("id", "queue_name", "job_id", "job_story", "pretty_job_data", "fix")}),
        ("Failure", {"fields": ("error_message", "pretty_stack", "attempts_made", "failed_at")}),
        ("Resolution", {"fields": ("resolved", "resolved_at", "resolved_by", "notes", "corrections_made")}),
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

    @admin.display(description="to fix it")
    def fix(self, entry: DeadLetter) -> str:
        if corrections.corrector_for(entry) is not None:
            if entry.resolved:
                return "Resolved: nothing to correct."
            url = reverse("admin:dlq_deadletter_correct", args=[entry.pk])
            return format_html('<a class="button" href="{}">Correct the input and requeue</a> (the original is '
                               "kept beside the correction)", url)
        rows = corrections.rows_to_fix(entry)
        if rows:
            links = format_html_join(", ", "{}", ((format_html('<a href="{}">{}</a>', url, name) if url else name,)
                                                  for name, url in rows))
            return format_html("The job's data holds only ids: correct {} itself, then requeue this entry.", links)
        return "Nothing here to correct: requeue it once its cause is fixed."

    @admin.display(description="corrections")
    def corrections_made(self, entry: DeadLetter) -> str:
        made = list(entry.corrections.all())
        if not made:
            return "–"
        return format_html_join("", "<p>{} by {} in {}:<br>was <code>{}</code><br>now <code>{}</code></p>", (
            (c.corrected_at, c.corrected_by, c.stored_in, json.dumps(c.original, sort_keys=True),
             json.dumps(c.corrected, sort_keys=True)) for c in made))

    def get_urls(self):
        return [path("<path:object_id>/correct/", self.admin_site.admin_view(self.correct_view),
                     name="dlq_deadletter_correct"), *super().get_urls()]

    def correct_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The fields the job's intake accepts, filled from its input; on submit checked by the intake's
        own rules, stored with the original kept, and the job requeued."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        entry = self.get_object(request, object_id)
        corrector = corrections.corrector_for(entry) if entry is not None else None
        if entry is None or corrector is None:
            raise Http404("no dead-letter entry with input to correct")
        original = corrector.current(entry) or {}
        form = CorrectionForm(corrector, original, request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            corrected = corrector.merge(original, {name: form.cleaned_data[name] for name in corrector.fields})
            for problem in corrector.problems(corrected):
                form.add_error(None, problem)
            if form.is_valid():
                try:
                    with transaction.atomic():
                        correction, job = actions.correct_and_requeue(
                            entry.pk, corrector, corrected, by=request.user.get_username(),
                            notes=form.cleaned_data["notes"].strip())
                        self.log_change(request, entry, f"Corrected the input ({correction.stored_in}) and requeued "
                                                        f"ledger job {job.id}")
                except actions.DlqActionError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, f"Corrected {correction.stored_in} and requeued its job.",
                                      messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:dlq_deadletter_change", args=[entry.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Correct and requeue",
            "subtitle": None,
            "opts": self.opts,
            "entry": entry,
            "form": form,
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/dlq/deadletter/correct.html", context)

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
