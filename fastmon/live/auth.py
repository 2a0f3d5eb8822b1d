"""Token login for the live websocket, as for the API: a client with no browser session
(``fastmon-tail --url --token``) sends ``Authorization: Token <key>`` with its handshake. Inside
the site's AuthMiddlewareStack; a valid token replaces its (anonymous) user."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.apps import apps


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = _token_key(scope)
        if key:
            user = await database_sync_to_async(_user_of)(key)
            if user is not None:
                scope = {**scope, "user": user}
        return await super().__call__(scope, receive, send)


def _token_key(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            kind, _, key = value.decode("latin-1").partition(" ")
            if kind.lower() == "token":
                return key.strip()
    return ""


def _user_of(key: str) -> Any:
    if not apps.is_installed("rest_framework.authtoken"):
        return None
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token and token.user.is_active else None
