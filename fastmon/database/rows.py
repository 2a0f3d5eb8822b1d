"""How a message's values meet a stored row: read in the site's time zone, and written only
where they differ, so a redelivery writes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone


def aware(value: datetime | None) -> datetime | None:
    """Testbed agents send naive local times; read them in the site's time zone."""
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value, timezone.get_default_timezone())


def set_changed(instance: models.Model, values: Mapping[str, Any]) -> list[str]:
    """Set the values that differ and return their names."""
    changed = [name for name, value in values.items() if getattr(instance, name) != value]
    for name in changed:
        setattr(instance, name, values[name])
    return changed
