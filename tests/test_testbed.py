"""The testbed config read as the testbed's agents read it, and fastmon's namespace from it:
an explicit setting wins, a file that cannot give one is a clear start-up error when the site
asks for one, never a silent "every namespace"."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from fastmon import testbed
from fastmon.conf import fastmon_settings, namespace_origin
from fastmon.runtime.consumer import Consumer
from fastmon.runtime.startup import ExitCode
from fastmon.testbed import config_path, read_namespace


def without_namespace(**changes: object) -> override_settings:
    """FASTMON without NAMESPACE (the tests' own sets none), with ``changes``."""
    return override_settings(FASTMON={"BROKER_HOSTS": [("127.0.0.1", 1)], **changes})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"testbed-{abs(hash(text))}.toml"
    path.write_text(text)
    return path


def test_the_config_is_found_as_the_testbeds_agents_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_path(None) == tmp_path / "workflows" / "testbed.toml"
    assert config_path("mine.toml") == tmp_path / "workflows" / "mine.toml"  # a bare name
    assert config_path("conf/mine.toml") == tmp_path / "conf" / "mine.toml"
    assert config_path("/etc/testbed.toml") == Path("/etc/testbed.toml")
    monkeypatch.setenv("SWF_TESTBED_CONFIG", "other.toml")
    with without_namespace():
        assert fastmon_settings.TESTBED_CONFIG.endswith("/workflows/other.toml")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[testbed]\nnamespace = "torre1"\n', None),
        ('[testbed]\nnamespace = ""\n', "namespace is not set"),
        ("[testbed]\n", "no \\[testbed\\] namespace"),
        ("[agents.fastmon]\nenabled = true\n", "no \\[testbed\\] namespace"),
        ("[testbed\nnamespace = 1", "invalid TOML"),
        ("[testbed]\nnamespace = 7\n", "namespace is not set"),
    ],
)
def test_the_namespace_or_why_not(tmp_path: Path, text: str, reason: str | None) -> None:
    path = write(tmp_path, text)
    if reason is None:
        assert read_namespace(path) == "torre1"
    else:
        with pytest.raises(testbed.TestbedConfigError, match=reason):
            read_namespace(path)
    with pytest.raises(testbed.TestbedConfigError, match="not found"):
        read_namespace(tmp_path / "absent.toml")


def test_an_explicit_setting_wins_none_included(tmp_path: Path) -> None:
    broken = str(write(tmp_path, "[testbed\n"))
    with without_namespace(NAMESPACE="mine", TESTBED_CONFIG=broken):
        assert namespace_origin() == ("mine", "FASTMON NAMESPACE")
    with without_namespace(NAMESPACE=None, TESTBED_CONFIG=broken):
        assert fastmon_settings.NAMESPACE is None


def test_the_namespace_comes_from_the_config_unless_ignored(tmp_path: Path) -> None:
    path = str(write(tmp_path, '[testbed]\nnamespace = "collab-dec29"\n'))
    with without_namespace(TESTBED_CONFIG=path):
        assert fastmon_settings.NAMESPACE == "collab-dec29"
        assert namespace_origin()[1] == f"testbed config {path}"
    with without_namespace(TESTBED_CONFIG=path, TESTBED_NAMESPACE="ignore"):
        assert fastmon_settings.NAMESPACE is None


def test_no_config_is_every_namespace_unless_required(tmp_path: Path) -> None:
    absent = str(tmp_path / "workflows" / "testbed.toml")
    with without_namespace(TESTBED_CONFIG=absent):
        assert namespace_origin() == (None, f"no NAMESPACE set and no testbed config at {absent}")
    refused = pytest.raises(testbed.TestbedConfigError, match="not found")
    with without_namespace(TESTBED_CONFIG=absent, TESTBED_NAMESPACE="required"), refused:
        namespace_origin()
    refused = pytest.raises(testbed.TestbedConfigError, match="must be one of optional, requ")
    with without_namespace(TESTBED_CONFIG=absent, TESTBED_NAMESPACE="sometimes"), refused:
        namespace_origin()


def test_a_config_that_gives_none_stops_run_fastmon_at_start_and_fails_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = str(write(tmp_path, '[testbed]\nnamespace = ""\n'))
    with without_namespace(TESTBED_CONFIG=empty, SUBSCRIBE_DESTINATIONS=["/topic/t"]):
        with caplog.at_level(logging.ERROR, "fastmon.consumer"):
            assert Consumer().run() == ExitCode.CONFIG
        assert f"namespace is not set in testbed config {empty}" in caplog.text
        with pytest.raises(SystemCheckError, match=r"fastmon\.E003"):
            call_command("check")
