"""Who may read fastmon's pages and live events: one rule for the views and the websocket."""

from __future__ import annotations

from typing import Any

from fastmon.conf import fastmon_settings


def may_read(user: Any) -> bool:
    """The pages' and the websocket's rule: anyone, unless PAGES_REQUIRE_LOGIN."""
    if not fastmon_settings.PAGES_REQUIRE_LOGIN:
        return True
    return bool(user is not None and user.is_authenticated)
