"""Project package: settings, URLs, WSGI/ASGI entry points and the Celery app."""
