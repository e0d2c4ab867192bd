"""The suppression list: one service to suppress, checked before every send, its migration, and the
admin (search, add, remove, CSV export and import)."""
import csv
import io
import uuid

import pytest
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from emails import services
from emails.models import Campaign, Message, Suppression
from emails.suppression import import_csv, is_suppressed, suppress
from tests.emails.helpers import make_lead, run_due_email_jobs
from tests.migrating import migrate, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"


def test_suppress_is_idempotent_per_address_and_reason_and_keeps_the_first_facts():
    message_id = uuid.uuid4()
    first = suppress("Jane@Acme.io ", "bounce", message_id=message_id, detail="550 5.1.1 unknown", by="smtp")
    again = suppress("jane@acme.io", "bounce", event_id="evt-2", detail="another", by="postmark")
    other = suppress("jane@acme.io", "complaint", event_id="evt-3", by="postmark")

    assert again.pk == first.pk and Suppression.objects.count() == 2
    row = Suppression.objects.get(reason="bounce")
    assert (row.email, row.message_id, row.event_id, row.detail, row.by) == (
        "jane@acme.io", message_id, "", "550 5.1.1 unknown", "smtp")
    assert other.event_id == "evt-3" and other.created_at is not None
    with pytest.raises(ValueError, match="unknown suppression reason"):
        suppress("jane@acme.io", "spam")
    with pytest.raises(ValueError, match="not an email address"):
        suppress("not an address", "manual")


@pytest.mark.parametrize("reason, marketing_stopped, transactional_stopped", [
    ("bounce", True, True), ("complaint", True, True), ("manual", True, True), ("unsubscribe", True, False)])
def test_what_each_reason_stops(reason, marketing_stopped, transactional_stopped):
    suppress("jane@acme.io", reason)
    assert is_suppressed("JANE@acme.io", marketing=True) is marketing_stopped
    assert is_suppressed("jane@acme.io", marketing=False) is transactional_stopped
    assert not is_suppressed("bob@acme.io", marketing=True)


def test_a_suppressed_address_receives_nothing_outreach_campaign_or_transactional(smtp_sink):
    complained, unsubscribed, fine = make_lead("c@acme.io"), make_lead("u@acme.io"), make_lead("ok@acme.io")
    for lead in (complained, unsubscribed, fine):
        services.queue_outreach(lead.id, SITE)  # queued before anyone was suppressed
    suppress("C@acme.io", "complaint", event_id="evt-1", by="postmark")
    suppress("u@acme.io", "unsubscribe")
    services.queue_message(key="handover:c", to="c@acme.io", template="handover", context={"site_url": SITE})
    services.queue_message(key="handover:u", to="u@acme.io", template="handover", context={"site_url": SITE})
    campaign = Campaign.objects.create(name="News", subject_template="News", text_template="Hi {{ site_url }}")
    assert services.launch_campaign(campaign.id).skipped == 2

    run_due_email_jobs()

    counts = smtp_sink.count_by_recipient()
    assert "c@acme.io" not in counts  # a complaint stops all mail
    assert counts["u@acme.io"] == 1 and smtp_sink.to("u@acme.io")[0]["Subject"].startswith("Your website")
    assert counts["ok@acme.io"] == 2  # outreach and the campaign
    assert set(Message.objects.filter(to_email="c@acme.io").values_list("status", flat=True)) == {"skipped"}


def test_the_migration_turns_old_rows_into_facts_and_drops_bounces_that_were_not_the_mailboxs():
    old = migrate(("emails", "0002_campaign_template_language")).get_model("emails", "Suppression")
    old.objects.create(email="gone@acme.io", bounced_at="2026-01-02T00:00Z",
                       bounce_reason="Bounced: recipient refused: {'gone@acme.io': (550, b'5.1.1 no such user')}")
    old.objects.create(email="Both@Acme.io", bounced_at="2026-01-03T00:00Z", unsubscribed_at="2026-01-01T00:00Z",
                       bounce_reason="Bounced: message refused: 552 b'5.2.2 mailbox full'")
    old.objects.create(email="relay@acme.io", bounced_at="2026-01-04T00:00Z",
                       bounce_reason="Bounced: recipient refused: {'relay@acme.io': (554, b'5.7.1 Relay access denied')}")
    old.objects.create(email="left@acme.io", unsubscribed_at="2026-01-05T00:00Z")
    old.objects.create(email="provider@acme.io", bounced_at="2026-01-06T00:00Z",
                       bounce_reason="Bounced: provider refused the recipient: inactive")

    new = migrate(("emails", "0003_suppression_reasons_and_breaker")).get_model("emails", "Suppression")

    facts = {(row.email, row.reason, row.created_at.date().isoformat()) for row in new.objects.all()}
    assert facts == {("gone@acme.io", "bounce", "2026-01-02"), ("both@acme.io", "bounce", "2026-01-03"),
                     ("both@acme.io", "unsubscribe", "2026-01-01"), ("left@acme.io", "unsubscribe", "2026-01-05"),
                     ("provider@acme.io", "bounce", "2026-01-06")}  # relay@: the old bug, not carried over
    assert "5.1.1 no such user" in new.objects.get(email="gone@acme.io").detail

    back = migrate(("emails", "0002_campaign_template_language")).get_model("emails", "Suppression")
    both = back.objects.get(email="both@acme.io")
    assert both.bounced_at is not None and both.unsubscribed_at is not None and back.objects.count() == 4
    migrate_to_latest()  # the whole schema for the tests after this one, not emails 0003's


# --- the admin -------------------------------------------------------------------------------------

@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


URL = "/admin/emails/suppression/"


def test_the_admin_searches_adds_by_hand_and_removes_each_in_its_history(admin_client):
    suppress("bounced@acme.io", "bounce", event_id="evt-77", detail="550 5.1.1", by="postmark")
    page = admin_client.get(URL, {"q": "evt-77"}).content.decode()
    assert "bounced@acme.io" in page and "Import CSV" in page

    response = admin_client.post(URL + "add/", {"email": " Legal@Acme.io", "reason": "manual",
                                                "detail": "asked us by phone"})
    assert response.status_code == 302, response.content.decode()[:2000]
    row = Suppression.objects.get(email="legal@acme.io")
    assert (row.reason, row.by, row.detail) == ("manual", "root", "asked us by phone")
    assert LogEntry.objects.filter(object_id=str(row.pk), action_flag=ADDITION).exists()
    again = admin_client.post(URL + "add/", {"email": "legal@acme.io", "reason": "manual"})
    assert again.status_code == 200 and Suppression.objects.filter(email="legal@acme.io").count() == 1
    bad = admin_client.post(URL + "add/", {"email": "not an address", "reason": "manual"})
    assert bad.status_code == 200 and not Suppression.objects.filter(email__icontains="not").exists()

    assert admin_client.get(f"{URL}{row.pk}/change/").status_code == 200  # shown, read-only
    admin_client.post(f"{URL}{row.pk}/change/", {"email": "other@acme.io", "reason": "bounce"})
    assert Suppression.objects.get(pk=row.pk).email == "legal@acme.io"
    response = admin_client.post(f"{URL}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Suppression.objects.filter(pk=row.pk).exists()
    assert LogEntry.objects.filter(object_id=str(row.pk), action_flag=DELETION).exists()


def test_csv_export_reads_back_and_quotes_what_a_spreadsheet_would_run(admin_client):
    suppress("jane@acme.io", "complaint", event_id="evt-1", detail="=HYPERLINK(\"http://evil\")", by="postmark")
    suppress("=cmd@acme.io", "manual", by="root")
    response = admin_client.post(URL, {"action": "export_csv", "_selected_action": list(
        Suppression.objects.values_list("pk", flat=True))})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_email = {row["email"]: row for row in rows}
    assert by_email["'=cmd@acme.io"]["reason"] == "manual"
    assert by_email["jane@acme.io"]["detail"].startswith("'=") and by_email["jane@acme.io"]["event_id"] == "evt-1"

    Suppression.objects.all().delete()
    report = import_csv(response.content, by="import by root")
    assert (report.added, report.bad_total, report.error) == (2, 0, "")
    assert set(Suppression.objects.values_list("email", "reason")) == {("jane@acme.io", "complaint"),
                                                                       ("=cmd@acme.io", "manual")}


def test_import_reports_bad_rows_by_line_and_never_answers_500(admin_client):
    suppress("old@acme.io", "manual")
    data = ("email,reason,detail\n"
            "new@acme.io,,from the old tool\n"
            "OLD@acme.io,manual,\n"
            "not-an-address,manual,\n"
            "x@acme.io,spam,\n"
            ",bounce,\n"
            "y@acme.io,bounce,a,extra\n"
            "z@acme.io,unsubscribe,\n").encode()
    response = admin_client.post(URL + "import/", {"file": SimpleUploadedFile("list.csv", data)}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Imported 2 address(es); 1 already there; 4 bad row(s) skipped." in page
    for line, why in ((4, "not an email address"), (5, "unknown reason"), (6, "no email"), (7, "more cells")):
        assert f"Line {line}: {why}" in page
    assert set(Suppression.objects.values_list("email", "reason")) == {
        ("old@acme.io", "manual"), ("new@acme.io", "manual"), ("z@acme.io", "unsubscribe")}
    assert Suppression.objects.get(email="new@acme.io").by == "import by root"
    assert LogEntry.objects.filter(action_flag=ADDITION).count() == 2

    for junk in (b"\xff\xfe\x00garbage", b"address;why\nx@acme.io;manual\n", b"", b"email\n\"unclosed,\n" * 3,
                 b"email\n" + b"a" * 200_000 + b"\n"):
        response = admin_client.post(URL + "import/", {"file": SimpleUploadedFile("x.csv", junk)}, follow=True)
        assert response.status_code == 200, junk[:20]
    assert Suppression.objects.count() == 3


def test_the_dashboard_counts_suppressed_addresses(admin_client):
    suppress("a@acme.io", "bounce")
    suppress("a@acme.io", "unsubscribe")
    suppress("b@acme.io", "complaint")
    data = admin_client.get("/admin/workers/data").json()["emailSuppressions"]
    assert data == {"bounce": 1, "complaint": 1, "unsubscribe": 1, "manual": 0, "addresses": 2}
    page = admin_client.get("/admin/workers/").content.decode()
    assert 'data-field="suppressedAddresses">2<' in page and "1 bounced" in page
