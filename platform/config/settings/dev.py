"""Local development: debug on, SQLite under var/ unless DATABASE_URL says otherwise."""

from config.settings.base import *  # noqa: F403

DEBUG = True
# ALLOWED_HOSTS stays the base list (localhost, 127.0.0.1 or DJANGO_ALLOWED_HOSTS): it is
# also the terminal WebSocket's origin allow-list, and "*" would admit any site.
