"""One window for every time a message gives, body or header: a header outside it, or not a
time at all, is dropped and the log says so."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from fastmon.inbound.messages import InboundMessage
from fastmon.inbound.times import header_time, sane_time


def test_the_window_holds_this_century_and_refuses_the_calendars_ends() -> None:
    for inside in (datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, tzinfo=UTC)):
        assert sane_time(inside) is inside
    for outside in (datetime(1, 1, 1), datetime(1999, 12, 31), datetime(9999, 12, 31)):
        with pytest.raises(ValueError, match="out of range"):
            sane_time(outside)


@pytest.mark.parametrize(
    "stamp",
    ["-62135596800000", "253402300799999", "0", "946684799999", "4102444800000", "9" * 30,
     "abc", "1.5e3", "", " 1796616035485", "١٧٩٦٦١٦٠٣٥٤٨٥"],
)  # fmt: skip
def test_a_broker_timestamp_outside_the_window_or_not_a_number_is_dropped_and_said(
    stamp: str, caplog: pytest.LogCaptureFixture
) -> None:
    message = InboundMessage(b"{}", {"destination": "/topic/epictopic", "timestamp": stamp})
    with caplog.at_level(logging.WARNING, "fastmon.ingest"):
        assert message.broker_at is None
        assert message.broker_at is None  # read again: said once
    [record] = caplog.records
    assert f"header timestamp={stamp!r}" in record.getMessage()
    assert "/topic/epictopic" in record.getMessage()


def test_a_broker_timestamp_inside_the_window_is_read_in_milliseconds() -> None:
    headers = {"timestamp": "1796616035485"}
    assert header_time(headers, "timestamp") == datetime.fromtimestamp(1796616035.485, UTC)
    assert header_time({}, "timestamp") is None
