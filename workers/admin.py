from django.contrib import admin

from workers.models import Job

admin.site.index_template = "admin/workers/index.html"  # the admin home, with a link to the worker dashboard


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("created_at", "queue", "task", "state", "attempts", "max_attempts", "worker", "next_attempt_at")
    list_filter = ("queue", "state")
    search_fields = ("id", "task", "last_error", "idempotency_key")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the ledger changes only through workers.ledger
