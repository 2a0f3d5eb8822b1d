"""The websocket route a site adds to its ASGI application (see README, "Live pages")::

URLRouter(fastmon.routing.websocket_urlpatterns)  # inside AuthMiddlewareStack
"""

from django.urls import path

from fastmon.conf import fastmon_settings
from fastmon.live.consumer import LiveEventsConsumer

websocket_urlpatterns = [
    path(fastmon_settings.WEBSOCKET_PATH, LiveEventsConsumer.as_asgi(), name="fastmon-live"),
]
