from django.conf import settings
from django.db import migrations, models


def give_each_token_a_service_user(apps, schema_editor):
    """Tokens made before this migration: the same service user access.auth.service_user makes."""
    ApiToken = apps.get_model("access", "ApiToken")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    from django.contrib.auth.hashers import make_password

    for token in ApiToken.objects.filter(user__isnull=True):
        user, _ = User.objects.get_or_create(
            username=f"token:{token.name}", defaults={"is_active": False, "password": make_password(None)}
        )
        token.user = user
        token.save(update_fields=["user"])


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="user",
            field=models.OneToOneField(blank=True, null=True, on_delete=models.deletion.PROTECT,
                                       related_name="api_token", to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(give_each_token_a_service_user, migrations.RunPython.noop),
    ]
