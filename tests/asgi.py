"""The test site's ASGI application, wired as a host site wires fastmon (README, "Live pages")."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from fastmon.testing.site import asgi_application

application = asgi_application()
