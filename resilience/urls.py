from django.contrib import admin
from django.http import HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from delivery import views as delivery_views
from dlq import views as dlq_views
from leads.views import clay_webhook
from sites.views import site_booking, site_page
from monitoring import console, dashboard, views as worker_views
from resilience.http import allow_methods
from resilience.openapi import openapi_view

handler400 = "resilience.http.api_bad_request"
handler403 = "resilience.http.api_permission_denied"
handler404 = "resilience.http.api_not_found"
handler500 = "resilience.http.api_server_error"

admin.site.site_header = "Resilience"
admin.site.site_title = "Resilience admin"


@csrf_exempt  # no session, nothing to protect: a POST is answered 405 like any other method
@allow_methods("GET")
def healthz(request):
    """Liveness for process supervision: answers without touching the database."""
    return JsonResponse({"status": "ok"})


# Every browser asks for it on every page: answered (a small mark, cached for a day) rather than with a
# 404, which Django logs as a WARNING for each page view.
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           b'<rect width="16" height="16" rx="3" fill="#417690"/></svg>')


@csrf_exempt
@allow_methods("GET")
def favicon(request):
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    # Before admin.site.urls, whose catch-all would answer 404; admin_view sends anyone not logged in
    # as staff to the admin's login page.
    path("admin/workers/", admin.site.admin_view(dashboard.dashboard), name="workers-dashboard"),
    path("admin/workers/data", admin.site.admin_view(dashboard.dashboard_data), name="workers-dashboard-data"),
    path("admin/workers/search/", admin.site.admin_view(console.search), name="console-search"),
    path("admin/workers/job/<uuid:job_id>/story/", admin.site.admin_view(console.story), name="job-story"),
    path("admin/", admin.site.urls),
    path("api/admin/workers/health", worker_views.workers_health, name="workers-health"),
    path("api/admin/workers/charts", worker_views.workers_charts, name="workers-charts"),
    path("api/admin/dead-letter-queue", dlq_views.dead_letter_queue, name="dead-letter-queue"),
    path("api/admin/dead-letter-queue/requeue", dlq_views.requeue, name="dead-letter-requeue"),
    path("api/admin/dead-letter-queue/bulk", dlq_views.bulk, name="dead-letter-bulk"),
    path("api/admin/leads/<int:lead_id>/deliver", delivery_views.lead_delivery, name="lead-delivery"),
    path("metrics", worker_views.metrics, name="metrics"),
    path("api/webhooks/clay", clay_webhook, name="clay-webhook"),
    path("api/openapi.json", openapi_view, name="openapi"),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("email/", include("emails.urls")),  # tracking and unsubscribe links inside emails
    path("sites/<str:public_id>/", site_page, name="site-page"),
    path("sites/<str:public_id>/book", site_booking, name="site-booking"),
]
