"""The test site's ASGI application, wired as a host site wires fastmon's live pages."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

# Static files served by the application itself, as runserver does (a site has its own way).
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

import fastmon.routing  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AuthMiddlewareStack(URLRouter(fastmon.routing.websocket_urlpatterns)),
})  # fmt: skip
