"""System checks: a typo in ``FASTMON`` should be caught at start, not by a silent default."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from fastmon.conf import DEFAULTS, fastmon_settings, namespace_origin
from fastmon.content.detectors import DetectorMap
from fastmon.testbed import TestbedConfigError

NAMESPACE_HINT = (
    "Set [testbed] namespace in that file, or FASTMON['NAMESPACE'], or "
    "FASTMON['TESTBED_NAMESPACE'] = 'ignore' to serve every namespace."
)


@register()
def check_fastmon_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    user_settings = getattr(settings, "FASTMON", {})
    if not isinstance(user_settings, dict):
        return [Error("settings.FASTMON must be a dict.", id="fastmon.E001")]
    problems: list[Warning | Error] = []
    try:
        DetectorMap.from_setting(fastmon_settings.DETECTORS)
    except ValueError as exc:
        problems.append(Error(f"FASTMON['DETECTORS']: {exc}", id="fastmon.E002"))
    try:
        namespace_origin()
    except TestbedConfigError as exc:
        problems.append(Error(f"the namespace: {exc}", id="fastmon.E003", hint=NAMESPACE_HINT))
    return problems + [
        Warning(
            f"Unknown key {key!r} in settings.FASTMON: it has no effect.",
            hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
            id="fastmon.W001",
        )
        for key in sorted(set(user_settings) - set(DEFAULTS))
    ]
