"""The dead-letter admin's actions through the test client: resolve (with its notes page), requeue,
delete (Django's confirmation page), and who may do what. Also the API token admin."""
import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.utils import timezone

from access.auth import create_token
from access.models import ApiToken
from dlq.models import DeadLetter
from workers import ledger
from workers.models import Job
from workers.probe import enqueue_probe, run_probe
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/dlq/deadletter/"


def dead_probe(queue: str = "delivery") -> DeadLetter:
    job = enqueue_probe(queue, fail="permanent")
    assert [run_job(d.job_id, d.token, worker="test", handler=run_probe)
            for d in ledger.take_due_jobs(queue, 10)] == ["dead"]
    return DeadLetter.objects.get(job_id=str(job.id))


def act(client, action, entries, **extra):
    data = {"action": action, "_selected_action": [str(entry.pk) for entry in entries], **extra}
    return client.post(CHANGELIST, data, follow="post" in extra or action != "delete_selected")


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def admin_client(client, redis_client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


@pytest.fixture
def viewer_client(client, redis_client):
    """Staff who may look at the dead-letter queue but not change or delete entries."""
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(user)
    return client


def test_the_change_list_offers_the_actions_and_filters(admin_client):
    dead_probe()
    page = admin_client.get(CHANGELIST).content.decode()
    for needle in ('value="resolve_selected"', 'value="requeue_selected"', 'value="delete_selected"',
                   "By queue name", "By resolved", 'name="q"'):
        assert needle in page
    assert admin_client.get(CHANGELIST, {"q": "permanently"}).context["cl"].result_count == 1
    assert admin_client.get(CHANGELIST, {"q": "nothing like it"}).context["cl"].result_count == 0
    assert admin_client.get(CHANGELIST, {"resolved__exact": "1"}).context["cl"].result_count == 0


def test_the_entry_page_groups_read_only_fields(admin_client):
    entry = dead_probe()
    page = admin_client.get(f"{CHANGELIST}{entry.pk}/change/").content.decode()
    for heading in (">Job<", ">Failure<", ">Resolution<"):
        assert heading in page
    assert "probe asked to fail permanently" in page and "<textarea" not in page


def test_resolve_asks_for_notes_first_then_records_who_and_when(admin_client):
    first, second = dead_probe(), dead_probe()

    page = act(admin_client, "resolve_selected", [first, second])
    assert page.status_code == 200 and "admin/dlq/deadletter/resolve_selected.html" in [t.name for t in page.templates]
    html = page.content.decode()
    assert 'name="notes"' in html and 'name="post" value="yes"' in html and "cancel-link" in html
    assert not DeadLetter.objects.filter(resolved=True).exists()  # nothing changes before the confirmation

    before = timezone.now()
    done = act(admin_client, "resolve_selected", [first, second], post="yes", notes="Card expired; customer told")

    assert done.status_code == 200 and done.redirect_chain[-1][0].startswith(CHANGELIST)
    assert "Resolved 2 dead-letter entries." in texts(done)
    for entry in (first, second):
        entry.refresh_from_db()
        assert entry.resolved and entry.resolved_by == "root" and entry.notes == "Card expired; customer told"
        assert before <= entry.resolved_at <= timezone.now()
    logged = LogEntry.objects.filter(action_flag=CHANGE, user__username="root")
    assert sorted(logged.values_list("object_id", flat=True)) == sorted([str(first.pk), str(second.pk)])
    assert logged.first().change_message == "Resolved: Card expired; customer told"


def test_resolve_leaves_already_resolved_entries_as_they_were(admin_client):
    open_entry, closed = dead_probe(), dead_probe()
    DeadLetter.objects.filter(pk=closed.pk).update(resolved=True, resolved_by="alice", notes="hers")
    done = act(admin_client, "resolve_selected", [open_entry, closed], post="yes", notes="")
    assert "Resolved 1 dead-letter entry." in texts(done)
    assert any("1 selected entry was already resolved" in text for text in texts(done))
    closed.refresh_from_db()
    open_entry.refresh_from_db()
    assert closed.resolved_by == "alice" and closed.notes == "hers"
    assert open_entry.resolved_by == "root" and open_entry.notes is None
    assert LogEntry.objects.count() == 1


def test_requeue_puts_jobs_back_and_says_which_could_not_be_and_why(admin_client):
    good, already = dead_probe(), dead_probe()
    DeadLetter.objects.filter(pk=already.pk).update(resolved=True, resolved_by="alice")
    gone = dead_probe()
    Job.objects.filter(pk=gone.job_id).delete()

    confirm = act(admin_client, "requeue_selected", [good, already, gone])
    assert "1 entry is resolved already and will not be requeued." in confirm.content.decode()
    done = act(admin_client, "requeue_selected", [good, already, gone], post="yes")

    messages = texts(done)
    assert "Requeued 1 job; its entry is marked resolved." in messages
    refused = [text for text in messages if text.startswith("Not requeued: ")]
    assert len(refused) == 2
    assert any(f"entry {already.pk} is already resolved (by alice)" in text for text in refused)
    assert any(f"ledger job {gone.job_id} no longer exists" in text for text in refused)
    job = Job.objects.get(pk=good.job_id)
    assert job.state == "pending" and job.attempts == 0
    good.refresh_from_db()
    assert good.resolved and good.resolved_by == "root" and good.notes.startswith("Requeued by root at ")
    gone.refresh_from_db()
    assert gone.resolved is False
    [log] = LogEntry.objects.filter(action_flag=CHANGE)
    assert log.object_id == str(good.pk) and log.change_message == f"Requeued ledger job {good.job_id}"


def test_delete_shows_djangos_confirmation_then_deletes_and_logs(admin_client):
    doomed, kept = dead_probe(), dead_probe()

    confirm = act(admin_client, "delete_selected", [doomed])
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    assert DeadLetter.objects.count() == 2

    done = act(admin_client, "delete_selected", [doomed], post="yes")
    assert "Successfully deleted 1 dead-letter entry." in texts(done)
    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [kept.pk]
    assert LogEntry.objects.get(action_flag=DELETION).object_id == str(doomed.pk)


def test_staff_without_change_or_delete_permission_can_look_but_not_act(viewer_client):
    entry = dead_probe()
    page = viewer_client.get(CHANGELIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "resolve_selected" not in html and "requeue_selected" not in html and "delete_selected" not in html

    for action, extra in (("resolve_selected", {"post": "yes", "notes": "x"}), ("requeue_selected", {"post": "yes"}),
                          ("delete_selected", {"post": "yes"})):
        response = viewer_client.post(CHANGELIST, {"action": action, "_selected_action": [str(entry.pk)], **extra})
        assert response.status_code in (200, 302)

    entry.refresh_from_db()
    assert entry.resolved is False and entry.notes is None
    assert Job.objects.get(pk=entry.job_id).state == "dead"
    assert not LogEntry.objects.exists()


def test_staff_with_change_but_not_delete_permission_may_resolve_only(client, redis_client):
    user = User.objects.create_user("fixer", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_deadletter", "change_deadletter"]))
    client.force_login(user)
    entry = dead_probe()
    html = client.get(CHANGELIST).content.decode()
    assert "resolve_selected" in html and "delete_selected" not in html
    client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [str(entry.pk)], "post": "yes"})
    assert DeadLetter.objects.filter(pk=entry.pk).exists()
    act(client, "resolve_selected", [entry], post="yes", notes="ok")
    entry.refresh_from_db()
    assert entry.resolved_by == "fixer"


def test_api_tokens_are_listed_never_added_and_deleting_revokes(admin_client):
    token, secret = create_token("prometheus")
    crm, _ = create_token("crm", scopes=["read", "deliver"])
    listing = admin_client.get("/admin/access/apitoken/")
    html = listing.content.decode()
    assert listing.status_code == 200 and "prometheus" in html and token.prefix in html
    assert secret not in html and token.key_hash not in html
    assert "Revoke (delete) selected API tokens" in html
    assert '<td class="field-scope_list">read</td>' in html and '<td class="field-scope_list">read, deliver</td>' in html
    filtered = admin_client.get("/admin/access/apitoken/?scope=deliver").content.decode()
    assert "crm" in filtered and "prometheus" not in filtered
    assert admin_client.get("/admin/access/apitoken/add/").status_code == 403
    detail = admin_client.get(f"/admin/access/apitoken/{token.pk}/change/").content.decode()
    assert token.key_hash not in detail and "<input type=\"text\"" not in detail
    assert "Scopes:" in detail and '<div class="readonly">read</div>' in detail

    admin_client.post("/admin/access/apitoken/", {"action": "delete_selected", "_selected_action": [token.pk, crm.pk],
                                                  "post": "yes"})
    assert not ApiToken.objects.exists()
    assert admin_client.get("/api/admin/dead-letter-queue",
                            HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
