from django.urls import path

from emails import views, webhooks

urlpatterns = [
    path("open/<str:token>.gif", views.open_pixel, name="email-open"),
    path("click/<str:token>", views.click, name="email-click"),
    path("unsubscribe/<str:token>", views.unsubscribe, name="email-unsubscribe"),
    path("events/<str:provider>/", webhooks.provider_events, name="email-events"),  # providers' signed webhooks
]
