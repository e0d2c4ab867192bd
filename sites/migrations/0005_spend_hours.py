from django.db import migrations, models

# Spend per UTC hour (sites.models.SpendHour), kept like SpendDay (0003_spend_days): one statement-level
# trigger per kind of change on sites_airequest, reading its transition tables, adds the changed rows'
# figures (minus the old rows', plus the new rows') to their hour's row in the same transaction,
# grouped and ordered by key so two statements take their row locks in the same order.
UPSERT = """
    INSERT INTO sites_spendhour (hour, mock, requests, cost_usd)
    SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', mock, sum(sign), sum(sign * cost_usd)
    FROM ({changes}) AS changes GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (hour, mock) DO UPDATE SET
        requests = sites_spendhour.requests + EXCLUDED.requests,
        cost_usd = sites_spendhour.cost_usd + EXCLUDED.cost_usd"""
POSTGRES = [
    f"""
    CREATE FUNCTION sites_spend_hour() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {UPSERT.format(changes="SELECT 1 AS sign, * FROM new_rows")};
        ELSIF TG_OP = 'DELETE' THEN
            {UPSERT.format(changes="SELECT -1 AS sign, * FROM old_rows")};
        ELSE
            {UPSERT.format(changes="SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows")};
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER sites_spend_hour_insert AFTER INSERT ON sites_airequest REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION sites_spend_hour()",
    "CREATE TRIGGER sites_spend_hour_update AFTER UPDATE ON sites_airequest"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sites_spend_hour()",
    "CREATE TRIGGER sites_spend_hour_delete AFTER DELETE ON sites_airequest REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION sites_spend_hour()",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS sites_spend_hour_insert ON sites_airequest",
    "DROP TRIGGER IF EXISTS sites_spend_hour_update ON sites_airequest",
    "DROP TRIGGER IF EXISTS sites_spend_hour_delete ON sites_airequest",
    "DROP FUNCTION IF EXISTS sites_spend_hour()",
]
# The paid requests already on the books, summed once; the triggers (created in the same transaction,
# which holds off writers until it commits) count every change after.
FILL = UPSERT.format(changes="SELECT 1 AS sign, * FROM sites_airequest")


def create_triggers(apps, schema_editor):
    for sql in POSTGRES + [FILL]:
        schema_editor.execute(sql)


def drop_triggers(apps, schema_editor):
    for sql in POSTGRES_REVERSE:
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('sites', '0004_site_cta_clicks'),
    ]

    operations = [
        migrations.CreateModel(
            name='SpendHour',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('mock', models.BooleanField()),
                ('requests', models.BigIntegerField(default=0)),
                ('cost_usd', models.DecimalField(decimal_places=10, default=0, max_digits=28)),
            ],
            options={
                'verbose_name': "hour's spend",
                'verbose_name_plural': "hours' spend",
                'ordering': ['-hour'],
                'constraints': [models.UniqueConstraint(fields=('hour', 'mock'), name='spend_hour_once')],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
