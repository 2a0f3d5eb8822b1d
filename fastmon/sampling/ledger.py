"""The policy ledger: which stored policy applies to an STF, and new versions saved beside the
old ones (a sample names the version that chose it)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from fastmon.models import SamplingPolicy
from fastmon.sampling.policy import Policy


def current_policy(namespace: str, run_type: str) -> SamplingPolicy | None:
    """The newest version of the most specific active policy for this namespace and run type
    (both set, then namespace, then run type, then neither). With no policy at all, the
    testbed's is created as version 1."""
    if not SamplingPolicy.objects.exists():
        SamplingPolicy.objects.get_or_create(
            name="testbed", version=1,
            defaults={"description": "The testbed's algorithm, made deterministic."},
        )  # fmt: skip
    # The newest version of each name decides, even when an older one matched better.
    newest: dict[str, SamplingPolicy] = {}
    for row in SamplingPolicy.objects.order_by("name", "-version"):
        newest.setdefault(row.name, row)
    candidates = [
        row
        for row in newest.values()
        if row.active and row.namespace in {namespace, ""} and row.run_type in {run_type, ""}
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (bool(r.namespace), bool(r.run_type), r.name))


def save_policy_version(policy: SamplingPolicy, created_by: str = "") -> SamplingPolicy:
    """Save a policy as a new version: earlier versions stay, as the ledger of what chose past
    samples."""
    check_params(policy.params)
    policy.full_clean(exclude=["version"])
    with transaction.atomic():
        latest = (
            SamplingPolicy.objects.select_for_update()
            .filter(name=policy.name)
            .aggregate(version=Max("version"))["version"]
        )
        policy.pk = None
        policy.version = (latest or 0) + 1
        policy.created_by = created_by
        policy.save()
    return policy


def policy_of(row: SamplingPolicy) -> Policy:
    """The policy a stored version describes."""
    return Policy.from_params(row.params)


def check_params(params: Any) -> None:
    """Refuse parameters no policy can be made of, naming the field (the admin, the API and
    ``save_policy_version`` all ask here)."""
    try:
        Policy.from_params(params)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"params": str(exc)}) from exc
