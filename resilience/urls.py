from django.contrib import admin
from django.http import JsonResponse
from django.urls import path

from leads.views import clay_webhook

handler404 = "resilience.http.api_not_found"
handler500 = "resilience.http.api_server_error"

admin.site.site_header = "Resilience"
admin.site.site_title = "Resilience admin"


def healthz(request):
    """Liveness for process supervision: answers without touching the database."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/webhooks/clay", clay_webhook, name="clay-webhook"),
    path("healthz", healthz, name="healthz"),
]
