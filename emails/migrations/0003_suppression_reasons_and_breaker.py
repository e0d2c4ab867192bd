"""Suppressions become one row per (address, reason) with where they came from; Message remembers whose
fault its last failure was; the breaker's trips.

The data step turns each old row into its facts: `bounced_at` -> a "bounce" row (its bounce_reason as the
detail), `unsubscribed_at` -> an "unsubscribe" row, each dated as it was, addresses lower-cased. An old
"bounce" whose recorded reply was not about the mailbox (the old code suppressed every 5xx: "554 5.7.1
Relay access denied", "550 5.7.26" DMARC, content refused after DATA, a 5xx without an enhanced code) is
not carried over: those addresses did nothing wrong, and suppressing them was the bug this fixes.
"""
import re

import django.utils.timezone
from django.db import migrations, models
from django.db.models import Q

# The old Bounced texts: "recipient refused: {'a@b': (550, b'5.1.1 no such user')}" and
# "message refused: 554 b'5.7.1 spam'". Copied from emails.refusals on purpose: a migration must not
# change meaning when that module does.
_REPLY = re.compile(r"""\(?(\d{3}),? b?['"]\s*(?:([245])\.(\d{1,3})\.\d{1,3})?""")


def _was_about_the_mailbox(bounce_reason: str) -> bool:
    replies = _REPLY.findall(bounce_reason or "")
    if not replies:
        return True  # a provider's refusal, or a text we cannot read: keep what was decided
    return any(int(code) >= 500 and klass == "5" and subject in ("1", "2") for code, klass, subject in replies)


def split_into_facts(apps, schema_editor):
    Suppression = apps.get_model("emails", "Suppression")
    seen: set[tuple[str, str]] = set()
    for row in Suppression.objects.order_by("pk"):
        email = row.email.strip().lower()
        facts = []
        if row.bounced_at and _was_about_the_mailbox(row.bounce_reason):
            facts.append(("bounce", row.bounced_at, row.bounce_reason))
        if row.unsubscribed_at:
            facts.append(("unsubscribe", row.unsubscribed_at, ""))
        facts = [fact for fact in facts if (email, fact[0]) not in seen]
        if not facts:
            row.delete()
            continue
        for n, (reason, when, detail) in enumerate(facts):
            seen.add((email, reason))
            fields = dict(email=email, reason=reason, created_at=when, detail=detail or "", by="before reasons")
            if n == 0:
                Suppression.objects.filter(pk=row.pk).update(**fields)
            else:
                Suppression.objects.create(**fields)


def fold_back(apps, schema_editor):
    """One row per address again: an unsubscribe row as unsubscribed_at, any other as bounced_at (all
    of them stop all mail, as bounced_at did)."""
    Suppression = apps.get_model("emails", "Suppression")
    kept: dict[str, object] = {}
    for row in Suppression.objects.order_by("created_at", "pk"):
        first = kept.setdefault(row.email, row)
        if row.reason == "unsubscribe":
            first.unsubscribed_at = first.unsubscribed_at or row.created_at
        else:
            first.bounced_at = first.bounced_at or row.created_at
            first.bounce_reason = first.bounce_reason or row.detail
    for row in kept.values():
        row.save()
    Suppression.objects.exclude(pk__in=[row.pk for row in kept.values()]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("emails", "0002_campaign_template_language"),
    ]

    operations = [
        migrations.CreateModel(
            name="BreakerTrip",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("cause", models.CharField(choices=[("refused", "sends refused on our side"),
                                                    ("bounces", "bounce rate"), ("complaints", "complaint rate")],
                                           max_length=12)),
                ("reason", models.TextField()),
                ("tripped_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("resumed_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"verbose_name": "email breaker trip", "verbose_name_plural": "email breaker trips",
                     "ordering": ["-tripped_at"]},
        ),
        migrations.AddField(
            model_name="message",
            name="last_failure",
            field=models.CharField(blank=True, choices=[
                ("temporary", "temporary (4xx, the network)"),
                ("ours", "refused: our side or the message (5.7.x, relay, content)"),
                ("mailbox", "refused: the mailbox (5.1.x, 5.2.x)")], max_length=10),
        ),
        migrations.AddField(
            model_name="message",
            name="last_failed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(condition=Q(last_failure="ours"), fields=["last_failed_at"],
                               name="email_refused_ours_idx"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["claimed_at"], name="email_claimed_idx"),
        ),
        migrations.AlterField(
            model_name="suppression",
            name="email",
            field=models.EmailField(max_length=254),
        ),
        migrations.AddField(
            model_name="suppression",
            name="reason",
            field=models.CharField(choices=[("bounce", "bounce (the mailbox refused)"),
                                            ("complaint", "complaint (marked as spam)"),
                                            ("unsubscribe", "unsubscribe"), ("manual", "by hand")],
                                   default="manual", max_length=12),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="suppression",
            name="message_id",
            field=models.UUIDField(blank=True, null=True,
                                   help_text="The message whose refusal or event caused it."),
        ),
        migrations.AddField(
            model_name="suppression",
            name="event_id",
            field=models.CharField(blank=True, max_length=255,
                                   help_text="The provider's event id, for provider events."),
        ),
        migrations.AddField(
            model_name="suppression",
            name="detail",
            field=models.TextField(blank=True, help_text="The server's or provider's words, or a person's note."),
        ),
        migrations.AddField(
            model_name="suppression",
            name="by",
            field=models.CharField(blank=True, max_length=150,
                                   help_text="Who or what suppressed it (smtp, a provider, a person)."),
        ),
        migrations.AlterField(
            model_name="suppression",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.RunPython(split_into_facts, fold_back),
        migrations.RemoveField(model_name="suppression", name="bounce_reason"),
        migrations.RemoveField(model_name="suppression", name="bounced_at"),
        migrations.RemoveField(model_name="suppression", name="unsubscribed_at"),
        migrations.AddConstraint(
            model_name="suppression",
            constraint=models.UniqueConstraint(fields=("email", "reason"), name="email_one_suppression_per_reason"),
        ),
        migrations.AddIndex(
            model_name="suppression",
            index=models.Index(fields=["reason", "created_at"], name="email_suppression_recent_idx"),
        ),
    ]
