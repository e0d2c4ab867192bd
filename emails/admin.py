from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template import Template, TemplateSyntaxError
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from emails import services
from emails.models import Campaign, EmailEvent, Message, Suppression

# The HTML part of a preview is shown on a page of its own, sandboxed: no script, no form, no
# request anywhere but images, whatever the template says.
PREVIEW_POLICY = "sandbox; default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'"


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ("name", "audience", "subject_template", "text_template", "html_template")

    def clean(self):
        data = super().clean()
        for name in ("subject_template", "text_template", "html_template"):
            try:
                Template(data.get(name) or "")
            except TemplateSyntaxError as exc:
                self.add_error(name, f"template error: {exc}")
        return data


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ("name", "audience", "status", "messages_total", "sent", "failed", "unknown", "opened", "clicked",
                    "unsubscribed", "open_rate", "click_rate", "launched_at")
    list_filter = ("status", "audience")
    search_fields = ("name",)
    readonly_fields = ("status", "created_at", "launched_at", "launched_by", "figures")
    fieldsets = (
        (None, {"fields": ("name", "audience", "status")}),
        ("Templates", {"fields": ("subject_template", "text_template", "html_template"),
                       "description": "Django template language. Context: first_name, last_name, company, title, "
                                      "email, domain, website, site_url, unsubscribe_url (added when missing)."}),
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
            rendered = services.preview(campaign)
        except TemplateSyntaxError as exc:
            self.message_user(request, f"{campaign}: template error: {exc}", messages.ERROR)
            return None
        context = {**self.admin_site.each_context(request), "title": f"Preview: {campaign}", "campaign": campaign,
                   "rendered": rendered, "opts": self.model._meta,
                   "html_url": reverse("admin:emails_campaign_preview_html", args=[campaign.pk])}
        return TemplateResponse(request, "admin/emails/campaign/preview.html", context)

    def get_urls(self):
        return [path("<int:pk>/preview/html", self.admin_site.admin_view(self.preview_html),
                     name="emails_campaign_preview_html"), *super().get_urls()]

    def preview_html(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse("Forbidden", status=403, content_type="text/plain")
        campaign = get_object_or_404(Campaign, pk=pk)
        response = HttpResponse(services.preview(campaign).html or "(no HTML part)")
        response["Content-Security-Policy"] = PREVIEW_POLICY
        return response

    @admin.action(description="Launch the selected campaigns (one email per audience member)", permissions=["launch"])
    def launch_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            try:
                result = services.launch_campaign(campaign.pk, launched_by=request.user.get_username())
            except TemplateSyntaxError as exc:
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
                       "html_source", "marketing", "links", "site_url", "status", "fence", "job_id", "send_attempts",
                       "resends", "last_error", "claimed_at", "sent_at", "provider_message_id", "first_opened_at",
                       "open_count", "first_clicked_at", "click_count", "unsubscribed_at", "created_at", "updated_at")
    exclude = ("html_body",)
    fieldsets = (
        ("Message", {"fields": ("id", "message_id", "key", "kind", "campaign", "lead", "to_email", "subject",
                                "text_body", "html_source", "marketing", "links", "site_url")}),
        ("Sending", {"fields": ("status", "last_error", "fence", "job_id", "send_attempts", "resends", "claimed_at",
                                "sent_at", "provider_message_id")}),
        ("Tracking", {"fields": ("first_opened_at", "open_count", "first_clicked_at", "click_count",
                                 "unsubscribed_at")}),
    )
    actions = ["mark_sent", "send_again"]

    @admin.display(description="Message-ID")
    def message_id(self, message: Message) -> str:
        return message.message_id_header

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


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "unsubscribed_at", "bounced_at", "created_at")
    search_fields = ("email",)
    list_filter = (("unsubscribed_at", admin.EmptyFieldListFilter), ("bounced_at", admin.EmptyFieldListFilter))


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
