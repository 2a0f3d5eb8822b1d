"""Who opens the live websocket, beyond the site's session (its AuthMiddlewareStack):

- an API token, as for the API: a client with no browser session (``fastmon-tail --url
  --token``) sends ``Authorization: Token <key>`` with its handshake;
- the site's SSO header (``WEBSOCKET_REMOTE_USER_HEADER``, swf-monitor's ``X-Remote-User``) on a
  handshake from a trusted proxy (``WEBSOCKET_TRUSTED_PROXIES``), as swf-monitor's own
  middleware trusts it on every request from localhost without a session.

Either replaces the (anonymous) user of the scope; neither is looked at when absent.

And from where: a browser sends its cookies with a websocket handshake from any page, so a
handshake with an ``Origin`` must come from the site itself (``origin_allowed``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.http import is_same_domain

from fastmon.conf import fastmon_settings


class LoginMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = await database_sync_to_async(_user_of)(scope)
        if user is not None:
            scope = {**scope, "user": user}
        return await super().__call__(scope, receive, send)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """The rule Django's CSRF check applies to a POST's ``Origin``: the site's own host (the
    ``Host`` header, or ``X-Forwarded-Host`` where the site sets ``USE_X_FORWARDED_HOST``) or
    one of ``CSRF_TRUSTED_ORIGINS``. A handshake without ``Origin`` is not a browser's: no
    cookies ride on it unasked."""
    headers = _headers(scope)
    origin = headers.get("origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc.lower()
    forwarded = headers.get("x-forwarded-host") if settings.USE_X_FORWARDED_HOST else None
    host = (forwarded or headers.get("host", "")).split(",")[0].strip().lower()
    if netloc and netloc == host:
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if origin == trusted:
            return True
        scheme, _, pattern = trusted.partition("://*")
        if pattern and origin.startswith(f"{scheme}://") and is_same_domain(netloc, pattern):
            return True
    return False


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }


def _user_of(scope: dict[str, Any]) -> Any:
    headers = _headers(scope)
    kind, _, key = headers.get("authorization", "").partition(" ")
    if kind.lower() == "token" and key.strip():
        return _token_user(key.strip())
    header = fastmon_settings.WEBSOCKET_REMOTE_USER_HEADER
    client = (scope.get("client") or ("", 0))[0]
    if header and client in fastmon_settings.WEBSOCKET_TRUSTED_PROXIES:
        name = headers.get(header.lower(), "").strip()
        if name:
            user, _ = get_user_model().objects.get_or_create(username=name)
            return user if user.is_active else None
    return None


def _token_user(key: str) -> Any:
    """The API's own check of a token (DRF's), when the site has tokens."""
    if not apps.is_installed("rest_framework.authtoken"):
        return None
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    try:
        return TokenAuthentication().authenticate_credentials(key)[0]
    except AuthenticationFailed:
        return None
