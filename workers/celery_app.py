"""The Celery app the runtime publishes with and runs workers on, found by name.

The runtime imports no app module, so it cannot import the project's Celery wiring either
(resilience/celery.py, which plugs every app in): settings.WORKERS_CELERY_APP names it,
"module:attribute", as ROOT_URLCONF names the URLs for Django and `celery -A` names an app for Celery.
"""
from __future__ import annotations

from celery import Celery
from celery.utils.imports import symbol_by_name
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def celery_app() -> Celery:
    """The configured app (its broker, its queues, its task class), never Celery's default one:
    publishing through the default app would send to a broker nobody listens to."""
    app = symbol_by_name(settings.WORKERS_CELERY_APP)
    if not isinstance(app, Celery):
        raise ImproperlyConfigured(f"WORKERS_CELERY_APP={settings.WORKERS_CELERY_APP!r} names a "
                                   f"{type(app).__name__}, not a Celery app")
    return app
