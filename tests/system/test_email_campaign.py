"""A campaign of 200 recipients sent by real workers of both pools to a real SMTP server on loopback,
while one pool's worker is SIGKILLed mid-campaign.

Then: the server (counted, not the database) received exactly one message per recipient, and the
email rate limit held across both pools. A message the killed worker had claimed (`sending`) is
never sent again by the retry: it becomes `unknown`, and the test decides it as a person would, by
looking for its Message-ID at the server: found, mark it sent; not found, send it again.
"""
import signal

import pytest
import redis
from django.conf import settings

from emails import services
from emails.models import Campaign, Message
from fakes.smtp import SmtpSink
from leads.models import Lead
from tests.system.processes import wait_for
from workers import ratelimit
from workers.models import Job

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
RECIPIENTS = 200
LIMIT, PERIOD = 40, 10.0  # the contract's 100/60 s, scaled down so the campaign takes about a minute
POOLS = ("primary", "backup")


def audience_with_sites(n: int) -> None:
    Lead.objects.bulk_create([Lead(email=f"r{i:03d}@acme.io", first_name=f"R{i}", company="Acme", score=80,
                                   status=Lead.Status.QUALIFIED) for i in range(n)])
    for lead in Lead.objects.all():
        services.queue_outreach(lead.id, f"https://sites.example.com/sites/{lead.id}/")
    Message.objects.filter(kind="outreach").update(status="sent")  # sent earlier: only the campaign now
    Job.objects.all().delete()


def launched_with_both_pools(processes, recipients: int) -> Campaign:
    """A campaign to `recipients` qualified leads with sites, launched once an email worker and a
    dispatcher of each pool are up."""
    audience_with_sites(recipients)
    campaign = Campaign.objects.create(name="Big", subject_template="Hi {{ first_name }}",
                                       text_template="Your site: {{ site_url }}")
    for pool in POOLS:
        processes.worker("email-sending", pool, 4)
        processes.dispatcher(pool)
    for pool in POOLS:
        processes.wait_ready(f"email-sending@{pool}")
    assert services.launch_campaign(campaign.id).queued == recipients
    return campaign


def test_campaign_of_200_with_a_worker_sigkilled_mid_campaign(processes):
    sink = SmtpSink(data_delay=0.3).start()  # each answer takes a while: a kill finds messages in flight
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        processes.configure(
            MOCK_MODE="false", ANTHROPIC_API_KEY="test-not-used", EMAIL_BACKEND="emails.backends.SMTPBackend",
            EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(sink.port), EMAIL_TIMEOUT="10",
            DEFAULT_FROM_EMAIL="Agency <hello@agency.test>", PUBLIC_BASE_URL="http://127.0.0.1:8000",
            EMAIL_SENDING_RATE=f"{LIMIT}/{PERIOD:g}s", EMAIL_SENDING_CONCURRENCY="4", LOG_LEVEL="INFO")
        campaign = launched_with_both_pools(processes, RECIPIENTS)
        starts: dict[bytes, float] = {}
        killed = False

        def poll() -> bool:
            nonlocal killed
            for member, score in client.zrangebyscore(ratelimit.KEY_PREFIX + "email-sending", "-inf", "(+inf",
                                                      withscores=True):
                starts[member] = score / 1000
            if not killed and len(sink.messages) >= RECIPIENTS // 3:
                processes.kill("email-sending@primary", signal.SIGKILL)
                killed = True
            return not Message.objects.filter(campaign=campaign, status__in=["pending", "sending"]).exists()

        assert wait_for(poll, 240, interval=0.1), processes.logs()
        poll()
        assert killed

        # Before anyone decides: nobody got two, and every message marked sent did arrive.
        counts = sink.count_by_recipient()
        assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
        sent_to = set(Message.objects.filter(campaign=campaign, status="sent").values_list("to_email", flat=True))
        assert sent_to <= set(counts)
        unknown = list(Message.objects.filter(campaign=campaign, status="unknown"))
        # <msg-<id>@agency.test>: the workers' domain, which this process's settings do not have
        received_ids = {str(m["Message-ID"]).strip().split("@")[0] for m in sink.messages}
        found = [m for m in unknown if f"<msg-{m.id}" in received_ids]
        for message in unknown:  # a person's decision, by the Message-ID in the server's log
            if message in found:
                assert services.mark_unknown_sent(message.id)
            else:
                assert services.resend_unknown(message.id)
        assert wait_for(lambda: not Message.objects.filter(campaign=campaign).exclude(status="sent").exists(), 120,
                        interval=0.1), processes.logs()
        for member, score in client.zrangebyscore(ratelimit.KEY_PREFIX + "email-sending", "-inf", "(+inf",
                                                  withscores=True):
            starts[member] = score / 1000
    finally:
        processes.stop_all()
        sink.stop()
        client.close()

    counts = sink.count_by_recipient()
    assert len(counts) == RECIPIENTS and set(counts.values()) == {1}, "not exactly one message per recipient"
    assert len(sink.messages) == RECIPIENTS
    ledger_starts = [job.started_at.timestamp() for job in Job.objects.filter(queue="email-sending")]
    most_logged = ratelimit.max_starts_in_any_window(list(starts.values()), PERIOD)
    most_ledger = ratelimit.max_starts_in_any_window(ledger_starts, PERIOD)
    print(f"\nMEASURED campaign of {RECIPIENTS}: unknown after the kill {len(unknown)} (received {len(found)}, "
          f"sent again {len(unknown) - len(found)}); most starts in any {PERIOD:g}s window: limiter log "
          f"{most_logged}, ledger {most_ledger} (limit {LIMIT}); starts logged {len(starts)}")
    assert most_logged <= LIMIT and most_ledger <= LIMIT
    assert len(starts) >= RECIPIENTS
