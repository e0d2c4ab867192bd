from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, LogEntry
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from emails import services, suppression
from emails.models import BreakerTrip, Campaign, EmailEvent, Message, Suppression
from emails.templating import TemplateError
from resilience.links import job_story_link

# The HTML part of a preview is shown on a page of its own, sandboxed: no script, no form, and no
# request anywhere, images included (an image from another host would tell it who previewed):
# only data: images show.
PREVIEW_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# Who may see a real lead's data in a preview; everyone else previews a made-up sample lead.
VIEW_LEADS = "leads.view_lead"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "audience", "status", "messages_total", "sent", "failed", "unknown", "opened", "clicked",
                    "unsubscribed", "open_rate", "click_rate", "launched_at")
    list_filter = ("status", "audience")
    search_fields = ("name",)
    readonly_fields = ("status", "template_note", "created_at", "launched_at", "launched_by", "figures")
    fieldsets = (
        (None, {"fields": ("name", "audience", "status")}),
        ("Templates", {"fields": ("subject_template", "text_template", "html_template", "template_note"),
                       "description": "Campaign template language: {{ field }} or {{ field|filter }}, nothing else "
                                      "(no {% tags %}). Fields: first_name, last_name, company, title, email, domain, "
                                      "website, industry, country (also as lead.first_name ...), site_url, "
                                      "unsubscribe_url (added when missing), campaign.name. Filters: "
                                      "default:\"text\", upper, lower, title. Values are escaped; the HTML part "
                                      "is sanitised when saved (docs/pipeline.md, Campaign templates, says what it may contain)."}),
        ("Launch", {"fields": ("created_at", "launched_at", "launched_by", "figures")}),
    )
    actions = ["preview_campaign", "launch_campaigns"]

    def get_queryset(self, request):
        S = Message.Status
        return super().get_queryset(request).annotate(
            n_total=Count("messages"), n_sent=Count("messages", filter=Q(messages__status=S.SENT)),
            n_failed=Count("messages", filter=Q(messages__status=S.FAILED)),
            n_unknown=Count("messages", filter=Q(messages__status=S.UNKNOWN)),
            n_opened=Count("messages", filter=Q(messages__first_opened_at__isnull=False)),
            n_clicked=Count("messages", filter=Q(messages__first_clicked_at__isnull=False)),
            n_unsubscribed=Count("messages", filter=Q(messages__unsubscribed_at__isnull=False)))

    def get_readonly_fields(self, request, obj=None):
        # A launched campaign's templates are what its messages were made from.
        if obj is not None and obj.status != Campaign.Status.DRAFT:
            return (*self.readonly_fields, "name", "audience", "subject_template", "text_template", "html_template")
        return self.readonly_fields

    @admin.display(description="messages", ordering="n_total")
    def messages_total(self, c): return c.n_total  # noqa: E704

    @admin.display(ordering="n_sent")
    def sent(self, c): return c.n_sent  # noqa: E704

    @admin.display(ordering="n_failed")
    def failed(self, c): return c.n_failed  # noqa: E704

    @admin.display(description="unknown")
    def unknown(self, c): return c.n_unknown  # noqa: E704

    @admin.display(ordering="n_opened")
    def opened(self, c): return c.n_opened  # noqa: E704

    @admin.display(ordering="n_clicked")
    def clicked(self, c): return c.n_clicked  # noqa: E704

    @admin.display()
    def unsubscribed(self, c): return c.n_unsubscribed  # noqa: E704

    @admin.display(description="open rate")
    def open_rate(self, c): return _pct(c.n_opened, c.n_sent)  # noqa: E704

    @admin.display(description="click rate")
    def click_rate(self, c): return _pct(c.n_clicked, c.n_sent)  # noqa: E704

    @admin.display(description="figures")
    def figures(self, campaign: Campaign) -> str:
        if campaign.pk is None:
            return "-"
        f = services.campaign_figures([campaign.pk])[campaign.pk]
        return format_html(
            "{} messages: {} sent, {} failed ({} %), {} unknown, {} waiting; {} opened ({} %), {} clicked ({} %), "
            "{} unsubscribed ({} %)", f["total"], f["sent"], f["failed"], f["failure_rate"], f["unknown"],
            f["waiting"], f["opened"], f["open_rate"], f["clicked"], f["click_rate"], f["unsubscribed"],
            f["unsubscribe_rate"])

    def has_launch_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("emails.launch_campaign")

    @admin.action(description="Preview the selected campaign (as its first recipient gets it)", permissions=["view"])
    def preview_campaign(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> TemplateResponse | None:
        if len(queryset) != 1:
            self.message_user(request, "Select exactly one campaign to preview.", messages.WARNING)
            return None
        return self._preview_page(request, queryset[0])

    def _preview_page(self, request: HttpRequest, campaign: Campaign) -> TemplateResponse | None:
        try:
            rendered, real_lead = services.preview(campaign, real_lead=request.user.has_perm(VIEW_LEADS))
        except TemplateError as exc:
            self.message_user(request, f"{campaign}: template error: {exc}", messages.ERROR)
            return None
        context = {**self.admin_site.each_context(request), "title": f"Preview: {campaign}", "campaign": campaign,
                   "rendered": rendered, "real_lead": real_lead, "opts": self.model._meta,
                   "html_url": reverse("admin:emails_campaign_preview_html", args=[campaign.pk])}
        return TemplateResponse(request, "admin/emails/campaign/preview.html", context)

    def get_urls(self):
        return [path("<int:pk>/preview/html", self.admin_site.admin_view(self.preview_html),
                     name="emails_campaign_preview_html"), *super().get_urls()]

    def preview_html(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse("Forbidden", status=403, content_type="text/plain")
        campaign = get_object_or_404(Campaign, pk=pk)
        try:
            rendered, _ = services.preview(campaign, real_lead=request.user.has_perm(VIEW_LEADS))
            response = HttpResponse(rendered.html or "(no HTML part)")
        except TemplateError as exc:
            response = HttpResponse(f"template error: {exc}", content_type="text/plain; charset=utf-8")
        response["Content-Security-Policy"] = PREVIEW_POLICY
        return response

    @admin.action(description="Launch the selected campaigns (one email per audience member)", permissions=["launch"])
    def launch_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            try:
                result = services.launch_campaign(campaign.pk, launched_by=request.user.get_username())
            except TemplateError as exc:
                self.message_user(request, f"{campaign}: not launched, template error: {exc}", messages.ERROR)
                continue
            if result.already_launched:
                self.message_user(request, f"{campaign}: already launched; nothing sent again.", messages.WARNING)
                continue
            self.log_change(request, campaign, f"Launched: {result.queued} messages queued, "
                                               f"{result.skipped} unsubscribed or bounced addresses skipped")
            self.message_user(request, f"{campaign}: launched, {result.queued} messages queued, {result.skipped} "
                                       "unsubscribed or bounced addresses skipped.", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "to_email", "subject", "status", "campaign", "sent_at", "open_count",
                    "click_count")
    list_filter = ("status", "kind", "campaign")
    search_fields = ("to_email", "subject", "key")
    readonly_fields = ("id", "message_id", "key", "kind", "campaign", "lead", "to_email", "subject", "text_body",
                       "html_source", "marketing", "links", "site_url", "status", "fence", "job_id", "job_story", "send_attempts",
                       "resends", "last_error", "claimed_at", "sent_at", "provider_message_id", "first_opened_at",
                       "open_count", "first_clicked_at", "click_count", "unsubscribed_at", "created_at", "updated_at")
    exclude = ("html_body",)
    fieldsets = (
        ("Message", {"fields": ("id", "message_id", "key", "kind", "campaign", "lead", "to_email", "subject",
                                "text_body", "html_source", "marketing", "links", "site_url")}),
        ("Sending", {"fields": ("status", "last_error", "fence", "job_id", "job_story", "send_attempts", "resends", "claimed_at",
                                "sent_at", "provider_message_id")}),
        ("Tracking", {"fields": ("first_opened_at", "open_count", "first_clicked_at", "click_count",
                                 "unsubscribed_at")}),
    )
    actions = ["mark_sent", "send_again"]

    @admin.display(description="Message-ID")
    def message_id(self, message: Message) -> str:
        return message.message_id_header

    @admin.display(description="job's story")
    def job_story(self, message: Message) -> str:
        return job_story_link(message.job_id)

    @admin.display(description="HTML part")
    def html_source(self, message: Message) -> str:
        return format_html("<pre>{}</pre>", message.html_body)

    def has_add_permission(self, request) -> bool:
        return False  # messages are made by outreach, campaigns and other apps' services

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("emails.resolve_unknown_message")

    def _resolve(self, request, queryset, decide, verb: str) -> None:
        done = 0
        for message in queryset:
            if decide(message.pk):
                self.log_change(request, message, f"Unknown message {verb}")
                done += 1
        self.message_user(request, f"{done} unknown message(s) {verb}.", messages.SUCCESS)
        if done < len(queryset):
            self.message_user(request, f"{len(queryset) - done} selected message(s) were not `unknown` and were left "
                                       "as they were.", messages.WARNING)

    @admin.action(description="Unknown messages: mark sent (you found them delivered)", permissions=["resolve"])
    def mark_sent(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self._resolve(request, queryset, services.mark_unknown_sent, "marked sent")

    @admin.action(description="Unknown messages: send again (you found them not delivered)", permissions=["resolve"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self._resolve(request, queryset, services.resend_unknown, "queued to send again")


class SuppressionForm(forms.ModelForm):
    """Adding by hand: the address, why, and a note; the rest (when, who) is filled in."""

    class Meta:
        model = Suppression
        fields = ("email", "reason", "detail")

    def clean_email(self) -> str:
        try:
            return suppression.normalise(self.cleaned_data["email"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class SuppressionImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header line naming `email` and optionally `reason` (bounce, "
                                     "complaint, unsubscribe, manual; manual when empty) and `detail`: the export's "
                                     "format reads back.")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Rows are facts (why, from which message or event, when): they are added (by hand, by import, by
    sending) and removed, never edited. Adding and removing are in the admin history."""

    form = SuppressionForm
    list_display = ("email", "reason", "created_at", "by", "source", "detail_preview")
    list_filter = ("reason", ("created_at", admin.DateFieldListFilter))
    search_fields = ("email", "event_id", "by", "detail")
    readonly_fields = ("email", "reason", "created_at", "by", "source", "event_id", "detail")
    actions = ["export_csv"]
    change_list_template = "admin/emails/suppression/change_list.html"

    @admin.display(description="from")
    def source(self, row: Suppression) -> str:
        if row.message_id:
            return format_html('<a href="{}">message {}</a>', reverse("admin:emails_message_change",
                                                                      args=[row.message_id]), row.message_id)
        return f"event {row.event_id}" if row.event_id else "-"

    @admin.display(description="detail")
    def detail_preview(self, row: Suppression) -> str:
        return row.detail[:120]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request)

    def save_model(self, request, obj: Suppression, form, change) -> None:
        # Through the one service, so a row added here reads like every other (by = the person).
        row = suppression.suppress(obj.email, obj.reason, detail=obj.detail, by=request.user.get_username())
        obj.pk, obj.created_at, obj.by = row.pk, row.created_at, row.by

    @admin.action(description="Export the selected addresses as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="suppressed-addresses.csv"'
        suppression.export_csv(queryset, response)
        return response

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_view), name="emails_suppression_import"),
                *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse("Forbidden", status=403, content_type="text/plain")
        form = SuppressionImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            data = upload.read(suppression.IMPORT_MAX_BYTES + 1)
            by = f"import by {request.user.get_username()}"
            report = suppression.import_csv(data, by=by)
            if report.error:
                self.message_user(request, f"Nothing imported: {report.error}.", messages.ERROR)
            else:
                if report.added_ids:  # each added row in the admin history, as adding one by hand is
                    LogEntry.objects.log_actions(request.user.pk, Suppression.objects.filter(pk__in=report.added_ids),
                                                 ADDITION, f"Imported from {upload.name[:100]}")
                self.message_user(request, f"Imported {report.added} address(es); {report.already} already there; "
                                           f"{report.bad_total} bad row(s) skipped.",
                                  messages.SUCCESS if not report.bad_total else messages.WARNING)
                for line, why in report.bad[:20]:
                    self.message_user(request, f"line {line}: {why}", messages.WARNING)
                if report.bad_total > 20:
                    self.message_user(request, f"... and {report.bad_total - 20} more bad row(s).", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:emails_suppression_changelist"))
        context = {**self.admin_site.each_context(request), "title": "Import suppressed addresses", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/emails/suppression/import.html", context)


@admin.register(BreakerTrip)
class BreakerTripAdmin(admin.ModelAdmin):
    """The breaker's history. Lifting a pause is done where every pause is: Workers > Queue pauses."""

    list_display = ("tripped_at", "cause", "resumed_at", "reason")
    list_filter = ("cause",)
    readonly_fields = ("cause", "reason", "tripped_at", "resumed_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EmailEvent)
class EmailEventAdmin(admin.ModelAdmin):
    """What the providers reported, as they reported it: read-only (a record of fact, like the ledger)."""

    list_display = ("received_at", "provider", "event_type", "recipient", "message", "reject_reason", "suppressed",
                    "occurred_at")
    list_filter = ("event_type", "provider", "suppressed", "reject_reason")
    search_fields = ("recipient", "event_id", "provider_message_id")
    list_select_related = ("message",)
    date_hierarchy = "received_at"
    fieldsets = (
        ("Event", {"fields": ("provider", "event_id", "event_type", "recipient", "occurred_at", "received_at")}),
        ("Message", {"fields": ("message", "provider_message_id")}),
        ("Outcome", {"fields": ("reject_reason", "description", "suppressed")}),
        ("As posted", {"fields": ("payload",)}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in EmailEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
