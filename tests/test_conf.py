"""Settings: defaults, the testbed's environment variables, override_settings."""

from __future__ import annotations

import pytest
from django.test import override_settings

from fastmon.conf import fastmon_settings


@override_settings(FASTMON={})
def test_defaults_follow_the_testbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["ACTIVEMQ_HOST", "ACTIVEMQ_PORT", "ACTIVEMQ_USE_SSL", "SWF_MONITOR_URL"]:
        monkeypatch.delenv(name, raising=False)
    assert fastmon_settings.BROKER_HOSTS == [("localhost", 61613)]
    assert fastmon_settings.BROKER_USE_SSL is False
    assert fastmon_settings.SWF_MONITOR_URL is None
    assert fastmon_settings.BROKER_HEARTBEATS == (30000, 30000)
    assert fastmon_settings.SUBSCRIBE_DESTINATIONS == ["/topic/epictopic"]
    assert fastmon_settings.DEFAULT_TF_COUNT == 1000
    assert fastmon_settings.AGENT_NAME.startswith("fastmon-agent-")

    monkeypatch.setenv("ACTIVEMQ_HOST", "pandaserver02.sdcc.bnl.gov")
    monkeypatch.setenv("ACTIVEMQ_PORT", "61612")
    monkeypatch.setenv("ACTIVEMQ_USER", "epic")
    monkeypatch.setenv("ACTIVEMQ_PASSWORD", "secret")
    monkeypatch.setenv("ACTIVEMQ_USE_SSL", "True")
    monkeypatch.setenv("ACTIVEMQ_SSL_CA_CERTS", "/etc/ssl/ca.pem")
    monkeypatch.setenv("SWF_MONITOR_URL", "https://monitor.example/swf-monitor")
    monkeypatch.setenv("SWF_API_TOKEN", "tok")
    assert fastmon_settings.BROKER_HOSTS == [("pandaserver02.sdcc.bnl.gov", 61612)]
    assert (fastmon_settings.BROKER_USER, fastmon_settings.BROKER_PASSWORD) == ("epic", "secret")
    assert fastmon_settings.BROKER_USE_SSL is True
    assert fastmon_settings.BROKER_SSL_CA_CERTS == "/etc/ssl/ca.pem"
    assert fastmon_settings.SWF_MONITOR_URL == "https://monitor.example/swf-monitor"
    assert fastmon_settings.SWF_API_TOKEN == "tok"


@override_settings(FASTMON={}, ACTIVEMQ_HOST="from-settings", ACTIVEMQ_PORT=61612,
                   SWF_API_TOKEN="settings-token")  # fmt: skip
def test_a_sites_own_settings_of_the_testbed_names_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """swf-monitor reads ACTIVEMQ_* and SWF_API_TOKEN from its .env into its settings."""
    monkeypatch.setenv("ACTIVEMQ_HOST", "from-env")
    monkeypatch.setenv("ACTIVEMQ_USER", "env-user")
    assert fastmon_settings.BROKER_HOSTS == [("from-settings", 61612)]
    assert fastmon_settings.BROKER_USER == "env-user"  # not in the settings: the environment
    assert fastmon_settings.SWF_API_TOKEN == "settings-token"


def test_the_fastmon_dict_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVEMQ_HOST", "from-env")
    with override_settings(FASTMON={"BROKER_HOSTS": [("a", 1), ("b", 2)], "NAMESPACE": "ns"}):
        assert fastmon_settings.BROKER_HOSTS == [("a", 1), ("b", 2)]
        assert fastmon_settings.NAMESPACE == "ns"
    with override_settings(FASTMON={}):
        assert fastmon_settings.NAMESPACE is None


def test_an_unknown_setting_name_is_an_error() -> None:
    with pytest.raises(AttributeError, match="NAMESPCE"):
        fastmon_settings.NAMESPCE  # noqa: B018
