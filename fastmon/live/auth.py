"""Who opens the live websocket, beyond the site's session (its AuthMiddlewareStack):

- an API token, as for the API: a client with no browser session (``fastmon-tail --url
  --token``) sends ``Authorization: Token <key>`` with its handshake;
- the site's SSO header (``WEBSOCKET_REMOTE_USER_HEADER``, swf-monitor's ``X-Remote-User``) on a
  handshake from a trusted proxy (``WEBSOCKET_TRUSTED_PROXIES``), as swf-monitor's own
  middleware trusts it on every request from localhost without a session.

Either replaces the (anonymous) user of the scope; neither is looked at when absent."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.apps import apps
from django.contrib.auth import get_user_model

from fastmon.conf import fastmon_settings


class LoginMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = await database_sync_to_async(_user_of)(scope)
        if user is not None:
            scope = {**scope, "user": user}
        return await super().__call__(scope, receive, send)


def _user_of(scope: dict[str, Any]) -> Any:
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
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
    if not apps.is_installed("rest_framework.authtoken"):
        return None
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token and token.user.is_active else None
