from django.contrib import admin
from django.utils.html import format_html

from sites.models import Site
from sites.services import spend_by_day_and_model, total_spend, usd

SPEND_DAYS_SHOWN = 14


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    """Generated sites with their tokens and cost. Read-only but for the status (withdraw a site)."""

    list_display = ("public_id", "preview", "lead", "design", "model", "total_tokens", "cost", "duration_ms", "status",
                    "created_at")
    list_filter = ("model", "status", "design", "mock")
    date_hierarchy = "created_at"  # by day
    search_fields = ("public_id", "lead__email", "lead__company")
    list_select_related = ("lead",)
    fieldsets = (
        (None, {"fields": ("public_id", "preview", "status", "lead", "job_id", "design", "created_at")}),
        ("Cost", {"fields": ("model", "mock", "api_requests", "input_tokens", "output_tokens", "cache_write_tokens",
                             "cache_read_tokens", "total_tokens", "cost", "duration_ms")}),
        ("Content", {"classes": ("collapse",), "fields": ("content", "html")}),
    )
    change_list_template = "admin/sites/site/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Site._meta.fields if f.name != "status"] + ["preview", "total_tokens", "cost"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the site row is the record of what was spent: withdraw it instead (status)

    @admin.display(description="preview")
    def preview(self, obj: Site) -> str:
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', obj.get_absolute_url(),
                           obj.get_absolute_url())

    @admin.display(description="tokens")
    def total_tokens(self, obj: Site) -> int:
        return obj.total_tokens

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj: Site) -> str:
        return usd(obj.cost_usd)

    def changelist_view(self, request, extra_context=None):
        rows = spend_by_day_and_model()[:SPEND_DAYS_SHOWN * 4]
        extra = {"spend_rows": [{**row, "cost": usd(row["cost"])} for row in rows],
                 "spend_total": total_spend(), "spend_total_cost": usd(total_spend().cost)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})
