import json
import logging
import uuid

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.models import CHANGE
from django.db import transaction
from django.db.models import Count, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django_celery_results.admin import TaskResultAdmin as CeleryTaskResultAdmin
from django_celery_results.models import TaskResult

from workers import ledger
from workers.bulk_admin import BulkPlan, bulk_action, log_each, over_cap, plural
from workers.models import Job, JobFailure, QueueDailyStats, QueuePause, WorkerHeartbeat
from workers.retention import finished_unkept

logger = logging.getLogger(__name__)
admin.site.index_template = "admin/workers/index.html"  # the admin home, with a link to the worker dashboard


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only the system writes (the ledger, heartbeats, statistics): people look, never edit."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class JobFailureInline(admin.TabularInline):
    model = JobFailure
    fields = ("attempt", "failed_at", "worker", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "queue", "task", "state", "attempts", "max_attempts", "worker", "next_attempt_at")
    list_filter = ("queue", "state")
    search_fields = ("id", "task", "last_error", "idempotency_key")
    date_hierarchy = "created_at"
    inlines = [JobFailureInline]  # every failed attempt of the job, not only the last error
    # On the rows checked, or on everything the filter selects ("Select all"): workers.bulk_admin.
    actions = ["cancel_selected", "run_now_selected", "delete_selected"]

    def get_readonly_fields(self, request, obj=None):
        return ["story", *super().get_readonly_fields(request, obj), "celery_result"]

    @admin.display(description="story")
    def story(self, job: Job) -> str:
        # monitoring's page (by URL name: the runtime imports no app): every attempt, Celery's result,
        # the dead-letter entry and the rows the job was about and made.
        return format_html('<a href="{}" class="job-story-link">every attempt, its result, its dead letter and '
                           'what it made</a>', reverse("job-story", args=[job.pk]))

    # Deleting: only a finished job that nothing keeps (workers.registry.keep_jobs: a dead job whose
    # dead-letter entry is unresolved). An unfinished job's message would wait for ever for its row, and
    # a kept one could not be requeued. Logged, and in the admin history (Django's own LogEntry).
    def has_delete_permission(self, request, obj: Job | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or finished_unkept(Job.objects.filter(pk=obj.pk)).exists()

    def delete_model(self, request, obj: Job) -> None:
        self.delete_queryset(request, Job.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        # Checked again under the rows' locks: a dead job requeued since the confirmation page is
        # pending now, and stays.
        with transaction.atomic():
            ids = list(finished_unkept(queryset.select_for_update(of=("self",))).values_list("id", "state"))
            Job.objects.filter(pk__in=[job_id for job_id, _ in ids]).delete()
        for job_id, state in ids:
            logger.info("job %s (%s) deleted from the ledger by %s in the admin", job_id, state, request.user)
        left = queryset.count()
        if left:
            logger.warning("%d job(s) not deleted by %s: unfinished or kept since they were chosen", left, request.user)

    # The ledger is read-only in the admin (has_change_permission is False), but a person with the
    # job's change permission may cancel jobs and run waiting ones now through these actions.
    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Cancel selected jobs that have not started", permissions=["operate"])
    def cancel_selected(self, request, queryset: QuerySet[Job]):
        def plan(rows: QuerySet[Job]) -> BulkPlan:
            by_state = _count_by_state(rows)
            cancellable = sum(by_state.get(state, 0) for state in Job.NOT_STARTED_STATES)
            running = by_state.get(Job.State.RUNNING, 0)
            finished = sum(by_state.get(state, 0) for state in Job.FINISHED_STATES)
            lines = [f"{plural(cancellable, 'job', 'jobs')} not started (pending, retry or dispatched) will be "
                     "cancelled: no attempt will claim them, even one whose message is already in Redis."]
            warnings = []
            if running:
                warnings.append(f"{plural(running, 'job is', 'jobs are')} running and will not be cancelled: a "
                                "job that has started runs to its end (its effect cannot be stopped halfway).")
            if finished:
                warnings.append(f"{plural(finished, 'job has', 'jobs have')} finished and will be left as "
                                f"{'it is' if finished == 1 else 'they are'}.")
            return BulkPlan(lines, warnings)

        def apply(rows: QuerySet[Job], _form) -> None:
            with transaction.atomic():
                ids = ledger.cancel_not_started(list(rows.values_list("pk", flat=True)))
                log_each(request, Job.objects.filter(pk__in=ids), CHANGE, "Cancelled before it started")
            skipped = rows.count() - len(ids)
            self.message_user(request, f"Cancelled {plural(len(ids), 'job', 'jobs')}.", messages.SUCCESS)
            if skipped:
                self.message_user(request, f"{plural(skipped, 'job was', 'jobs were')} not cancelled: running "
                                  "(it runs to its end) or already finished.", messages.WARNING)

        return bulk_action(self, request, queryset, action="cancel_selected", verb="Cancel jobs", plan=plan,
                           apply=apply)

    @admin.action(description="Run selected waiting jobs now (skip their backoff)", permissions=["operate"])
    def run_now_selected(self, request, queryset: QuerySet[Job]):
        def plan(rows: QuerySet[Job]) -> BulkPlan:
            waiting = rows.filter(state__in=Job.WAITING_STATES, next_attempt_at__gt=timezone.now()).count()
            lines = [f"{plural(waiting, 'job', 'jobs')} waiting on a backoff or a delay will be due now: the "
                     "dispatcher publishes them at its next round (within its rate limits)."]
            others = rows.count() - waiting
            warnings = [f"{plural(others, 'job is', 'jobs are')} not waiting (due already, running or finished) "
                        "and will be left as they are."] if others else []
            return BulkPlan(lines, warnings)

        def apply(rows: QuerySet[Job], _form) -> None:
            with transaction.atomic():
                ids = ledger.run_now(list(rows.values_list("pk", flat=True)))
                log_each(request, Job.objects.filter(pk__in=ids), CHANGE, "Run now: its wait was cut short")
            self.message_user(request, f"{plural(len(ids), 'job is', 'jobs are')} due now.", messages.SUCCESS)

        return bulk_action(self, request, queryset, action="run_now_selected", verb="Run jobs now", plan=plan,
                           apply=apply)

    @admin.action(description="Delete selected finished jobs", permissions=["delete"])
    def delete_selected(self, request, queryset: QuerySet[Job]):
        # Django's own confirmation page and logging, behind the cap every bulk action has.
        if over_cap(self, request, queryset):
            return None
        return django_delete_selected(self, request, queryset)

    @admin.display(description="Celery's result")
    def celery_result(self, job: Job) -> str:
        # The task id IS the job id (workers.dispatcher.publish); the one row holds the latest execution.
        result = TaskResult.objects.filter(task_id=str(job.id)).only("pk", "status", "worker").first()
        if result is None:
            return "none stored (not run yet, or run before results were kept)"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        return format_html('<a href="{}">{}</a> on {} (the latest attempt; the ledger above is the record)',
                           url, result.status, result.worker or "an unknown worker")


def _count_by_state(rows: QuerySet[Job]) -> dict[str, int]:
    return dict(rows.order_by().values("state").annotate(n=Count("id")).values_list("state", "n"))


@admin.register(JobFailure)
class JobFailureAdmin(ReadOnlyAdmin):
    list_display = ("failed_at", "queue", "attempt", "worker", "error")
    list_filter = ("queue",)
    search_fields = ("error", "job__id")
    date_hierarchy = "failed_at"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "pool", "queue", "host", "pid", "beat_at", "expires_at", "stopped_at", "jobs_done",
                    "jobs_failed", "jobs_rejected", "memory_bytes")
    list_filter = ("pool", "queue")


@admin.register(QueuePause)
class QueuePauseAdmin(ReadOnlyAdmin):
    """Pause and resume with manage.py pause_queue / resume_queue, which ask for a reason."""

    list_display = ("queue", "reason", "paused_by", "paused_at")


@admin.register(QueueDailyStats)
class QueueDailyStatsAdmin(ReadOnlyAdmin):
    list_display = ("day", "queue", "succeeded", "dead", "failed_attempts")
    list_filter = ("queue",)
    date_hierarchy = "day"


# Celery's own record of each execution, with a link back to the ledger job it ran.
admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class TaskResultAdmin(CeleryTaskResultAdmin):
    list_display = ("task_id", "task_name", "status", "worker", "date_done", "runtime", "ledger_job")
    fieldsets = (
        ("Ledger", {"fields": ("ledger_job", "runtime")}),
        *CeleryTaskResultAdmin.fieldsets,
    )

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "ledger_job", "runtime"]

    def has_add_permission(self, request) -> bool:
        return False  # workers write these

    @admin.display(description="ledger job")
    def ledger_job(self, result: TaskResult) -> str:
        try:
            job_id = uuid.UUID(result.task_id)
        except ValueError:
            return "–"  # not a ledger task
        return format_html('<a href="{}">{}</a>', reverse("admin:workers_job_change", args=[job_id]), job_id)

    @admin.display(description="runtime")
    def runtime(self, result: TaskResult) -> str:
        # Measured by the task itself (workers.worker_signals.LedgerJobTask) and stored in the result's meta.
        try:
            seconds = json.loads(result.meta or "{}")["runtime_seconds"]
        except (ValueError, TypeError, KeyError):
            return "–"
        return f"{seconds:.3f} s"
