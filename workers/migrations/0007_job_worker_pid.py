from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0006_rate_slot_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='worker_pid',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
