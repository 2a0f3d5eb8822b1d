"""The live pages as HTML: what they show, escaping, the script prefix, the login rule."""

from __future__ import annotations

import json
import re

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import set_script_prefix

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import LiveEvent, Subscriber
from fastmon.sampling.service import sample_stfs
from fastmon.testing.messages import example, stf_name, tf_sample_name

pytestmark = pytest.mark.django_db
RUN = 100400
EVIL = 'swf.100400.<img src=x onerror="alert(1)">.stf'  # names hold no /


def sampled(names: list[str]) -> None:
    for name in names:
        number = name.split(".")[2]
        sequence = int(number) if number.isdigit() else None
        ingest_message(
            json.dumps(example("stf_ready", run_id=RUN, sequence=sequence, filename=name))
        )
    sample_stfs(names)


@pytest.fixture
def stfs() -> list[str]:
    names = [stf_name(RUN, n) for n in (1, 2, 4)]  # 3 is missing
    sampled(names)
    return names


def test_the_dashboard_shows_the_current_run_and_its_samples(client: Client, stfs) -> None:
    page = client.get("/fastmon/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="/fastmon/runs/{RUN}/"' in html
    assert tf_sample_name(RUN, 1, 1) in html
    # The sequence the HTML reflects: the websocket replays what comes after it.
    newest = LiveEvent.objects.order_by("-id").first().pk
    assert f'data-newest-sequence="{newest}"' in html
    chart = json.loads(re.search(r'id="chart-data"[^>]*>(.*?)</script>', html).group(1))
    assert len(chart["samples"]) == 21 and len(chart["stf_received"]) == 3


def test_the_run_page_shows_completeness_and_each_stfs_samples(client: Client, stfs) -> None:
    html = client.get(f"/fastmon/runs/{RUN}/").content.decode()
    assert re.search(r'id="gaps">\s*3\s*<', html)  # sequence 3 never came
    rows = re.findall(r'<tr data-stf="([^"]+)">', html)
    assert rows == list(reversed(stfs))
    assert html.count('class="fastmon-ranges-tf"') == 21  # 7 samples drawn over each STF
    assert client.get("/fastmon/runs/1/").status_code == 404


def test_stf_dead_letter_and_subscriber_pages(client: Client, stfs) -> None:
    assert tf_sample_name(RUN, 2, 7) in client.get(f"/fastmon/stf/{stfs[1]}/").content.decode()
    ingest_message(b"{not json")
    assert "<code>not_json</code>" in client.get("/fastmon/dead-letters/").content.decode()
    Subscriber.objects.create(name="fp", destination="/queue/fastmon.fp",
                              filters={"run_numbers": [RUN]}, delivered_count=12)  # fmt: skip
    html = client.get("/fastmon/subscribers/").content.decode()
    assert re.search(rf"run_numbers: {RUN}</td>.*never lapses</td>\s*<td>12</td>", html, re.S)


def test_message_strings_are_escaped(client: Client) -> None:
    sampled([EVIL])
    for url in ("/fastmon/", f"/fastmon/runs/{RUN}/"):
        html = client.get(url).content.decode()
        assert '<img src=x onerror="alert(1)">' not in html
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_every_link_and_the_websocket_honour_the_script_prefix(client: Client, stfs) -> None:
    # What the site's handler does for a request under /swf-monitor (the test client does not).
    # STATIC_URL is relative, as Django's default: it is read again under the prefix.
    set_script_prefix("/swf-monitor/")
    try:
        with override_settings(STATIC_URL="static/"):
            html = client.get("/fastmon/").content.decode()
    finally:
        set_script_prefix("/")
    assert 'data-websocket-path="/swf-monitor/fastmon/ws/live/"' in html
    links = re.findall(r'(?:href|src)="([^"#]+)"', html)
    assert links and all(link.startswith("/swf-monitor/") for link in links), links


def test_pages_may_require_a_login(client: Client) -> None:
    with override_settings(FASTMON={**settings.FASTMON, "PAGES_REQUIRE_LOGIN": True}):
        page = client.get("/fastmon/")
        assert page.status_code == 302 and "next=/fastmon/" in page["Location"]
        client.force_login(User.objects.create_user("shifter"))
        assert client.get("/fastmon/").status_code == 200


def test_pages_sit_inside_the_sites_base_template(client: Client, settings, tmp_path) -> None:
    (tmp_path / "site_base.html").write_text(
        "<header>swf-monitor</header><title>{% block title %}{% endblock %}</title>"
        "{% block content %}{% endblock %}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    settings.FASTMON = {**settings.FASTMON, "BASE_TEMPLATE": "site_base.html"}
    html = client.get("/fastmon/").content.decode()
    assert html.startswith("<header>swf-monitor</header><title>fastmon · dashboard</title>")
    assert 'id="tf-samples"' in html
