"""Settings of the browser-test stack: the test settings with the Redis channel layer.

The web server (daphne) and the host agent are separate processes, so the terminal's
messages must cross Redis, as in production; config.settings.test keeps them in memory.
"""

from config.settings.test import *  # noqa: F403
from config.settings.test import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}
