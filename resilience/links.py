"""Links between the admin's pages that cross apps, by URL name only (no app imported): a row's page
links to the story of the job that made it (monitoring's page, /admin/workers/job/<id>/story/) and a
lead's page to everything found from its email (the console's search)."""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.html import format_html

NO_JOB = "–"


def job_story_link(job_id: Any) -> str:
    try:
        job = uuid.UUID(str(job_id))
    except ValueError:
        return NO_JOB  # no job (None), or not a ledger job id
    return format_html('<a href="{}" class="job-story-link">{}</a>', reverse("job-story", args=[job]), job)


def search_link(query: str, text: str) -> str:
    return format_html('<a href="{}?{}" class="console-search-link">{}</a>', reverse("console-search"),
                       urlencode({"q": query}), text)
