"""The live pages in a real headless Chromium (Debian's, driven by Playwright), fed by
announcements published to the real broker and ingested by run_fastmon: the dashboard fills
live, catches up after its server went away, and shows hostile file names as text; a run's
quality, alarms and fast processing follow live. Screenshots go to test-artifacts/ (the run page's
detector panels: test_views_content_browser)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import Run, SamplingPolicy, StfFile, TfSample
from fastmon.sampling.ledger import save_policy_version
from fastmon.sampling.service import sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.browser import serve, shot
from fastmon.testing.messages import (
    EXAMPLE_RUN,
    example,
    slice_body,
    slice_result_body,
    stf_example,
    stf_name,
    tf_sample_name,
)
from fastmon.testing.network import free_port
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RUN = 100500
StartProcess = Callable[..., ServiceProcess]
Publish = Callable[[str, Iterable[str]], None]


@pytest.fixture
def site(start_process: StartProcess, unique_topic: str, publish: Publish) -> Iterator[dict]:
    """The test site served by uvicorn, and run_fastmon (sampling in a Celery worker) reading
    ``unique_topic``."""
    port = free_port()
    server_argv = ["-m", "uvicorn", "tests.asgi:application", "--host", "127.0.0.1",
                   "--port", str(port)]  # fmt: skip
    changes = {"SUBSCRIBE_DESTINATIONS": [unique_topic],
               "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    server = start_process({}, command="uvicorn", argv=server_argv)
    consumer = start_process(changes)
    worker = start_process({}, command="celery", argv=[
        "-m", "celery", "-A", "tests", "worker", "--loglevel", "info", "--concurrency", "1",
        "--without-gossip",
        "--without-mingle", "--without-heartbeat"])  # fmt: skip
    server.wait_for_log("Uvicorn running")
    consumer.wait_for_log("subscribed to")
    worker.wait_for_log("ready.")

    def announce(*names: str) -> None:
        bodies = [json.dumps(example("stf_ready", run_id=RUN, filename=name)) for name in names]
        publish(unique_topic, bodies)
        wait_until(lambda: StfFile.objects.filter(stf_filename__in=names, status="sampled")
                   .count() == len(names), 30, f"{names} sampled")  # fmt: skip

    def restart_server() -> ServiceProcess:
        server.kill_all()
        return start_process({}, command="uvicorn", argv=server_argv)

    yield {"url": f"http://127.0.0.1:{port}/fastmon/", "announce": announce,
           "server": server, "restart_server": restart_server}  # fmt: skip


def sample_rows(page) -> list[str]:
    return page.locator("#tf-samples tbody tr td:first-child").all_inner_texts()


def test_the_dashboard_fills_live_and_catches_up_after_a_disconnect(browser, site) -> None:
    page = browser.new_page()
    page.goto(site["url"])
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    assert page.locator("#tf-samples tbody tr").count() == 0

    site["announce"](stf_name(RUN, 1), stf_name(RUN, 2))
    page.wait_for_function("document.querySelectorAll('#tf-samples tbody tr').length == 14",
                           timeout=10_000)  # fmt: skip
    assert tf_sample_name(RUN, 2, 7) in sample_rows(page)
    assert page.locator("#current-run a").inner_text() == str(RUN)
    assert page.locator("#chart-tf-sizes canvas").count() == 1  # uPlot drew the chart
    shot(page, "dashboard-live")

    # The server goes away; announcements keep coming and are stored meanwhile.
    server = site["restart_server"]()
    site["announce"](stf_name(RUN, 3))
    server.wait_for_log("Uvicorn running")
    page.wait_for_function("document.querySelectorAll('#tf-samples tbody tr').length == 21",
                           timeout=20_000)  # fmt: skip
    assert tf_sample_name(RUN, 3, 1) in sample_rows(page)
    assert page.evaluate("window.fastmonLive.reconnects") >= 1
    assert len(set(sample_rows(page))) == 21  # nothing twice
    shot(page, "dashboard-after-reconnect")


def test_the_stf_rate_card_counts_on_the_servers_clock(browser, site) -> None:
    """A shifter's clock a minute ahead: the card still shows what the chart shows (the mean of
    its last two complete 5-s bins), not an empty window of the future."""
    page = browser.new_page()
    page.clock.set_system_time(datetime.now(UTC) + timedelta(seconds=60))
    page.goto(site["url"])
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    site["announce"](*[stf_name(RUN, n) for n in range(1, 11)])
    # 10 STFs within a second or two: 2 /s over one 5-s bin, 1.0 /s over the card's two.
    page.wait_for_function("document.getElementById('stf-rate').textContent === '1.0'",
                           timeout=15_000)  # fmt: skip


def test_a_hostile_file_name_renders_as_text(browser, site) -> None:
    evil = f'swf.{RUN}.<img src=x onerror="window.pwned=1">.stf'  # names hold no /
    page = browser.new_page()
    page.goto(site["url"])
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    site["announce"](evil)
    page.wait_for_function("document.querySelectorAll('#tf-samples tbody tr').length == 7",
                           timeout=10_000)  # fmt: skip
    assert page.locator("#tf-samples tbody tr td:nth-child(2)").first.inner_text() == evil
    page.goto(f"{site['url']}runs/{RUN}/")  # and server-rendered
    assert evil in page.locator("#stfs").inner_text()
    assert page.evaluate("window.pwned") is None
    shot(page, "run-page-hostile-name")


def test_the_dashboard_goes_live_inside_the_host_under_its_prefix(
    browser, start_process: StartProcess, unique_topic: str, publish: Publish
) -> None:
    """swf-monitor's shape: full-path requests under /swf-monitor, SSO by X-Remote-User, its
    base template, and run_fastmon sampling (no Celery)."""
    port = free_port()
    host = "tests.host_settings"
    server = start_process({}, command="uvicorn", settings_module=host, argv=[
        "-m", "uvicorn", "tests.host.asgi:application", "--host", "127.0.0.1",
        "--port", str(port)])  # fmt: skip
    changes = {"SUBSCRIBE_DESTINATIONS": [unique_topic],
               "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    consumer = start_process(changes, settings_module=host)
    server.wait_for_log("Uvicorn running")
    consumer.wait_for_log("subscribed to")

    page = browser.new_context(extra_http_headers={"X-Remote-User": "alice"}).new_page()
    page.goto(f"http://127.0.0.1:{port}/swf-monitor/fastmon/")
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    assert page.locator("#host-user").inner_text() == "alice"

    body = json.dumps(example("stf_ready", run_id=RUN, filename=stf_name(RUN, 1)))
    publish(unique_topic, [body])
    page.wait_for_function("document.querySelectorAll('#tf-samples tbody tr').length == 7",
                           timeout=20_000)  # fmt: skip
    assert tf_sample_name(RUN, 1, 7) in sample_rows(page)
    assert page.locator("#chart-tf-sizes canvas").count() == 1  # the chart library loaded
    shot(page, "host-dashboard-live")


def test_the_run_page_follows_fast_processing_live(
    browser, start_process: StartProcess, unique_topic: str, publish: Publish
) -> None:
    """Slices and their results (read from the broker's copy of the results queue) move the
    run page's fast-processing figures without a reload."""
    port = serve(start_process)
    copy = "/topic/fastmon.copy.panda.results.fastprocessing"
    slices = f"{unique_topic}.slices"
    consumer = start_process({
        "SUBSCRIBE_DESTINATIONS": [unique_topic], "FAST_PROCESSING_DESTINATIONS": [slices, copy],
        "DURABLE_SUBSCRIPTION": False, "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}",
    })  # fmt: skip
    consumer.wait_for_log(f"subscribed to {copy}")
    publish(slices, [slice_body(n) for n in range(6)])
    wait_until(lambda: Run.objects.filter(run_number=EXAMPLE_RUN).exists(), 20, "the run")

    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{EXAMPLE_RUN}/")
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    page.wait_for_function("document.getElementById('slices-total').textContent === '6'",
                           timeout=10_000)  # fmt: skip
    dashboard = browser.new_page()
    dashboard.goto(f"http://127.0.0.1:{port}/fastmon/")
    dashboard.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    results = [slice_result_body(n, state="failed" if n == 5 else "done", seconds=10 + n)
               for n in range(6)]  # fmt: skip
    publish("/queue/panda.results.fastprocessing", results)
    page.wait_for_function("document.getElementById('slices-done').textContent === '5'",
                           timeout=20_000)  # fmt: skip
    assert page.locator("#slices-failed").inner_text() == "1"
    assert page.locator("#slices-queued").inner_text() == "0"
    assert page.locator("#slices-seconds").inner_text() == "12.0 s / 13.8 s"
    shot(page, "run-fast-processing-live")
    dashboard.wait_for_function("document.getElementById('slices-done').textContent === '5'",
                                timeout=10_000)  # fmt: skip
    assert dashboard.locator("#slices-total").inner_text() == "6"


def test_run_quality_goes_bad_live_and_the_run_page_draws_its_flags(
    browser, start_process: StartProcess, unique_topic: str, publish: Publish
) -> None:
    """A gap in the STF sequence turns the dashboard's quality card bad without a reload; the
    run page draws each check's flags as a timeline."""
    run = 100510
    port = serve(start_process)
    consumer = start_process({
        "SUBSCRIBE_DESTINATIONS": [unique_topic], "SAMPLING_ENABLED": False, "CHECK_GRACE_S": 0,
        "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}",
    })  # fmt: skip
    consumer.wait_for_log("subscribed to")

    def send(*bodies: dict) -> None:
        publish(unique_topic, [json.dumps(b) for b in bodies])

    def stf(n: int) -> dict:
        return stf_example("stf_gen", run, n)

    send(example("run_imminent", run_id=run), example("start_run", run_id=run), stf(1), stf(2))
    wait_until(lambda: StfFile.objects.filter(run__run_number=run).count() == 2, 20, "2 STFs")
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/fastmon/")
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    assert page.locator("#run-quality").inner_text() == "good"

    send(stf(4))  # 3 never comes
    page.wait_for_function("document.getElementById('run-quality').textContent === 'bad'",
                           timeout=15_000)  # fmt: skip
    assert "StfSequence" in page.locator("#alarms").inner_text()
    send(stf(3))  # late: the sequence is whole again, the run was bad for a while
    page.wait_for_function("document.getElementById('run-quality-now').textContent === 'medium'",
                           timeout=15_000)  # fmt: skip
    assert page.locator("#run-quality").inner_text() == "bad"

    runs = browser.new_page()
    runs.goto(f"http://127.0.0.1:{port}/fastmon/runs/{run}/")
    runs.wait_for_selector("#quality tr[data-check=StfSequence] rect.fastmon-q-bad")
    assert runs.locator("#run-quality").inner_text() == "bad"
    bars = runs.locator("#quality tr[data-check=StfSequence] rect")
    assert [bars.nth(i).get_attribute("class") for i in range(3)] == [
        "fastmon-q-good", "fastmon-q-bad", "fastmon-q-medium"]  # fmt: skip
    shot(runs, "run-quality")


def test_an_alarm_raised_and_cleared_at_once_waits_on_the_run_page_until_acknowledged(
    browser, start_process: StartProcess
) -> None:
    """A run ends with a total it never announced: its EndRunTotal alarm, raised and cleared in
    one commit, shows "cleared, unacknowledged" with a button; the shifter's click shows who
    acknowledged it, and another page follows live."""
    run = 100520
    port = serve(start_process)
    checks = [{"class": "fastmon.quality.builtin.EndRunTotal"}]
    with override_settings(FASTMON={**settings.FASTMON, "CHECKS": checks, "CHECK_GRACE_S": 0}):
        ingest_batch(InboundMessage(json.dumps(body)) for body in [
            example("start_run", run_id=run), example("end_run", run_id=run, total_stf_files=3),
        ])  # fmt: skip
    url = f"http://127.0.0.1:{port}/fastmon/runs/{run}/"
    watching = browser.new_page()
    watching.goto(url)
    watching.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    assert watching.locator("#run-alarms button").count() == 0  # no login, no button

    django = Client()
    django.force_login(User.objects.create_user("shifter"))
    context = browser.new_context()
    session = django.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session,
                          "url": f"http://127.0.0.1:{port}/"}])  # fmt: skip
    page = context.new_page()
    page.goto(url)
    row = page.locator("#run-alarms tr.fastmon-alarm-unacknowledged")
    row.wait_for(timeout=10_000)
    assert row.locator(".fastmon-alarm-state").inner_text() == "cleared, unacknowledged"
    assert "EndRunTotal" in row.inner_text()
    shot(page, "run-alarm-unacknowledged")
    row.locator("button", has_text="acknowledge").click()
    done = page.locator("#run-alarms tr.fastmon-alarm-acknowledged .fastmon-alarm-state")
    done.wait_for(timeout=10_000)
    assert done.inner_text() == "acknowledged by shifter"
    assert page.locator("#run-alarms button").count() == 0
    watching.locator("#run-alarms tr.fastmon-alarm-acknowledged").wait_for(timeout=15_000)
    shot(page, "run-alarm-acknowledged")


def sampled(run: int, *sequences: int, size_bytes: int = 700_000) -> list[str]:
    """STFs of ``run`` announced and sampled here (metadata-only samples sized from the STF's
    ``size_bytes``: 7 of about 15 KB by default), for a page served by another process."""
    names = announce("stf_ready", run, *sequences, file_url="", size_bytes=size_bytes)
    sample_stfs(names)
    return names


def test_the_dashboard_lists_a_screenful_of_samples_and_links_to_the_rest(
    browser, start_process: StartProcess
) -> None:
    """35 samples of about 15 KB: 25 rows, a link to all of them; sizes plotted in KB; a sample
    arriving live takes the top row and the screenful stays one."""
    port = serve(start_process)
    sampled(RUN, *range(1, 6))
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/fastmon/")
    page.wait_for_selector("#fastmon-live-status[data-state=live]", timeout=10_000)
    assert page.locator("#tf-samples tbody tr").count() == 25
    assert sample_rows(page)[0] == tf_sample_name(RUN, 5, 7)
    assert page.locator("#chart-tf-sizes-unit").inner_text() == "KB"
    plotted = page.evaluate("window.fastmonCharts.sizes.data[1]")
    assert len(plotted) == 35 and all(5 < kb < 30 for kb in plotted)  # about 15 KB each
    shot(page, "dashboard-screenful")

    sampled(RUN, 6)
    page.wait_for_function(
        f"document.querySelector('#tf-samples tbody td').textContent === "
        f"{json.dumps(tf_sample_name(RUN, 6, 7))}", timeout=20_000,
    )  # fmt: skip
    assert page.locator("#tf-samples tbody tr").count() == 25

    page.click("#tf-samples-all")
    page.wait_for_load_state()
    listed = page.content()
    assert tf_sample_name(RUN, 1, 1) in listed and tf_sample_name(RUN, 6, 7) in listed


def test_a_chart_of_one_sample_spans_a_minute_around_it(browser, start_process: StartProcess):
    SamplingPolicy.objects.create(name="one", params={"partitions": 1})
    port = serve(start_process)
    sampled(RUN, 1)
    [at] = [sample.created_at.timestamp() for sample in TfSample.objects.all()]
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/fastmon/")
    page.wait_for_selector("#chart-tf-sizes canvas")
    for chart in ("sizes", "latency"):
        low, high = page.evaluate(f"[fastmonCharts.{chart}.scales.x.min, "
                                  f"fastmonCharts.{chart}.scales.x.max]")  # fmt: skip
        assert low < at < high and high - low == pytest.approx(60)
    shot(page, "dashboard-one-sample")


def test_the_run_page_names_the_missing_stfs_and_what_the_caps_held_back(
    browser, start_process: StartProcess
) -> None:
    save_policy_version(SamplingPolicy(name="capped", params={"max_samples_per_stf": 3}))
    port = serve(start_process)
    sampled(RUN, 1, 2, 4, 7, 8)  # 3 and 5-6 never came
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{RUN}/")
    assert page.locator("#sequence").inner_text() == "missing: 3, 5\u20136"  # an en dash
    assert page.locator("#duplicates").inner_text() == "none"
    # Five STFs of seven samples, three each taken.
    assert page.locator("#held-back").inner_text() == "20 (20 by samples per STF)"
    shot(page, "run-page-gaps-and-caps")

    sampled(RUN + 1, 1, 3)
    page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{RUN + 1}/")
    assert page.locator("#sequence").inner_text() == "missing: 2"
