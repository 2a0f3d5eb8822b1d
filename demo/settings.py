"""Settings of the demo site: the same fastmon, on backends that need nothing installed, or on
real services when ``python -m demo`` is given their URLs (see ``demo.backends``)."""

import os
from pathlib import Path

from demo import backends
from fastmon.testing.site import (  # noqa: F401
    INSTALLED_APPS,
    MIDDLEWARE,
    REST_FRAMEWORK,
    SPECTACULAR_SETTINGS,
    TEMPLATES,
)

DATA_DIR = Path(os.environ.get("FASTMON_DEMO_DIR", Path.cwd() / ".fastmon-demo")).resolve()
# Where the simulator writes STF files, and the one place sampling may read them.
STF_DIR = DATA_DIR / "stf"
STF_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "fastmon-demo-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

ROOT_URLCONF = "demo.urls"
ASGI_APPLICATION = "demo.asgi.application"
DATABASES = {
    "default": backends.database(
        os.environ.get(backends.DATABASE_ENV), DATA_DIR / "fastmon.sqlite3"
    )
}
CHANNEL_LAYERS = {
    "default": backends.channel_layer(
        os.environ.get(backends.REDIS_ENV), f"fastmon-demo-{DATABASES['default']['NAME']}"
    )
}
STATIC_URL = "static/"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"fastmon": {"handlers": ["console"], "level": "WARNING"}},
}
DESTINATION = os.environ.get(backends.DESTINATION_ENV, "/topic/epictopic")
# STF files announced as remote URLs (--stf-url-prefix) are read there, and only there.
STF_URL_PREFIX = os.environ.get(backends.STF_URL_PREFIX_ENV)
FASTMON = {
    "NAMESPACE": "epic-fastmon",
    "DATA_ROOTS": [STF_URL_PREFIX] if STF_URL_PREFIX else [str(STF_DIR)],
    "SUBSCRIBE_DESTINATIONS": [DESTINATION],
    "PUBLISH_DESTINATION": DESTINATION,
    # The fast-processing stage the demo plays (demo.pipeline.FastPath): slices, worker
    # broadcasts, and the workers' results, sent straight where fastmon reads their copy.
    "FAST_PROCESSING_DESTINATIONS": [
        "/topic/panda.slices",
        "/topic/panda.workers",
        "/topic/fastmon.copy.panda.results.fastprocessing",
    ],
    **backends.broker(os.environ.get(backends.BROKER_ENV)),
}
# Celery in-process: tasks run where they are enqueued, after the commit that enqueues them.
CELERY_TASK_ALWAYS_EAGER = True
