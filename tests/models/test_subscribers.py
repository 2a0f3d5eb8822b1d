"""Subscribers in PostgreSQL: the rules the database itself keeps."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from fastmon.models import Subscriber

pytestmark = pytest.mark.django_db


def test_a_subscriber_fraction_stays_between_0_and_1() -> None:
    with pytest.raises(IntegrityError, match="fastmon_sub_fraction_0_1"):
        Subscriber.objects.create(name="s", destination="/queue/s", fraction=1.5)
