"""The host-shaped test site: swf-monitor as production serves it, with fastmon wired as the
README's "Adding fastmon" says. Full-path requests under FORCE_SCRIPT_NAME (Apache proxies
``/swf-monitor/...`` whole), SSO by ``X-Remote-User``, models of its own named as fastmon's,
its own base template, no Celery (run_fastmon samples)."""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import FASTMON, INSTALLED_APPS, MIDDLEWARE

FORCE_SCRIPT_NAME = "/swf-monitor"
STATIC_URL = "/swf-monitor/static/"
ROOT_URLCONF = "tests.host.urls"
ASGI_APPLICATION = "tests.host.asgi.application"
INSTALLED_APPS = [*INSTALLED_APPS, "tests.host"]
MIDDLEWARE = [*MIDDLEWARE, "tests.host.middleware.ProxyRemoteUser"]
LOGIN_URL = "/swf-monitor/accounts/login/"
CELERY_BROKER_URL = None  # swf-monitor has no Celery app
FASTMON = {
    **FASTMON,
    "BASE_TEMPLATE": "base.html",
    "PAGES_REQUIRE_LOGIN": True,
    "WEBSOCKET_REMOTE_USER_HEADER": "X-Remote-User",
    "HEALTH_REQUIRE_CONSUMER": True,
}
# As in the test site: subprocesses get their changes through the environment, applied last.
FASTMON.update(json.loads(os.environ.get("FASTMON_TEST_SETTINGS", "{}")))
