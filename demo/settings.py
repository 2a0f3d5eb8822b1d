"""Settings of the demo site: the same fastmon, on backends that need nothing installed."""

import os
from pathlib import Path

from fastmon.testing.site import (  # noqa: F401
    INSTALLED_APPS,
    MIDDLEWARE,
    REST_FRAMEWORK,
    SPECTACULAR_SETTINGS,
    TEMPLATES,
)

DATA_DIR = Path(os.environ.get("FASTMON_DEMO_DIR", Path.cwd() / ".fastmon-demo"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "fastmon-demo-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

ROOT_URLCONF = "demo.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "fastmon.sqlite3"}
}
STATIC_URL = "static/"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"fastmon": {"handlers": ["console"], "level": "WARNING"}},
}
FASTMON = {"NAMESPACE": "epic-fastmon"}
# Celery in-process: tasks run where they are enqueued, after the commit that enqueues them.
CELERY_TASK_ALWAYS_EAGER = True
