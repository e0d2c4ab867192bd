from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from access.models import ApiToken, Scope


class ScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return Scope.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(scopes__contains=[self.value()]) if self.value() in Scope.values else queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here; they are made by `manage.py create_api_token NAME`, which
    shows the secret once (only its hash is stored, so the admin could never show it)."""

    list_display = ("name", "prefix", "scope_list", "created_at", "last_used_at")
    list_filter = (ScopeFilter,)
    search_fields = ("name", "prefix")
    # not key_hash: of no use to a person. user: the service user its changes are recorded under.
    fields = ("name", "prefix", "scope_list", "user", "created_at", "last_used_at")
    readonly_fields = fields

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # nothing to edit: to change a token's rights, revoke it and make another

    def get_actions(self, request: HttpRequest) -> dict:
        found = super().get_actions(request)
        if "delete_selected" in found:
            func, name, _ = found["delete_selected"]
            found["delete_selected"] = (func, name, "Revoke (delete) selected API tokens")
        return found
