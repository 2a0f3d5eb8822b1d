"""The testbed's own configuration, ``testbed.toml``, read as its agents read it (swf-common-lib's
base agent): the file ``SWF_TESTBED_CONFIG`` names (a bare file name lies in ``workflows/``),
else ``workflows/testbed.toml``, relative to the working directory (supervisord starts the
testbed's agents in the swf-testbed checkout); its ``[testbed] namespace`` is the namespace every
agent of that testbed stamps on what it sends. So an operator sets the namespace once."""

from __future__ import annotations

import tomllib
from pathlib import Path

DEFAULT_CONFIG = "workflows/testbed.toml"


class TestbedConfigError(ValueError):
    """The testbed config cannot give a namespace: the message says which file and why."""


def config_path(named: str | None) -> Path:
    """The file the testbed's agents read for ``SWF_TESTBED_CONFIG`` = ``named``, made absolute
    against the working directory."""
    if not named:
        return Path(DEFAULT_CONFIG).absolute()
    if "/" not in named:
        return Path("workflows", named).absolute()
    return Path(named).absolute()


def read_namespace(path: Path) -> str:
    """``[testbed] namespace`` of the file at ``path``; refused with the reason the testbed's
    agents give. ``fastmon.conf`` reads it once per process, as an agent reads it at start."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TestbedConfigError(f"testbed config not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TestbedConfigError(f"testbed config {path} cannot be read: {exc}") from None
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TestbedConfigError(f"invalid TOML in testbed config {path}: {exc}") from None
    section = config.get("testbed")
    if not isinstance(section, dict) or "namespace" not in section:
        raise TestbedConfigError(f"no [testbed] namespace in testbed config {path}")
    namespace = section["namespace"]
    if not isinstance(namespace, str) or not namespace.strip():
        raise TestbedConfigError(f"[testbed] namespace is not set in testbed config {path}")
    return namespace.strip()
