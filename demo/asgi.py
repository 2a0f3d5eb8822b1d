"""The demo site's ASGI application: pages, API and static files over HTTP, fastmon's live
websocket, as a host site wires them (the demo has no proxy: it serves its static files)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from fastmon.testing.site import asgi_application

application = asgi_application()
