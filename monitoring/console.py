"""The operator's console pages in the admin: the search (/admin/workers/search/) and a job's story
(/admin/workers/job/<id>/story/). Both sit behind admin.site.admin_view (staff only, anyone else to the
login page); the search shows each kind of row only to a person allowed to view it, the story needs
the permission to view jobs and shows each of its parts only with that part's view permission."""
from __future__ import annotations

import json
import uuid

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from monitoring import search as searching
from monitoring.story import job_story
from resilience.redaction import redact_text
from workers.models import Job

STORY_PERMISSION = "workers.view_job"


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    results = searching.search(query, request.user)
    if not results.allowed:
        context = {**admin.site.each_context(request), "title": "Search", "page": "search",
                   "missing_permission": " or ".join(searching.PERMISSIONS.values())}
        return TemplateResponse(request, "admin/workers/forbidden.html", context, status=403)
    hidden = [kind.replace("_", " ") for kind in searching.PERMISSIONS if kind not in results.allowed]
    # Each kind as "found_<kind>": a plain "messages" would be the admin's own message list.
    context = {
        **admin.site.each_context(request),
        "title": "Search",
        "query": results.terms.text,
        "results": results,
        "hidden_kinds": hidden,
        "per_kind": searching.PER_KIND,
        "found_leads": [(lead, searching.admin_url(lead)) for lead in results.leads],
        "found_submissions": [(s, searching.admin_url(s), searching.story_url(s.job_id)) for s in results.submissions],
        "found_jobs": [(job, searching.admin_url(job), searching.story_url(job.pk)) for job in results.jobs],
        "found_dead_letters": [(d, searching.admin_url(d), searching.story_url(d.job_id)) for d in results.dead_letters],
        "found_sites": [(site, searching.admin_url(site), searching.story_url(site.job_id)) for site in results.sites],
        "found_messages": [(m, searching.admin_url(m), searching.story_url(m.job_id)) for m in results.messages],
        "found_steps": [(s, searching.admin_url(s.run), searching.story_url(s.job_id)) for s in results.steps],
    }
    return TemplateResponse(request, "admin/workers/search.html", context)


@require_GET
def story(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    if not request.user.has_perm(STORY_PERMISSION):
        context = {**admin.site.each_context(request), "title": "Job story", "page": "a job's story",
                   "missing_permission": STORY_PERMISSION}
        return TemplateResponse(request, "admin/workers/forbidden.html", context, status=403)
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404("no such job in the ledger (pruned after its retention, or never recorded)")
    told = job_story(job, request.user)
    entry = told.dead_letter
    context = {**admin.site.each_context(request), "title": f"Job {job.pk}", "story": told,
               "job_admin_url": searching.admin_url(job), "payload": json.dumps(job.payload, sort_keys=True),
               # Redacted when recorded; again here, so a secret configured since stays out too.
               "dead_letter_error": redact_text(entry.error_message or "") if entry else "",
               "dead_letter_stack": redact_text(entry.error_stack or "") if entry else ""}
    return TemplateResponse(request, "admin/workers/story.html", context)
