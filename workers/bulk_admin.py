"""Admin actions on everything a filter selects: a count and a confirmation page, a cap, each row logged.

Django's "Select all N" link (select_across) hands an action the change list's whole filtered queryset,
not only the rows checked on the page. bulk_action() puts a confirmation page in front of that, the way
delete_selected confirms: it shows the count and what will and will not happen, and its submit posts the
same action again with post=yes. The confirmed set is posted back as the filter (the page's query string)
with the count the person saw, not as up to BULK_ACTION_MAX ids (Django refuses a post of more than
DATA_UPLOAD_MAX_NUMBER_FIELDS fields); a filter that has grown since is refused, to be looked at again.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin import ModelAdmin, helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

# Rows named on the confirmation page: enough to recognise the set, the count says the rest.
PREVIEW_ROWS = 20


@dataclass
class BulkPlan:
    """What the confirmation page says: `lines` explain what will happen (and to how many), `warnings`
    what will not (rows the action skips, and why)."""
    lines: list[str]
    warnings: list[str] = field(default_factory=list)


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def over_cap(modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet) -> bool:
    """Refuse (with a message naming the count and the cap) a selection of more than BULK_ACTION_MAX rows."""
    opts = modeladmin.model._meta
    count, cap = queryset.count(), settings.BULK_ACTION_MAX
    if count <= cap:
        return False
    modeladmin.message_user(
        request, f"The selection holds {plural(count, opts.verbose_name, opts.verbose_name_plural)}; one action "
        f"may touch at most {cap} (BULK_ACTION_MAX): narrow the filter. Nothing was changed.", messages.ERROR)
    return True


def bulk_action(modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet, *, action: str, verb: str,
                plan: Callable[[QuerySet], BulkPlan], apply: Callable[[QuerySet, forms.Form | None], None],
                form_class: type[forms.Form] | None = None) -> TemplateResponse | None:
    """The confirmation page for `action` on `queryset` (first call), or `apply(queryset, form)` once
    confirmed (post=yes). Refused, with the count and the cap, when the selection holds more than
    BULK_ACTION_MAX rows. Returns None to go back to the change list, as an action does."""
    if over_cap(modeladmin, request, queryset):
        return None
    opts = modeladmin.model._meta
    count, cap = queryset.count(), settings.BULK_ACTION_MAX
    select_across = request.POST.get("select_across") == "1"
    confirming = request.POST.get("post") == "yes"
    form = form_class(request.POST if confirming else None) if form_class else None
    if confirming and (form is None or form.is_valid()):
        seen = request.POST.get("confirmed_count", "")
        if select_across and (not seen.isdigit() or count > int(seen)):
            modeladmin.message_user(
                request, f"The filter selects {count} now, not the {seen or '?'} you confirmed: look at it again. "
                "Nothing was changed.", messages.ERROR)
            return None
        apply(queryset, form)
        return None
    preview = list(queryset[:PREVIEW_ROWS])
    # Selected on the page: the ids themselves (one page's worth). The whole filter: one id, which the
    # admin needs to see to run an action at all, and select_across, which makes it use the filter.
    selected = [obj.pk for obj in preview] if select_across else list(queryset.values_list("pk", flat=True))
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"{verb}: are you sure?",
        "subtitle": None,
        "opts": opts,
        "count": count,
        "cap": cap,
        "noun": opts.verbose_name if count == 1 else opts.verbose_name_plural,
        "plan": plan(queryset),
        "preview": preview,
        "more": count - len(preview),
        "form": form,
        "verb": verb,
        "select_across": select_across,
        "selected": selected[:1] if select_across else selected,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action_name": action,
        "media": modeladmin.media + (form.media if form else forms.Media()),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/bulk_confirm.html", context)


def log_each(request: HttpRequest, rows: Sequence, flag: int, message: str) -> None:
    """One admin-history row per object, in one insert (a bulk action may touch BULK_ACTION_MAX rows)."""
    from django.contrib.admin.models import LogEntry

    if rows:
        LogEntry.objects.log_actions(user_id=request.user.pk, queryset=list(rows), action_flag=flag,
                                     change_message=message)
