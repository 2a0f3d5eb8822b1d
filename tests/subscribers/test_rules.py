"""Subscribers' rules (pure): what a registration may say and which samples it selects."""

from __future__ import annotations

import pytest
from django.test import override_settings

from fastmon import conf
from fastmon.subscribers.rules import (
    RequestError,
    SampleFacts,
    check_reply_to,
    own_destinations,
    parse_control_request,
    parse_subscription,
    selects,
    share,
    stored_problem,
)
from fastmon.testing.messages import tf_sample_name

NAMES = [tf_sample_name(101993, stf, tf) for stf in range(1, 401) for tf in range(1, 8)]


def facts(name: str = "swf.101993.000001_tf_001.tf", **changes) -> SampleFacts:
    values = {
        "kind": "tf_file_registered",
        "tf_filename": name,
        "run_number": 101993,
        "namespace": "epic",
        "state": "physics",
        "substate": "running",
    }
    return SampleFacts(**{**values, **changes})


def test_the_share_is_stable_and_spread_evenly() -> None:
    shares = [share(name) for name in NAMES]
    assert shares == [share(name) for name in NAMES]
    assert all(0 <= value < 1 for value in shares)
    # 2800 names in ten bins: each within 30% of the mean.
    bins = [0] * 10
    for value in shares:
        bins[int(value * 10)] += 1
    assert all(abs(count - 280) < 84 for count in bins), bins
    # Pinned: the same name must select the same subscribers in every release and process.
    assert share("swf.101993.000001_tf_001.tf") == pytest.approx(0.41510171249076044)


def test_a_larger_fraction_selects_a_superset() -> None:
    tenth = {name for name in NAMES if selects({}, 0.1, facts(name))}
    fifth = {name for name in NAMES if selects({}, 0.2, facts(name))}
    assert tenth < fifth
    assert 0.07 < len(tenth) / len(NAMES) < 0.13
    assert not any(selects({}, 0.0, facts(name)) for name in NAMES)
    assert all(selects({}, 1.0, facts(name)) for name in NAMES)


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        ({}, True),
        ({"run_numbers": [101993, 5]}, True),
        ({"run_numbers": [5]}, False),
        ({"namespaces": ["epic"]}, True),
        ({"namespaces": ["other"]}, False),
        ({"kinds": ["tf_file_registered"]}, True),
        ({"states": ["physics"], "substates": ["running"]}, True),
        ({"states": ["physics"], "substates": ["calib"]}, False),
    ],
)
def test_every_filter_that_is_set_must_match(filters: dict, selected: bool) -> None:
    assert selects(filters, 1.0, facts()) is selected


def test_a_subscription_is_checked_field_by_field() -> None:
    with pytest.raises(RequestError) as refused:
        parse_subscription({
            "name": "bad name!",
            "destination": "/queue/elsewhere",
            "fraction": 1.5,
            "filters": {"kinds": ["stf_gen"], "colour": ["red"]},
        })  # fmt: skip
    assert set(refused.value.errors) == {
        "name", "destination", "fraction", "filters.kinds.0", "filters.colour",
    }  # fmt: skip
    assert "must start with one of: /queue/fastmon." in refused.value.errors["destination"]


def test_fastmons_own_destinations_are_refused() -> None:
    with override_settings(FASTMON={"SUBSCRIBER_DESTINATION_PREFIXES": ["/queue/", "/topic/"]}):
        for own in ["/topic/epictopic", "/queue/fastmon.control"]:
            with pytest.raises(RequestError, match="fastmon's own"):
                parse_subscription({"name": "loop", "destination": own})


# Every destination setting, each somewhere a subscriber or a reply-to could otherwise name.
OWN = {
    "SUBSCRIBE_DESTINATIONS": ["/topic/fastmon.in", "/queue/fastmon.in.shared"],
    "PUBLISH_DESTINATION": "/topic/fastmon.out",
    "FAST_PROCESSING_DESTINATIONS": ["/topic/fastmon.slices"],
    "CONTROL_DESTINATION": "/queue/fastmon.control",
    "ALARM_DESTINATION": "/topic/fastmon.alarms",
}


def test_every_destination_fastmon_uses_is_refused_to_subscribers_and_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each ``*_DESTINATION(S)`` setting, one added later too, under any prefix (a broker may map
    /queue/x and /topic/x onto one address x): never a subscriber's, never a reply-to."""
    monkeypatch.setitem(conf.DEFAULTS, "LATER_DESTINATION", "/queue/fastmon.later")
    with override_settings(FASTMON=OWN):
        own = own_destinations()
        assert own == {
            "/topic/fastmon.in", "/queue/fastmon.in.shared", "/topic/fastmon.out",
            "/topic/fastmon.slices", "/queue/fastmon.control", "/topic/fastmon.alarms",
            "/queue/fastmon.later",
        }  # fmt: skip
        for destination in own:
            name = destination.split("/", 2)[2]
            for prefix in ("/queue/", "/topic/", "/temp-queue/", "/remote-temp-queue/"):
                with pytest.raises(ValueError, match="fastmon's own destinations"):
                    check_reply_to(prefix + name)
                if prefix != "/temp-queue/":  # not a subscriber prefix at all
                    with pytest.raises(RequestError, match="fastmon's own destinations"):
                        parse_subscription({"name": "s", "destination": prefix + name})
        # Their neighbours are anyone's.
        assert check_reply_to("/topic/fastmon.alarms.mine") == "/topic/fastmon.alarms.mine"
        assert parse_subscription({"name": "s", "destination": "/queue/fastmon.alarm"})


def test_filter_lists_are_bounded_all_together() -> None:
    base = {"name": "s", "destination": "/queue/fastmon.s"}
    at_most = {"run_numbers": list(range(600)), "namespaces": [f"n{i}" for i in range(400)]}
    assert len(parse_subscription({**base, "filters": at_most}).filters.run_numbers) == 600
    over = {**at_most, "states": ["physics"]}
    with pytest.raises(RequestError) as refused:
        parse_subscription({**base, "filters": over})
    assert refused.value.errors == {
        "filters": "at most 1000 values in all its lists (SUBSCRIBER_MAX_FILTER_VALUES), not 1001"
    }
    with (
        override_settings(FASTMON={"SUBSCRIBER_MAX_FILTER_VALUES": 2}),
        pytest.raises(RequestError, match="at most 2 values"),
    ):
        parse_subscription({**base, "filters": {"run_numbers": [1, 2, 3]}})


def test_what_was_stored_before_the_rules_is_judged_by_them() -> None:
    with override_settings(FASTMON=OWN):
        assert stored_problem("/queue/fastmon.fp", {"run_numbers": [1]}) is None
        assert "fastmon's own" in stored_problem("/topic/fastmon.alarms", {})
        many = {"run_numbers": list(range(125_000))}
        assert "at most 1000 values" in stored_problem("/queue/fastmon.fp", many)


def test_the_lease_defaults_to_the_setting_and_null_means_never() -> None:
    base = {"name": "s", "destination": "/queue/fastmon.s"}
    with override_settings(FASTMON={"SUBSCRIBER_IDLE_EXPIRY_S": 600.0}):
        assert parse_subscription(base).lease_seconds() == 600.0
        assert parse_subscription({**base, "idle_expiry_s": None}).lease_seconds() is None
        assert parse_subscription({**base, "idle_expiry_s": 5}).lease_seconds() == 5


def test_control_requests_name_their_kind() -> None:
    request = parse_control_request(
        {"msg_type": "subscribe", "name": "s", "destination": "/queue/fastmon.s", "fraction": 0.5}
    )
    assert (request.name, request.fraction) == ("s", 0.5)
    assert parse_control_request({"msg_type": "unsubscribe", "name": "s"}).name == "s"
    with pytest.raises(RequestError, match="must be 'subscribe' or 'unsubscribe'"):
        parse_control_request({"msg_type": "resubscribe", "name": "s"})
    with pytest.raises(RequestError, match="name: this field is required"):
        parse_control_request({"msg_type": "unsubscribe"})


def test_replies_go_to_temporary_queues_or_allowed_destinations() -> None:
    assert check_reply_to("/remote-temp-queue/ID:host-1:1:1") == "/remote-temp-queue/ID:host-1:1:1"
    assert check_reply_to("/queue/fastmon.replies") == "/queue/fastmon.replies"
    with pytest.raises(ValueError, match="not allowed"):
        check_reply_to("/topic/epictopic.copy")


@pytest.mark.parametrize(
    "destination",
    [
        "/queue/fastmon.x,/topic/epictopic",  # ActiveMQ would send to both
        "/queue/fastmon.>",
        "/queue/fastmon.a b",
        "/queue/fastmon." + "x" * 250,
        "/queue/fastmon.",
    ],
)
def test_only_one_plain_destination_name_is_accepted(destination: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_subscription({"name": "s", "destination": destination})
    assert set(refused.value.errors) == {"destination"}
    with pytest.raises(ValueError):
        check_reply_to(destination.replace("/queue/fastmon.", "/temp-queue/"))


def test_fields_the_database_could_not_store_are_refused() -> None:
    with pytest.raises(RequestError) as refused:
        parse_subscription({
            "name": "s", "destination": "/queue/fastmon.s", "idle_expiry_s": 1e12,
            "filters": {"namespaces": ["a\x00"]},
        })  # fmt: skip
    assert set(refused.value.errors) == {"idle_expiry_s", "filters.namespaces.0"}
