"""Local development: debug on, SQLite under var/ unless DATABASE_URL says otherwise."""

from config.settings.base import *  # noqa: F403

DEBUG = True
ALLOWED_HOSTS = ["*"]
