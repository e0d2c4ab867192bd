from django.contrib import admin
from django.http import HttpRequest

from access.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here; they are made by `manage.py create_api_token NAME`, which
    shows the secret once (only its hash is stored, so the admin could never show it)."""

    list_display = ("name", "prefix", "can_write", "created_at", "last_used_at")
    list_filter = ("can_write",)
    search_fields = ("name", "prefix")
    # not key_hash: of no use to a person. user: the service user its changes are recorded under.
    fields = ("name", "prefix", "can_write", "user", "created_at", "last_used_at")
    readonly_fields = fields

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
