"""The minimal site fastmon's tests run in: real PostgreSQL, Redis and ActiveMQ on loopback.

Start them with ``scripts/services.sh up``. Each can be pointed elsewhere by environment.
"""

import json
import os

from fastmon.testing.site import (  # noqa: F401
    INSTALLED_APPS,
    MIDDLEWARE,
    REST_FRAMEWORK,
    SPECTACULAR_SETTINGS,
    TEMPLATES,
)

SECRET_KEY = "fastmon-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("FASTMON_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("FASTMON_DB_PORT", "5432"),
        "NAME": os.environ.get("FASTMON_DB_NAME", "fastmon"),
        "USER": os.environ.get("FASTMON_DB_USER", "fastmon"),
        "PASSWORD": os.environ.get("FASTMON_DB_PASSWORD", "fastmon"),
    }
}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# The remote-read servers scripts/services.sh starts over one data directory.
REMOTE_DATA_DIR = os.environ.get("FASTMON_REMOTE_DATA_DIR", "/var/lib/fastmon-data")
XROOTD_URL = os.environ.get("FASTMON_TEST_XROOTD_URL", "root://169.254.94.2:1094/")
HTTP_DATA_URL = os.environ.get("FASTMON_TEST_HTTP_URL", "http://127.0.0.1:8088/")
XROOTD_LOG = "/var/lib/fastmon-xrootd/fastmon/xrootd.log"
HTTP_LOG = "/var/lib/fastmon-http/logs/access.log"
STATIC_URL = "static/"
FASTMON = {
    # Tests that observe fast processing name destinations of their own.
    "FAST_PROCESSING_DESTINATIONS": [],
    "BROKER_USER": os.environ.get("FASTMON_TEST_STOMP_USER", "fastmon"),
    "BROKER_PASSWORD": os.environ.get("FASTMON_TEST_STOMP_PASSWORD", "fastmon"),
    "BROKER_HOSTS": [
        (os.environ.get("FASTMON_TEST_STOMP_HOST", "127.0.0.1"),
         int(os.environ.get("FASTMON_TEST_STOMP_PORT", "61613"))),
    ],
}  # fmt: skip
CELERY_BROKER_URL = os.environ.get("FASTMON_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/1")
CELERY_TASK_IGNORE_RESULT = True
# A task whose worker vanished goes to another worker after this long (tests kill workers).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 10,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Redis pub/sub ignores database numbers: the prefix keeps runs on other databases
        # (parallel checkouts, benchmarks) off this one's live pages. The same for the test
        # process (NAME) and the servers it starts on pytest's test database (test_NAME).
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": f"fastmon-{DATABASES['default']['NAME'].removeprefix('test_')}",
        },
    }
}

# Subprocesses started by tests (run_fastmon) get their settings changes through the environment.
FASTMON.update(json.loads(os.environ.get("FASTMON_TEST_SETTINGS", "{}")))
