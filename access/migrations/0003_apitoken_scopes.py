import django.contrib.postgres.fields
from django.db import migrations, models

import access.models

# The scopes as they were when this migration was written: a later scope must not be granted by it.
EVERY_SCOPE = ["read", "dlq", "deliver", "admin"]


def keep_what_each_token_could_do(apps, schema_editor):
    """A token that could write could do everything; a read-only one could read (the field's default)."""
    ApiToken = apps.get_model("access", "ApiToken")
    ApiToken.objects.filter(can_write=True).update(scopes=EVERY_SCOPE)
    ApiToken.objects.filter(can_write=False).update(scopes=["read"])


def back_to_can_write(apps, schema_editor):
    """Going back: any scope beyond read was a right to write."""
    ApiToken = apps.get_model("access", "ApiToken")
    for token in ApiToken.objects.all():
        token.can_write = bool(set(token.scopes) - {"read"})
        token.save(update_fields=["can_write"])


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0002_apitoken_user"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(choices=[
                    ("read", "read: every GET (health, metrics, dead letters, deliveries, the OpenAPI document)"),
                    ("dlq", "dlq: resolve, re-open, requeue and delete dead letters"),
                    ("deliver", "deliver: mark a lead won and start its delivery"),
                    ("admin", "admin: every other change")], max_length=16),
                default=access.models.default_scopes, size=None),
        ),
        migrations.RunPython(keep_what_each_token_could_do, back_to_can_write),
        migrations.RemoveField(model_name="apitoken", name="can_write"),
    ]
