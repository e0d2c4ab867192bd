from django.contrib import admin

from workers.models import Job, JobFailure, QueueDailyStats, QueuePause, WorkerHeartbeat

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


@admin.register(JobFailure)
class JobFailureAdmin(ReadOnlyAdmin):
    list_display = ("failed_at", "queue", "attempt", "worker", "error")
    list_filter = ("queue",)
    search_fields = ("error", "job__id")
    date_hierarchy = "failed_at"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "pool", "queue", "host", "pid", "beat_at", "expires_at", "stopped_at", "jobs_done",
                    "jobs_failed", "memory_bytes")
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
