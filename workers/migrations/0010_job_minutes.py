from django.db import migrations, models

# The per-minute counts of attempts (see workers.job_minutes for what counts): one statement-level
# trigger on the ledger's updates, reading its transition tables, appends one delta row per queue and
# minute (and wait bucket) the statement touched. Minutes are UTC whatever the session's time zone.
# The bucket bounds are workers.job_minutes.WAIT_BUCKETS (a test checks they agree).
WAIT_BUCKETS = "ARRAY[0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]::float8[]"
POSTGRES = [
    f"""
    CREATE FUNCTION workers_job_minute() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        WITH changed AS (
            SELECT o.queue, o.state AS old_state, n.state AS new_state, o.attempts AS old_attempts,
                   n.attempts AS new_attempts, o.started_at AS old_started, n.started_at AS new_started,
                   o.created_at, n.rejected, n.finished_at
              FROM old_jobs o JOIN new_jobs n USING (id)
             WHERE o.state = 'running' OR n.state = 'running'
        ), events AS (
            -- an attempt starts (its claim), or moves its start to its rate-limit slot; a row made
            -- running by hand with no start time has no start to count (and none to take back)
            SELECT queue, new_started AS at, 1 AS started, 0 AS succeeded, 0 AS failed, 0 AS rejected,
                   CASE WHEN new_attempts = 1 THEN new_started - created_at END AS wait, 1 AS sign
              FROM changed
             WHERE new_state = 'running' AND new_started IS NOT NULL
               AND (old_state <> 'running' OR old_started IS DISTINCT FROM new_started)
            UNION ALL
            -- the start it moved from, or a claim given back undone (deferred: its attempt not made)
            SELECT queue, old_started, -1, 0, 0, 0,
                   CASE WHEN old_attempts = 1 THEN old_started - created_at END, -1
              FROM changed
             WHERE old_state = 'running' AND old_started IS NOT NULL
               AND ((new_state = 'running' AND old_started IS DISTINCT FROM new_started)
                    OR (new_state = 'pending' AND new_attempts < old_attempts))
            UNION ALL
            -- an attempt ends: succeeded, failed (retry, dead, lost: back to pending), or rejected
            SELECT queue, coalesce(finished_at, now()), 0, (new_state = 'succeeded')::int,
                   (new_state <> 'succeeded' AND NOT (new_state = 'dead' AND rejected))::int,
                   (new_state = 'dead' AND rejected)::int, NULL, 0
              FROM changed
             WHERE old_state = 'running'
               AND (new_state IN ('succeeded', 'retry', 'dead') OR (new_state = 'pending' AND new_attempts = old_attempts))
        ), minutes AS (
            SELECT *, date_trunc('minute', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS minute FROM events
        ), counts AS (
            INSERT INTO workers_jobminute (queue, minute, started, succeeded, failed, rejected, folded)
            SELECT queue, minute, sum(started), sum(succeeded), sum(failed), sum(rejected), false
              FROM minutes GROUP BY 1, 2
            HAVING sum(started) <> 0 OR sum(succeeded) <> 0 OR sum(failed) <> 0 OR sum(rejected) <> 0
        )
        INSERT INTO workers_jobwaitminute (queue, minute, bucket, n, folded)
        SELECT queue, minute, width_bucket(extract(epoch FROM wait)::float8, {WAIT_BUCKETS}), sum(sign), false
          FROM minutes WHERE wait IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(sign) <> 0;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER workers_job_minute_update AFTER UPDATE ON workers_job"
    " REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION workers_job_minute()",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS workers_job_minute_update ON workers_job",
    "DROP FUNCTION IF EXISTS workers_job_minute()",
]


def create_trigger(apps, schema_editor):
    for sql in POSTGRES:
        schema_editor.execute(sql)


def drop_trigger(apps, schema_editor):
    for sql in POSTGRES_REVERSE:
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0009_heartbeat_jobs_rejected'),
    ]

    operations = [
        migrations.CreateModel(
            name='JobMinute',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('queue', models.CharField(max_length=40)),
                ('minute', models.DateTimeField()),
                ('started', models.BigIntegerField(default=0)),
                ('succeeded', models.BigIntegerField(default=0)),
                ('failed', models.BigIntegerField(default=0)),
                ('rejected', models.BigIntegerField(default=0)),
                ('folded', models.BooleanField(default=False)),
            ],
            options={
                'verbose_name': 'job minute',
                'verbose_name_plural': 'job minutes',
                'indexes': [
                    models.Index(fields=['minute'], name='jobminute_minute_idx'),
                    models.Index(condition=models.Q(('folded', False)), fields=['queue', 'minute'], name='jobminute_unfolded_idx'),
                ],
            },
        ),
        migrations.CreateModel(
            name='JobWaitMinute',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('queue', models.CharField(max_length=40)),
                ('minute', models.DateTimeField()),
                ('bucket', models.SmallIntegerField()),
                ('n', models.BigIntegerField()),
                ('folded', models.BooleanField(default=False)),
            ],
            options={
                'verbose_name': 'job wait minute',
                'verbose_name_plural': 'job wait minutes',
                'indexes': [
                    models.Index(fields=['minute'], name='jobwaitminute_minute_idx'),
                    models.Index(condition=models.Q(('folded', False)), fields=['queue', 'minute'], name='jobwaitminute_unfolded_idx'),
                ],
            },
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
