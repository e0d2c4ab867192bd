"""Campaigns: audience, one message per recipient (a constraint), suppression, launch from the admin
with its permission, preview, figures, and the admin's decision on unknown messages."""
import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import IntegrityError, transaction

from emails import services
from emails.suppression import suppress
from emails.models import Campaign, Message
from tests.emails.helpers import make_lead, run_due_email_jobs
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/emails/campaign/"


def campaign(**fields) -> Campaign:
    defaults = dict(name="Spring", subject_template="News for {{ company }}",
                    text_template="Hi {{ first_name }}, see {{ site_url }} and https://agency.example/offer",
                    html_template='<p>Hi {{ first_name }}, <a href="{{ site_url }}">your site</a></p>')
    return Campaign.objects.create(**{**defaults, **fields})


def leads_with_sites(n: int) -> list:
    leads = [make_lead(f"lead{i}@acme.io", first_name=f"L{i}") for i in range(n)]
    for lead in leads:
        services.queue_outreach(lead.id, f"https://sites.example.com/sites/{lead.id}/")
    Message.objects.filter(kind="outreach").update(status="sent")
    Job.objects.all().delete()
    return leads


def test_launch_makes_one_message_per_audience_member_skipping_suppressed(smtp_sink):
    leads = leads_with_sites(4)
    make_lead("nosite@acme.io")  # qualified, but no site yet: not in the audience
    make_lead("cold@acme.io", status="disqualified")
    suppress(leads[0].email, "unsubscribe")
    suppress(leads[1].email, "bounce")
    c = campaign()

    result = services.launch_campaign(c.id, launched_by="root")
    assert (result.queued, result.skipped) == (2, 2)
    assert services.launch_campaign(c.id).already_launched
    assert Job.objects.filter(queue="email-sending").count() == 2

    run_due_email_jobs()
    assert smtp_sink.count_by_recipient() == {leads[2].email: 1, leads[3].email: 1}
    received = smtp_sink.to(leads[2].email)[0]
    assert received["Subject"] == "News for Acme" and received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    message = Message.objects.get(campaign=c, lead=leads[2])
    assert message.links == [f"https://sites.example.com/sites/{leads[2].id}/", "https://agency.example/offer"]


def test_every_qualified_lead_audience():
    make_lead("a@acme.io")
    make_lead("b@acme.io", status="disqualified")
    assert [lead.email for lead, _ in services.audience(campaign(audience="qualified"))] == ["a@acme.io"]


def test_two_messages_for_one_campaign_and_lead_are_refused_by_the_database():
    [lead] = leads_with_sites(1)
    c = campaign()
    services.launch_campaign(c.id)
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(key="another key", kind="campaign", campaign=c, lead=lead, to_email=lead.email,
                               subject="s", text_body="t")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(key="another outreach", kind="outreach", lead=lead, to_email=lead.email,
                               subject="s", text_body="t")


def test_figures_count_outcomes_and_rates():
    leads_with_sites(4)
    c = campaign()
    services.launch_campaign(c.id)
    messages = list(Message.objects.filter(campaign=c).order_by("to_email"))
    Message.objects.filter(pk__in=[m.pk for m in messages[:3]]).update(status="sent")
    Message.objects.filter(pk=messages[3].pk).update(status="failed")
    services.record_open(messages[0].id)
    services.record_open(messages[0].id)
    services.record_click(messages[1].id, 0)
    services.unsubscribe(messages[2].id)
    f = services.campaign_figures([c.id])[c.id]
    assert (f["sent"], f["failed"], f["opened"], f["clicked"], f["unsubscribed"]) == (3, 1, 2, 1, 1)
    assert (f["open_rate"], f["click_rate"], f["unsubscribe_rate"], f["failure_rate"]) == (66.7, 33.3, 33.3, 25.0)


# --- the admin ------------------------------------------------------------------------------------

def staff(client, *codenames: str):
    user = User.objects.create_user("staff", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="emails", codename__in=codenames))
    client.force_login(user)
    return client


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_admin_launch_needs_the_launch_permission(client, redis_client):
    leads_with_sites(3)
    c = campaign()
    staff(client, "view_campaign", "change_campaign")
    page = client.get(CHANGELIST).content.decode()
    assert 'value="preview_campaign"' in page and 'value="launch_campaigns"' not in page
    client.post(CHANGELIST, {"action": "launch_campaigns", "_selected_action": [c.pk]})
    assert Message.objects.filter(campaign=c).count() == 0 and Campaign.objects.get().status == "draft"


def test_admin_creates_previews_launches_and_shows_figures(client, redis_client):
    leads_with_sites(3)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    response = client.post("/admin/emails/campaign/add/", {
        "name": "Autumn", "audience": "qualified_with_site", "subject_template": "Hello {{ first_name }}",
        "text_template": "See {{ site_url }}", "html_template": "<p>{% if x %}</p>"})
    assert response.status_code == 200 and "tags are not part of the campaign template language" in (
        response.content.decode())
    client.post("/admin/emails/campaign/add/", {
        "name": "Autumn", "audience": "qualified_with_site", "subject_template": "Hello {{ first_name }}",
        "text_template": "See {{ site_url }}", "html_template": '<p><a href="{{ site_url }}">site</a></p>'})
    c = Campaign.objects.get(name="Autumn")

    preview = client.post(CHANGELIST, {"action": "preview_campaign", "_selected_action": [c.pk]})
    body = preview.content.decode()
    assert preview.status_code == 200 and "Hello L0" in body and "/email/click/" in body
    assert Message.objects.filter(campaign=c).count() == 0  # a preview sends nothing
    sandboxed = client.get(f"/admin/emails/campaign/{c.pk}/preview/html")
    assert sandboxed["Content-Security-Policy"].startswith("sandbox;") and b"/email/open/" in sandboxed.content

    launched = client.post(CHANGELIST, {"action": "launch_campaigns", "_selected_action": [c.pk]}, follow=True)
    assert any("launched, 3 messages queued, 0 unsubscribed or bounced addresses skipped" in t for t in texts(launched))
    again = client.post(CHANGELIST, {"action": "launch_campaigns", "_selected_action": [c.pk]}, follow=True)
    assert any("already launched" in t for t in texts(again))
    assert Message.objects.filter(campaign=c).count() == 3

    Message.objects.filter(campaign=c).update(status="sent")
    services.record_open(Message.objects.filter(campaign=c).first().id)
    page = client.get(CHANGELIST).content.decode()
    assert "33.3 %" in page  # open rate
    change = client.get(f"/admin/emails/campaign/{c.pk}/change/").content.decode()
    assert "3 messages: 3 sent, 0 failed" in change and "1 opened (33.3 %)" in change


def test_admin_resolves_unknown_messages_with_its_permission(client, smtp_sink):
    a, b = leads_with_sites(2)
    Message.objects.update(status="unknown")
    ma, mb = Message.objects.get(lead=a), Message.objects.get(lead=b)
    staff(client, "view_message", "change_message")
    client.post("/admin/emails/message/", {"action": "mark_sent", "_selected_action": [ma.pk]})
    assert Message.objects.get(pk=ma.pk).status == "unknown"  # not without the permission

    client.logout()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    r = client.post("/admin/emails/message/", {"action": "mark_sent", "_selected_action": [ma.pk]}, follow=True)
    assert "1 unknown message(s) marked sent." in texts(r)
    r = client.post("/admin/emails/message/", {"action": "send_again", "_selected_action": [mb.pk, ma.pk]}, follow=True)
    assert "1 unknown message(s) queued to send again." in texts(r)
    run_due_email_jobs()
    assert smtp_sink.count_by_recipient() == {b.email: 1}
    assert Message.objects.get(pk=mb.pk).status == "sent" and Message.objects.get(pk=mb.pk).resends == 1
    page = client.get(f"/admin/emails/message/{mb.pk}/change/").content.decode()
    assert f"&lt;msg-{mb.id}@" in page and "resends" in page.lower()
    assert client.get("/admin/emails/suppression/").status_code == 200


def test_queue_outreach_joins_the_callers_transaction():
    lead = make_lead("jane@acme.io")

    class SiteStepFailed(Exception):
        pass

    with pytest.raises(SiteStepFailed), transaction.atomic():
        services.queue_outreach(lead.id, "https://sites.example.com/sites/x/")
        raise SiteStepFailed  # the site's record step rolled back: no message, no job
    assert not Message.objects.exists() and not Job.objects.exists()
    services.queue_outreach(lead.id, "https://sites.example.com/sites/x/")
    assert Message.objects.count() == 1 and Job.objects.get().payload == {"message_id": str(Message.objects.get().id)}


def test_bad_input_to_the_services_is_refused_clearly():
    from workers.errors import InvalidData, MissingResource
    with pytest.raises(MissingResource):
        services.queue_outreach(999999, "https://sites.example.com/sites/x/")
    with pytest.raises(InvalidData):
        services.queue_outreach(make_lead("jane@acme.io").id, "javascript:alert(1)")
    with pytest.raises(InvalidData):
        services.queue_message(key="k", to="not an address", template="handover", context={})
    with pytest.raises(ValueError):
        services.queue_message(key="k" * 256, to="a@acme.io", template="handover", context={})
    assert not Message.objects.exists()
