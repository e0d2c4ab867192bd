import os

from resilience.env import load_settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
load_settings_or_exit()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
