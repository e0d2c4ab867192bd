"""Idempotency-Key values are kept as their SHA-256 (hex), not by value: the rows already stored are
hashed in place, so a retry of a request accepted before this migration still finds its first answer."""
import hashlib

from django.db import migrations, models


def hash_stored_keys(apps, schema_editor):
    Key = apps.get_model("leads", "WebhookIdempotencyKey")
    for row in Key.objects.only("pk", "key").iterator():
        Key.objects.filter(pk=row.pk).update(key=hashlib.sha256(row.key.encode("utf-8")).hexdigest())


class Migration(migrations.Migration):

    dependencies = [
        ("leads", "0004_lead_won_delivered"),
    ]

    operations = [
        # Irreversible by nature: a hash does not give its key back.
        migrations.RunPython(hash_stored_keys, migrations.RunPython.noop),
        migrations.RenameField(model_name="webhookidempotencykey", old_name="key", new_name="key_sha256"),
        migrations.AlterField(
            model_name="webhookidempotencykey",
            name="key_sha256",
            field=models.CharField(max_length=64, unique=True),
        ),
    ]
