"""Hypercorn's configuration for the `web` program (deploy/supervisord.conf):

    python -m hypercorn --config python:resilience.web_server resilience.asgi:application ...

Hypercorn reads every public name of this module (modules excepted) as a setting; the command line
adds the address and the process count. Values come from the Django settings, so a bad one
stops start-up with one `configuration error:` line.
"""
import logging
import os

import django.conf

from resilience import access_log, env

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
env.load_settings_or_exit()

# Hypercorn closes a connection when this runs out before a request's headers are complete, counted
# from the connection's opening or its previous answer, and not restarted by each byte that arrives
# (measured: a client sending a header line a second is closed on time). The body's deadline is
# resilience.asgi's: hypercorn's read_timeout restarts on every byte.
keep_alive_timeout = django.conf.settings.WEB_HEADER_TIMEOUT_SECONDS
# A connection silent for this long is closed whatever it is doing. It is what bounds an HTTP/2
# connection opened without TLS ("prior knowledge"), which hypercorn accepts and to which the
# deadline above does not apply (a proxy in front speaks HTTP/1.1 to us and does not open one). It
# also ends a request still running by then, as gunicorn's 60 s worker timeout did: 60 s by default.
read_timeout = 2 * max(django.conf.settings.WEB_HEADER_TIMEOUT_SECONDS, django.conf.settings.WEB_BODY_TIMEOUT_SECONDS)
# SIGTERM or SIGHUP: requests in progress get this long to finish (supervisord's stopwaitsecs is above).
graceful_timeout = 30.0
# Through the root logger that Django's LOGGING sets up: one format and one line per message in
# var/log/web.log (hypercorn's own handler would print each message a second time).
errorlog = logging.getLogger("hypercorn.error")
# The access log through Python logging, not a file hypercorn opens itself: settings.LOGGING gives
# hypercorn.access its handler (redacted, one line per request, 0600, rotated) in the worker process,
# where Django's set-up runs; the logger class escapes each field of the line (resilience.access_log).
accesslog = logging.getLogger("hypercorn.access")
logger_class = access_log.AccessLogger
