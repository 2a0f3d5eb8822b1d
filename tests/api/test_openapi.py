"""The API's OpenAPI schema: it covers every resource, a property-based run of the API against
it (schemathesis) finds no request that makes a server error, and inside a host site its names
stay apart from the host's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from fastmon.testing.announcing import sampled_run

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
API = "/fastmon/api"


@pytest.fixture
def operations(client) -> list:
    document = client.get(f"{API}/schema/", {"format": "json"}).json()
    return [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]


@pytest.fixture
def api() -> APIClient:
    """A logged-in client: Django's test client keeps the test's database transaction."""
    sampled_run(2)  # rows for the reads to find
    client = APIClient()
    client.force_authenticate(User.objects.create_user("fuzzer"))
    return client


def test_the_schema_covers_every_resource(operations) -> None:
    paths = {operation.path for operation in operations}
    assert {
        "/fastmon-files/",
        "/runs/{run_number}/statistics/",
        "/dead-letters/{id}/replay/",
        "/events/",
        "/subscribers/",
        "/sampling-policies/",
        "/stf-files/",
    } <= paths


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_request_makes_a_server_error(operations, api, data) -> None:
    operation = data.draw(st.sampled_from(operations))
    case = data.draw(operation.as_strategy())
    body = case.body if isinstance(case.body, dict | list) else None
    response = api.generic(
        case.method,
        f"{API}{case.formatted_path}?{urlencode(case.query or {}, doseq=True)}",
        data=json.dumps(body) if body is not None else "",
        content_type="application/json",
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
        f"{response.status_code} {response.content[:500]!r}"
    )


def test_the_hosts_schema_builds_without_a_name_collision() -> None:
    """drf-spectacular's warnings (identical component names, enum collisions) are errors."""
    built = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
         "--settings", "tests.host_settings"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert "FastmonFastMonFile:" in built.stdout
    assert "\n    FastMonFile:" in built.stdout  # the host's own, untouched
