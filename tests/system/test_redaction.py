"""Secrets quoted by a failing job's error stay out of everything a real worker records or emits.

Given: a real lead-processing worker and dispatcher, and a Celery event receiver on the test Redis
(what Flower listens to).
When: leads whose email quotes a secret of each kind fail (stored as a sender might send them, so
no redaction at intake stands between the secret and the failure).
Then: the job's last error, its failure history, the dead-letter entry, the submission's error, the
task-failed events' exception and traceback, and the worker's and dispatcher's captured output all
carry the redacted text, and none of them a secret.
"""
from http.cookiejar import CookieJar
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.db import connection, transaction

from dlq.models import DeadLetter
from resilience.redaction import REDACTED
from leads import services
from leads.models import LeadSubmission
from resilience.celery import app
from tests.secret_samples import SAMPLES
from tests.system.processes import wait_for
from workers import ledger
from workers.models import Job, JobFailure

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


class EventLog:
    """Celery's events from the test Redis, collected on a thread as Flower collects them."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.receiver = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with app.connection() as connection:
            self.receiver = app.events.Receiver(connection, handlers={"*": self.events.append})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> "EventLog":
        self.thread.start()
        assert wait_for(lambda: self.receiver is not None, 10)
        return self

    def __exit__(self, *exc) -> None:
        self.receiver.should_stop = True  # the receiver looks at it every second
        self.thread.join(10)

    def failed(self) -> dict[str, dict]:
        return {event["uuid"]: event for event in list(self.events) if event["type"] == "task-failed"}


def test_a_failing_jobs_secrets_reach_no_sink_of_a_real_worker(processes):
    processes.configure(LOG_LEVEL="INFO")
    with EventLog() as events:
        processes.worker(services.LEAD_QUEUE, "primary", 2)
        processes.dispatcher("primary")
        processes.wait_ready(f"{services.LEAD_QUEUE}@primary")
        assert wait_for(lambda: any(e["type"] == "worker-online" for e in list(events.events)), 20), events.events

        jobs = []
        with transaction.atomic():
            for text, _ in SAMPLES:
                submission = LeadSubmission.objects.create(source="test", payload={"email": text})
                jobs.append(str(ledger.enqueue(services.LEAD_QUEUE, services.LEAD_TASK,
                                               {"submission_id": submission.pk, "lead": submission.payload}).id))
        assert wait_for(lambda: Job.objects.filter(id__in=jobs, state="dead").count() == len(jobs), 60), \
            processes.logs()
        assert wait_for(lambda: set(jobs) <= set(events.failed()), 20), (events.failed().keys(), processes.logs())
        failed = events.failed()

    entries = {entry.job_id: entry for entry in DeadLetter.objects.filter(job_id__in=jobs)}
    for job_id, (text, secret) in zip(jobs, SAMPLES):
        job = Job.objects.get(pk=job_id)
        entry = entries[job_id]
        event = failed[job_id]
        sinks = {
            "last_error": job.last_error,
            "JobFailure.error": "".join(JobFailure.objects.filter(job_id=job_id).values_list("error", flat=True)),
            "dead-letter message": entry.error_message,
            "dead-letter stack": entry.error_stack,
            "dead-letter data": json.dumps(entry.job_data),
            "submission error": LeadSubmission.objects.get(pk=job.payload["submission_id"]).error,
            "event exception": event["exception"],
            "event traceback": event["traceback"],
        }
        assert not [name for name, value in sinks.items() if secret in value], (text, sinks)
        assert REDACTED in job.last_error, job.last_error
        # An invalid lead: rejected for its input (the worker counts it so), not a failed attempt.
        assert event["exception"].startswith("JobInputRejected(") and "job is now dead: InvalidLead: email" in \
            event["exception"], event
        assert REDACTED in event["exception"] and REDACTED in event["traceback"], event
        assert job.last_error == entry.error_message  # one redaction, the same text everywhere

    output = processes.log_text(f"{services.LEAD_QUEUE}@primary") + processes.log_text("dispatcher-primary")
    assert not [secret for _, secret in SAMPLES if secret in output], output
    # The failures are in the worker's output, redacted: the ledger's line and Celery's own.
    assert output.count("dead-lettered after 1 attempt(s): InvalidLead: email") == len(SAMPLES), output
    assert output.count("raised expected: JobInputRejected(") == len(SAMPLES), output


# --- a run with known secrets -------------------------------------------------------------------------

# Each configured secret of the system, with a value of its own that nothing else contains.
KNOWN_SECRETS = {
    "webhook secret": "whk-Known-Webhook-Secret-5f3a9c",
    "admin password": "Admin-Known-Password-7c1e42",
    "SMTP password": "Smtp-Known-Password-2b8d61",
    "Anthropic key": "sk-ant-api03-KnownAnthropicKey-9e7d0c",
    "database password": "Db-Known-Password-4a6f13",
    "SECRET_KEY": "Known-Django-Secret-Key-" + "3d" * 16,
}


def http(url: str, data: bytes | None = None, headers: dict | None = None, opener=None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def admin_login(url: str, password: str) -> int:
    """Log in through the admin's form as a browser would; the status of the page it ends on."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(f"{url}/admin/login/", timeout=20).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": "ops", "password": password, "csrfmiddlewaretoken": csrf,
                                   "next": "/admin/"}).encode()
    return http(f"{url}/admin/login/", form, {"Referer": f"{url}/admin/login/"}, opener)[0]


def rows_text() -> dict[str, str]:
    """Every row of every table a failure, a refusal or a login is recorded in, as text."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.admin.models import LogEntry

    # A job's payload and a submission's are the sender's data, kept as sent (the job needs it); what
    # the system wrote about them (errors, the dead-letter entry with its copy of the data) is checked.
    tables = {"dead letters": DeadLetter.objects.values(), "job errors": Job.objects.values("last_error"),
              "job failures": JobFailure.objects.values(), "submission errors": LeadSubmission.objects.values("error"),
              "axes attempts": AccessAttempt.objects.values(), "axes failures": AccessFailureLog.objects.values(),
              "axes log": AccessLog.objects.values(), "admin history": LogEntry.objects.values()}
    return {name: json.dumps(list(rows), default=str) for name, rows in tables.items()}


@pytest.fixture
def database_login(processes):
    """(user, password) for the processes to log in with, where the password is one the test knows: given the
    wanted password, a login role of the test's own with it, a member of the test role (so it may do whatever the
    test role may), dropped when the test ends, after the processes. A test role that may not create roles
    logs in with its own password when it has one (that is then the known one); without one it gets in only
    because the server does not ask (trust, peer), and the wanted password is sent and ignored."""
    made = []
    quote = connection.ops.quote_name
    db = connection.settings_dict

    def login(wanted: str) -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
            may_create = cursor.fetchone()[0]
            if not may_create:
                return db["USER"], db["PASSWORD"] or wanted
            # Roles belong to the whole cluster: named after the test database, which is this checkout's own.
            name = f"{db['NAME']}_known_password"[:63]
            cursor.execute(f"DROP ROLE IF EXISTS {quote(name)}")
            # psycopg2 puts the parameter in the statement itself: a utility statement takes it as a literal.
            cursor.execute(f"CREATE ROLE {quote(name)} LOGIN PASSWORD %s IN ROLE {quote(db['USER'])}", [wanted])
        made.append(name)
        return name, wanted

    yield login
    processes.stop_all()  # no session of the role may be left
    with connection.cursor() as cursor:
        for name in made:
            cursor.execute(f"DROP ROLE IF EXISTS {quote(name)}")


def test_a_run_with_known_secrets_leaves_none_of_them_in_any_log_row_event_or_answer(processes, tmp_path,
                                                                                    database_login):
    """Web server, worker and dispatcher run with known values for every secret; requests then use them
    rightly and wrongly (a wrong webhook secret or token that contains the right one, a wrong admin
    password), and failing jobs quote them bare. No log, answer, event, ledger, dead-letter or login row
    may hold one."""
    from django.contrib.auth.models import User

    from access.auth import create_token
    from tests.system.processes import database_url, free_port, wait_for as wait
    from tests.system.test_web_server import web_command

    secrets = dict(KNOWN_SECRETS)
    _, secrets["API token"] = create_token("ops")
    User.objects.create_superuser("ops", "ops@example.com", secrets["admin password"])
    user, secrets["database password"] = database_login(secrets["database password"])
    (tmp_path / "log").mkdir()
    processes.configure(
        LOG_LEVEL="DEBUG", CLAY_WEBHOOK_SECRET=secrets["webhook secret"], ANTHROPIC_API_KEY=secrets["Anthropic key"],
        SECRET_KEY=secrets["SECRET_KEY"], VAR_DIR=str(tmp_path),
        EMAIL_URL=f"smtp://mailer:{secrets['SMTP password']}@127.0.0.1:{free_port()}",
        # Logging in with the known password, whatever authentication the PostgreSQL asks for.
        TEST_DATABASE_URL=database_url(user=user, password=secrets["database password"]),
    )
    answers = []
    with EventLog() as events:
        port = free_port()
        processes.start("web", web_command(port, tmp_path))
        processes.worker(services.LEAD_QUEUE, "primary", 2)
        processes.dispatcher("primary")
        url = f"http://127.0.0.1:{port}"
        assert wait(lambda: http_ok(f"{url}/healthz"), 30), processes.logs()
        processes.wait_ready(f"{services.LEAD_QUEUE}@primary")

        webhook = f"{url}/api/webhooks/clay"
        good_lead = json.dumps([{"email": "known@acme.io", "company": "Acme", "employee_count": 50}]).encode()
        for secret in (secrets["webhook secret"], secrets["webhook secret"] + "x", secrets["webhook secret"].upper()):
            answers.append(http(webhook, good_lead, {"Content-Type": "application/json", "X-Clay-Secret": secret}))
        assert [status for status, _ in answers] == [202, 401, 401], answers
        # A sender that puts the configured ones in leads (the answer may quote the sender's own value back
        # to it: not collected); they fail as leads and are dead-lettered. The admin password is no setting
        # (only its hash is stored, nothing could know it in text): it is checked through the logins below.
        configured = {name: secret for name, secret in secrets.items() if name != "admin password"}
        for name, secret in configured.items():
            http(webhook, json.dumps({"email": secret, "company": name}).encode(),
                 {"Content-Type": "application/json", "X-Clay-Secret": secrets["webhook secret"]})
        dlq = f"{url}/api/admin/dead-letter-queue"
        for token in (secrets["API token"], secrets["API token"] + "x", secrets["admin password"]):
            answers.append(http(dlq, headers={"Authorization": f"Bearer {token}"}))
        assert answers[-3][0] == 200 and answers[-2][0] == 401 and answers[-1][0] == 401, answers[-3:]
        assert admin_login(url, secrets["admin password"] + "x") == 200  # the form again, with its error
        assert admin_login(url, secrets["admin password"]) == 200  # the admin's index

        # Failing jobs that quote every configured secret bare (no key, no shape to recognise).
        jobs = []
        with transaction.atomic():
            for name, secret in configured.items():
                submission = LeadSubmission.objects.create(source="test", payload={"email": secret, "note": name})
                jobs.append(str(ledger.enqueue(services.LEAD_QUEUE, services.LEAD_TASK,
                                               {"submission_id": submission.pk, "lead": submission.payload}).id))
        assert wait(lambda: Job.objects.filter(id__in=jobs, state="dead").count() == len(jobs), 60), processes.logs()
        assert wait(lambda: set(jobs) <= set(events.failed()), 20), processes.logs()
        captured = json.dumps(list(events.events), default=str)

    processes.stop_all()
    sinks = {f"log {path.name}": path.read_text(errors="replace") for path in tmp_path.rglob("*.log")}
    sinks.update(rows_text())
    sinks["Celery events"] = captured
    sinks["HTTP answers"] = "\n".join(body.decode(errors="replace") for _, body in answers)
    assert "dead-lettered after 1 attempt(s)" in "".join(sinks.values())  # the failures were recorded
    assert any("web" in name for name in sinks) and len(sinks["Celery events"]) > 1000
    found = [f"{what} in {where}" for what, secret in secrets.items() for where, text in sinks.items() if secret in text]
    assert not found, "\n".join(found)


def http_ok(url: str) -> bool:
    try:
        return http(url)[0] == 200
    except OSError:
        return False
