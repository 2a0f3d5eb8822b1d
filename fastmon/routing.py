"""The websocket route a site adds to its ASGI application (README, "Adding fastmon")::

URLRouter(fastmon.routing.websocket_urlpatterns)  # inside AuthMiddlewareStack

A site served under a prefix (swf-monitor's ``/swf-monitor``) may get the prefix stripped (a
proxy that strips it and an ASGI server run with ``--root-path``, which Channels removes) or
the full path (Apache's ``ProxyPass /swf-monitor http://127.0.0.1:8001/swf-monitor`` with
``FORCE_SCRIPT_NAME``): the route answers both.
"""

from django.conf import settings
from django.urls import URLPattern, path

from fastmon.conf import fastmon_settings
from fastmon.live.auth import LoginMiddleware
from fastmon.live.socket import LiveEventsConsumer


def _websocket_paths() -> list[str]:
    """The websocket's path below the site root, and below FORCE_SCRIPT_NAME when one is set."""
    paths = [fastmon_settings.WEBSOCKET_PATH]
    script_name = (getattr(settings, "FORCE_SCRIPT_NAME", None) or "").strip("/")
    if script_name:
        paths.append(f"{script_name}/{fastmon_settings.WEBSOCKET_PATH}")
    return paths


# A browser logs in with its session (the site's AuthMiddlewareStack) or the site's SSO header,
# a script with a token.
_live = LoginMiddleware(LiveEventsConsumer.as_asgi())

websocket_urlpatterns: list[URLPattern] = [
    path(route, _live, name="fastmon-live") for route in _websocket_paths()
]
