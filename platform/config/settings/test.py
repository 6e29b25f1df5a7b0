"""Tests: fast hashing, in-memory channels, a throwaway database per run."""

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Tests run on an in-memory SQLite database; nothing is written under var/.
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
BERTH_RPC_TIMEOUT_SECONDS = 3
BERTH_EXEC_MARGIN_SECONDS = 0
