"""Email services with plain arguments, called by other apps, the admin and the tracking views.

Public API for other apps (each call joins the caller's transaction, so the message and its job
commit with the caller's row or not at all):
- queue_outreach(lead_id, site_url): the outreach message to a lead whose site is ready; once per lead.
- queue_message(key=..., to=..., template=..., context=...): one templated email, once per key.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Now
from django.template.loader import get_template

from emails import suppression, templating, tracking
from emails.models import Campaign, Message
from leads.models import Lead
from resilience.text import header_text
from workers import ledger
from workers.errors import InvalidData, MissingResource

EMAIL_QUEUE = "email-sending"
SEND_TASK = "emails.send_message"
OUTREACH_TEMPLATE = "outreach"
SAMPLE_LEAD = dict(email="jane@example.com", first_name="Jane", last_name="Doe", title="Director",
                   company="Example Ltd", domain="example.com", website="https://example.com/")
SAMPLE_SITE_URL = "https://example.com/sites/sample/"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    links: list[str]


@dataclass(frozen=True)
class LaunchResult:
    queued: int
    skipped: int  # suppressed addresses (emails.suppression)
    already_launched: bool = False


# --- rendering -----------------------------------------------------------------------------------

def template_sources(name: str) -> tuple[str, str, str]:
    """(subject, text, html) sources of the project template `name`: emails/<name>/subject.txt,
    body.txt and body.html (optional) in any app's templates/. They are written in the campaign
    template language too (emails.templating): one renderer, one escaping and one account of which
    text came from a lead, whoever wrote the template."""
    def source(part: str, required: bool = True) -> str:
        try:
            return get_template(f"emails/{name}/{part}").template.source
        except Exception:
            if required:
                raise
            return ""
    return source("subject.txt"), source("body.txt"), source("body.html", required=False)


def project_templates(name: str, values: dict[str, str]) -> templating.Templates:
    """The project template `name`, parsed for these values (a programming error raises TemplateError)."""
    subject, text, html = template_sources(name)
    return templating.compile_parts(subject, text, html, templating.project_fields(values), check=False)


def campaign_templates(campaign: Campaign) -> templating.Templates:
    """The campaign's templates, checked again as they are read: a row written around the admin
    (a script, an old migration) is refused here with its reasons, never sent or shown as a 500."""
    return templating.compile_parts(campaign.subject_template, campaign.text_template, campaign.html_template,
                                    templating.campaign_fields(), check=True)


def render(message_id: uuid.UUID, templates: templating.Templates, values: dict[str, str], *,
           marketing: bool) -> Rendered:
    """Render the three parts for one message; marketing mail gets its unsubscribe link (added when
    the template has none) and the links the template's author wrote are rewritten into tracked ones."""
    unsubscribe = tracking.unsubscribe_url(message_id) if marketing else ""
    values = {**values, "unsubscribe_url": unsubscribe}
    subject_out = header_text(templates.subject.render(values).text)[:998]  # a lead's name may be in it
    # The parts' spans (RenderedPart.spans) say which text came from the lead, for the link tracker.
    text_out = templates.text.render(values).text
    html_out = templates.html.render(values).text if templates.html is not None else ""
    if marketing and unsubscribe not in text_out:
        text_out = f"{text_out.rstrip()}\n\nUnsubscribe: {unsubscribe}\n"
    if marketing and html_out and unsubscribe not in html_out:
        html_out = _before_body_end(html_out, f'<p><a href="{unsubscribe}">Unsubscribe</a></p>')
    # Only the links the author wrote (and the site's link we give) become tracked: a URL a lead's
    # field brought into the rendered text stays text, never a signed redirect on our domain.
    sources = (templates.subject.source, templates.text.source, templates.html.source if templates.html else "")
    authored = tracking.authored_links(sources, trusted=[values.get("site_url") or ""])
    text_out, html_out, links = tracking.track_links(message_id, text_out, html_out, authored=authored)
    if html_out:
        pixel = f'<img src="{tracking.open_pixel_url(message_id)}" width="1" height="1" alt="">'
        html_out = _before_body_end(html_out, pixel)
    return Rendered(subject_out, text_out, html_out, links)


def _before_body_end(html: str, fragment: str) -> str:
    at = html.lower().rfind("</body>")
    return html + fragment if at < 0 else html[:at] + fragment + html[at:]


def lead_values(lead: Lead | dict[str, str], site_url: str = "", campaign: Campaign | None = None) -> dict[str, str]:
    """The values a template may use (emails.templating.campaign_fields): plain strings, never the model."""
    fields = {name: str((lead.get(name) if isinstance(lead, dict) else getattr(lead, name)) or "")
              for name in templating.LEAD_FIELDS}
    context: dict[str, Any] = {**fields, "lead": fields, "site_url": site_url}
    if campaign is not None:
        context["campaign"] = {"name": campaign.name}
    return templating.values_of(context)


# --- queueing ------------------------------------------------------------------------------------

def _job_key(message_id: uuid.UUID, resend: int = 0) -> str:
    return f"email:{message_id}" if not resend else f"email:{message_id}:resend:{resend}"


def _enqueue(message: Message) -> None:
    job = ledger.enqueue(EMAIL_QUEUE, SEND_TASK, {"message_id": str(message.id)},
                         idempotency_key=_job_key(message.id, message.resends))
    Message.objects.filter(pk=message.pk).update(job_id=job.id)
    message.job_id = job.id


def _create(key: str, *, to: str, template: str, values: dict[str, str], marketing: bool, kind: str,
            **fields: Any) -> Message:
    """The message for `key` (the existing one if any) and, when new and allowed, its send job."""
    existing = Message.objects.filter(key=key).first()
    if existing is not None:
        return existing
    try:
        validate_email(to)
    except ValidationError:
        raise InvalidData(f"not an email address: {to!r}") from None
    message_id = uuid.uuid4()
    rendered = render(message_id, project_templates(template, values), values, marketing=marketing)
    skipped = suppression.is_suppressed(to, marketing=marketing)
    with transaction.atomic():  # a savepoint: a concurrent insert of the same key loses cleanly
        message, created = Message.objects.get_or_create(key=key, defaults=dict(
            id=message_id, kind=kind, to_email=to, subject=rendered.subject, text_body=rendered.text,
            html_body=rendered.html, links=rendered.links, marketing=marketing,
            status=Message.Status.SKIPPED if skipped else Message.Status.PENDING, **fields))
        if created and not skipped:
            _enqueue(message)
    return message


def queue_message(*, key: str, to: str, template: str, context: dict[str, Any], lead_id: int | None = None,
                  marketing: bool = False) -> Message:
    """Send the project template `template` (templates/emails/<template>/subject.txt, body.txt,
    body.html) rendered with `context` to `to`, once for `key` (a second call with the same key
    returns the first message and sends nothing). Call it inside the transaction of the row it is
    about. Transactional by default: no unsubscribe link, not held back by an unsubscribe (a bounced
    address is). The context's values are text: of them only `site_url` becomes a tracked link. Returns the
    message: its `status` says pending / sent / failed / skipped ...
    Raises InvalidData for an address that is not one, TemplateDoesNotExist for an unknown template.
    The templates are in the campaign template language (emails.templating); `context`'s keys are
    its fields (a dict value gives dotted names: {"lead": {...}} -> lead.first_name)."""
    if not key or len(key) > 255:
        raise ValueError(f"key must be 1 to 255 characters, not {len(key)}")
    return _create(key, to=to, template=template, values=templating.values_of(context),
                   marketing=marketing, kind=Message.Kind.TRANSACTIONAL, lead_id=lead_id)


def queue_outreach(lead_id: int, site_url: str) -> None:
    """The outreach message to a lead whose site is ready, with the site's link; once per lead
    (idempotent: a second call sends nothing). Call it inside the transaction that records the site."""
    try:
        URLValidator(schemes=["http", "https"])(site_url)
    except ValidationError:
        raise InvalidData(f"site_url is not an http(s) URL: {site_url!r}") from None
    lead = Lead.objects.filter(pk=lead_id).first()
    if lead is None:
        raise MissingResource(f"lead {lead_id} does not exist")
    _create(f"outreach:{lead_id}", to=lead.email, template=OUTREACH_TEMPLATE, values=lead_values(lead, site_url),
            marketing=True, kind=Message.Kind.OUTREACH, lead=lead, site_url=site_url)


# --- campaigns -----------------------------------------------------------------------------------

def audience(campaign: Campaign) -> list[tuple[Lead, str]]:
    """(lead, site URL) for each member of the campaign's audience. A lead "has a site" once its
    outreach was queued: queue_outreach is called when the site is ready, with the site's link."""
    site_url = Message.objects.filter(kind=Message.Kind.OUTREACH, lead=OuterRef("pk")).values("site_url")[:1]
    leads = Lead.objects.filter(status=Lead.Status.QUALIFIED).annotate(site_url=Subquery(site_url)).order_by("id")
    if campaign.audience == Campaign.Audience.QUALIFIED_WITH_SITE:
        leads = leads.filter(site_url__gt="")
    return [(lead, lead.site_url or "") for lead in leads]


def preview(campaign: Campaign, *, real_lead: bool) -> tuple[Rendered, bool]:
    """The campaign as its first audience member would get it when `real_lead` (the viewer may see
    leads), else as a made-up sample lead would; and whether a real lead was used. Raises
    TemplateError for templates that break the rules."""
    templates = campaign_templates(campaign)
    members = audience(campaign)[:1] if real_lead else []
    lead, site_url = members[0] if members else (SAMPLE_LEAD, SAMPLE_SITE_URL)
    return render(uuid.UUID(int=0), templates, lead_values(lead, site_url, campaign), marketing=True), bool(members)


def launch_campaign(campaign_id: int, *, launched_by: str = "") -> LaunchResult:
    """One message and one send job per audience member, skipping unsubscribed and bounced
    addresses. A campaign launches once; and even racing launches cannot make two messages for one
    lead: (campaign, lead) is a unique constraint and the insert skips what exists."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            return LaunchResult(0, 0, already_launched=True)
        templates = campaign_templates(campaign)  # before anything is written: a refusal launches nothing
        members = audience(campaign)
        suppressed = suppression.suppressed_among([lead.email for lead, _ in members], marketing=True)
        rows = []
        for lead, site_url in members:
            if lead.email in suppressed:
                continue
            message_id = uuid.uuid4()
            rendered = render(message_id, templates, lead_values(lead, site_url, campaign), marketing=True)
            rows.append(Message(
                id=message_id, key=f"campaign:{campaign.pk}:lead:{lead.pk}", kind=Message.Kind.CAMPAIGN,
                campaign=campaign, lead=lead, to_email=lead.email, subject=rendered.subject,
                text_body=rendered.text, html_body=rendered.html, links=rendered.links, marketing=True,
                job_id=uuid.uuid4()))
        Message.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        inserted = set(Message.objects.filter(id__in=[row.id for row in rows]).values_list("id", flat=True))
        new = [row for row in rows if row.id in inserted]
        ledger.enqueue_many(EMAIL_QUEUE, SEND_TASK,
                            [(row.job_id, {"message_id": str(row.id)}, _job_key(row.id)) for row in new])
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LAUNCHED, launched_at=Now(),
                                                       launched_by=launched_by[:150])
    return LaunchResult(len(new), len(suppressed))


def campaign_figures(campaign_ids: list[int]) -> dict[int, dict[str, float]]:
    """Per campaign: messages by outcome, opened, clicked, unsubscribed, and the rates (in percent of
    the messages sent; the failure rate of those sent or failed)."""
    S = Message.Status
    rows = (Message.objects.filter(campaign_id__in=campaign_ids).values("campaign_id").annotate(
        total=Count("id"), sent=Count("id", filter=Q(status=S.SENT)), failed=Count("id", filter=Q(status=S.FAILED)),
        unknown=Count("id", filter=Q(status=S.UNKNOWN)),
        waiting=Count("id", filter=Q(status__in=[S.PENDING, S.SENDING])),
        opened=Count("id", filter=Q(first_opened_at__isnull=False)),
        clicked=Count("id", filter=Q(first_clicked_at__isnull=False)),
        unsubscribed=Count("id", filter=Q(unsubscribed_at__isnull=False))))
    empty = dict(total=0, sent=0, failed=0, unknown=0, waiting=0, opened=0, clicked=0, unsubscribed=0)
    figures = {campaign_id: dict(empty) for campaign_id in campaign_ids}
    for row in rows:
        figures[row.pop("campaign_id")] = row
    for row in figures.values():
        pct = lambda part, whole: round(100.0 * part / whole, 1) if whole else 0.0  # noqa: E731
        row.update(open_rate=pct(row["opened"], row["sent"]), click_rate=pct(row["clicked"], row["sent"]),
                   unsubscribe_rate=pct(row["unsubscribed"], row["sent"]),
                   failure_rate=pct(row["failed"], row["sent"] + row["failed"]))
    return figures


# --- a person's decision on a message that may have been sent ------------------------------------

CANCELLED_UNSENT = "cancelled in the ledger before it was sent: it will not be sent"
CANCELLED_SENDING = ("cancelled in the ledger after an attempt had handed it to the server: it may have been "
                     "sent")


def cancel_messages(job_ids: list[str]) -> int:
    """Their send jobs were cancelled before an attempt claimed them (workers.registry.on_cancel): a
    message still `pending` will never be sent, and is skipped with the reason; one left `sending` by
    an earlier attempt may have reached the server, and is unknown, for a person to settle, as a dead
    job's would be. Returns how many messages were marked."""
    mine = Message.objects.filter(job_id__in=job_ids)
    marked = mine.filter(status=Message.Status.PENDING).update(
        status=Message.Status.SKIPPED, last_error=CANCELLED_UNSENT, updated_at=Now())
    return marked + mine.filter(status=Message.Status.SENDING).update(
        status=Message.Status.UNKNOWN, last_error=CANCELLED_SENDING, updated_at=Now())


def mark_unknown_sent(message_id: uuid.UUID) -> bool:
    """The person found the message delivered (e.g. its Message-ID in the server's log)."""
    return bool(Message.objects.filter(pk=message_id, status=Message.Status.UNKNOWN).update(
        status=Message.Status.SENT, sent_at=Coalesce(F("claimed_at"), Now()), updated_at=Now()))


def resend_unknown(message_id: uuid.UUID) -> bool:
    """The person found it was not delivered: send it again, under the same Message-ID, with a job
    of its own (the first one is finished)."""
    with transaction.atomic():
        message = Message.objects.select_for_update().filter(pk=message_id, status=Message.Status.UNKNOWN).first()
        if message is None:
            return False
        message.status, message.resends, message.fence = Message.Status.PENDING, message.resends + 1, None
        message.save(update_fields=["status", "resends", "fence", "updated_at"])
        _enqueue(message)
    return True


# --- tracking ------------------------------------------------------------------------------------

def record_open(message_id: uuid.UUID) -> bool:
    return bool(Message.objects.filter(pk=message_id).update(
        open_count=F("open_count") + 1, first_opened_at=Coalesce(F("first_opened_at"), Now())))


def link_target(message_id: uuid.UUID, link: int) -> str | None:
    """The message's link number `link`, or None when the message has no such link."""
    links = Message.objects.filter(pk=message_id).values_list("links", flat=True).first()
    return links[link] if links is not None and 0 <= link < len(links) else None


def record_click(message_id: uuid.UUID, link: int) -> str | None:
    """link_target, counted as a click (and as an open: images may be blocked)."""
    target = link_target(message_id, link)
    if target is None:
        return None
    Message.objects.filter(pk=message_id).update(
        click_count=F("click_count") + 1, first_clicked_at=Coalesce(F("first_clicked_at"), Now()),
        first_opened_at=Coalesce(F("first_opened_at"), Now()))
    return target


def unsubscribed_address(message_id: uuid.UUID) -> str | None:
    """The message's address when marketing mail to it is stopped already (this link, another, or a
    person), so the page says so instead of asking again; None otherwise or if no message."""
    email = Message.objects.filter(pk=message_id).values_list("to_email", flat=True).first()
    if email is None or not suppression.is_suppressed(email, marketing=True):
        return None
    return email


def unsubscribe(message_id: uuid.UUID) -> str | None:
    """Stop marketing mail to the message's address; idempotent. The address, or None if no message."""
    with transaction.atomic():
        email = Message.objects.filter(pk=message_id).values_list("to_email", flat=True).first()
        if email is None:
            return None
        suppression.suppress(email, suppression.Reason.UNSUBSCRIBE, message_id=message_id, by="unsubscribe link")
        Message.objects.filter(pk=message_id, unsubscribed_at__isnull=True).update(unsubscribed_at=Now())
    return email
