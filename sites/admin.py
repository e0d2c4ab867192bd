"""Site generation (queue site-generation): Claude writes a site's content, templates render it, every
paid request is on the books (AiRequest), the ones that made no site included."""
from django.contrib import admin
from django.utils.html import format_html

from resilience.links import job_story_link
from sites.models import AiRequest, Site
from sites.services import spend_by_day_and_model, total_spend, usd

SPEND_DAYS_SHOWN = 14


def spend_context() -> dict:
    """The per-day-and-model table both change lists show above their rows (admin/sites/spend.html),
    from the running totals (SpendDay): a page view never sums the books."""
    rows = spend_by_day_and_model(limit=SPEND_DAYS_SHOWN * 4)
    total = total_spend()
    return {"spend_rows": [{**row, "cost": usd(row["cost"]), "no_site_cost": usd(row["no_site_cost"]),
                            "site_cost": usd(row["cost"] - row["no_site_cost"])} for row in rows],
            "spend_total": total, "spend_total_cost": usd(total.cost), "spend_total_no_site_cost": usd(total.no_site_cost),
            "spend_total_site_cost": usd(total.cost - total.no_site_cost)}


class ReadOnly:
    """The books are written by the workers alone."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CostColumns:
    """A site's and a paid request's tokens and cost, as the contract writes them."""

    @admin.display(description="tokens")
    def total_tokens(self, obj: Site | AiRequest) -> int:
        return obj.total_tokens

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj: Site | AiRequest) -> str:
        return usd(obj.cost_usd)


class AiRequestInline(ReadOnly, admin.TabularInline):
    model = AiRequest
    verbose_name_plural = "paid requests that made this site"
    fields = ("created_at", "request_id", "outcome", "detail", "input_tokens", "output_tokens", "cache_write_tokens",
              "cache_read_tokens", "cost_usd", "duration_ms")
    readonly_fields = fields
    extra = 0


@admin.register(Site)
class SiteAdmin(CostColumns, admin.ModelAdmin):
    """Generated sites with their tokens and cost. Read-only but for the status (withdraw a site)."""

    list_display = ("public_id", "preview", "lead", "design", "model", "total_tokens", "cost", "duration_ms", "status",
                    "cta_clicks", "created_at")
    list_filter = ("model", "status", "design", "mock")
    date_hierarchy = "created_at"  # by day
    search_fields = ("public_id", "lead__email", "lead__company")
    list_select_related = ("lead",)
    fieldsets = (
        (None, {"fields": ("public_id", "preview", "status", "lead", "job_id", "job_story", "design", "created_at", "cta_clicks")}),
        ("Cost", {"fields": ("model", "mock", "api_requests", "input_tokens", "output_tokens", "cache_write_tokens",
                             "cache_read_tokens", "total_tokens", "cost", "duration_ms")}),
        ("Content", {"classes": ("collapse",), "fields": ("content", "html")}),
    )
    inlines = [AiRequestInline]
    change_list_template = "admin/sites/site/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Site._meta.fields if f.name != "status"] + ["preview", "total_tokens", "cost",
                                                                             "job_story"]

    @admin.display(description="job's story")
    def job_story(self, site: Site) -> str:
        return job_story_link(site.job_id)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the site row is the record of what was spent: withdraw it instead (status)

    @admin.display(description="preview")
    def preview(self, obj: Site) -> str:
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', obj.get_absolute_url(),
                           obj.get_absolute_url())

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), **spend_context()})


class MadeSiteFilter(admin.SimpleListFilter):
    title = "made a site"
    parameter_name = "made_site"

    def lookups(self, request, model_admin):
        return (("yes", "made a site"), ("no", "paid, no site"))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(site__isnull=self.value() == "no")
        return queryset


@admin.register(AiRequest)
class AiRequestAdmin(ReadOnly, CostColumns, admin.ModelAdmin):
    """The books: every answered request to Claude, paid whatever became of its job."""

    list_display = ("created_at", "model", "outcome", "made_site", "request_id", "lead_id", "total_tokens", "cost",
                    "mock")
    list_filter = (MadeSiteFilter, "outcome", "model", "mock")
    date_hierarchy = "created_at"
    search_fields = ("request_id", "message_id", "=job_id", "=lead_id", "site__public_id")
    list_select_related = ("site",)
    fields = ("created_at", "model", "mock", "outcome", "detail", "site", "job_id", "fence", "lead_id", "request_id",
              "message_id", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "total_tokens",
              "cost", "duration_ms", "answer")
    readonly_fields = fields
    change_list_template = "admin/sites/airequest/change_list.html"

    @admin.display(description="made a site")
    def made_site(self, obj: AiRequest) -> str:
        return obj.site.public_id if obj.site_id else "paid, no site"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), **spend_context()})
