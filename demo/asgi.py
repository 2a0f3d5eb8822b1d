"""The demo site's ASGI application: pages, API and static files over HTTP, fastmon's live
websocket, as a host site wires them."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

# Static files served by the application itself, as runserver does: the demo has no proxy.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

import fastmon.routing  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AuthMiddlewareStack(URLRouter(fastmon.routing.websocket_urlpatterns)),
})  # fmt: skip
