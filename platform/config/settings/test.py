"""Tests: fast hashing, in-memory channels, a throwaway database per run."""

import atexit
import os
import shutil
import tempfile

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if os.environ.get("BERTH_TEST_CHANNELS") != "redis":
    # In-process tests; a served stack (tests/e2e) whose web and agent processes talk through
    # the layer keeps base's Redis layer by setting BERTH_TEST_CHANNELS=redis.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Tests run on an in-memory SQLite database; nothing is written under var/.
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
BERTH_RPC_TIMEOUT_SECONDS = 3
BERTH_EXEC_MARGIN_SECONDS = 0

if not (os.environ.get("BERTH_DATA_DIR") or os.environ.get("BERTH_CONTROL_KEY_FILE")):
    # A test process of its own (no stack's data dir): its control key lives in a throwaway
    # directory, never under the checkout's var/, and goes when the process ends.
    _KEYS = tempfile.mkdtemp(prefix="berth-test-keys-")
    atexit.register(shutil.rmtree, _KEYS, True)
    BERTH_CONTROL_KEY_FILE = os.path.join(_KEYS, "control.key")
