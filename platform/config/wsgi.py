"""WSGI entry point of the web process."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

application = get_wsgi_application()

# The URLconf, the templates and the static manifest loaded now, not by each worker's first
# requests (config/warm.py; under config/http_server.py, once in the main process for all workers).
from config.warm import warm  # noqa: E402

warm()
