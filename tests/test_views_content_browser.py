"""The run page's detector panels in a real headless Chromium, fed by the real content pipeline
(ETF1 STFs written, announced, sampled, merged, checked): each panel redrawn at each merge
without a reload, from two requests a cycle; a failed fetch leaves the panels marked stale and
is tried again; a hot channel arriving live turns its panel and its heatmap bad, named in the
reason and the hottest cell drawn; the .root links download what uproot reads; the moving
window shows the hot channel gone while the whole run keeps it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import uproot
from django.conf import settings
from django.test import override_settings

from fastmon.content import served
from fastmon.content.detectors import detector_map
from fastmon.content.merging import merge_cycle
from fastmon.content.references import choose_reference
from fastmon.ingest.pipeline import ingest_message
from fastmon.models import Run
from fastmon.runtime.loops import ContentMerger
from fastmon.sampling.service import sample_stfs
from fastmon.simulator.detector_faults import parse_detector_fault
from fastmon.simulator.files import write_stf
from fastmon.testing.announcing import announce
from fastmon.testing.browser import serve, shot
from fastmon.testing.content import write_etf1_stf
from fastmon.testing.messages import example, stf_name

pytestmark = pytest.mark.django_db(transaction=True)

RUN = 100500
HOT_RUN, SOURCE, CHANNEL = 100530, 305, 11
# STFs of 8 MB, 100 TFs: BEMC gets thousands of hits a cycle (HotChannels judges it), ZDC a few
# hundred (its spectra compared with its reference, too few for its channel checks).
SIZE, TFS = 8_000_000, 100


def test_the_run_page_draws_each_detector_and_follows_its_merges(
    browser, start_process, tmp_path: Path
) -> None:
    """Per detector a panel (heatmap, spectra, download link), redrawn at the next merge
    without a reload."""
    port = serve(start_process)
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        ingest_message(json.dumps(example("run_imminent", run_id=RUN)))
        sample_and_merge(tmp_path, 1)
        choose_reference("BEMC", Run.objects.get(run_number=RUN))  # overlaid on BEMC's spectra
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{RUN}/")
        page.wait_for_selector("#fastmon-live-status[data-state='live']")
        panels = page.locator("#detectors .fastmon-detector")
        page.wait_for_function(
            "document.querySelectorAll('#detectors .uplot').length == 10"  # adc and bx each
        )
        assert sorted(panels.evaluate_all("ps => ps.map(p => p.dataset.detector)")) == [
            "BEMC", "MPGD", "SVT", "ZDC", "dRICH"]  # fmt: skip
        bemc = page.locator("[data-detector='BEMC']")
        assert float(bemc.locator("canvas.fastmon-occupancy").get_attribute("data-peak")) > 0
        assert bemc.locator(".fastmon-adc .uplot").count() == 1
        assert "reference" in bemc.locator(".fastmon-adc .u-legend").inner_text()
        assert "reference" not in page.locator("[data-detector='SVT'] .fastmon-adc").inner_text()
        link = bemc.locator("[data-histogram='occupancy'] .fastmon-download").get_attribute("href")
        assert link.endswith(f"/fastmon/api/runs/{RUN}/histograms/BEMC/occupancy/?format=root")
        assert "cycle 1," in page.locator("#content-cycle").inner_text()

        sample_and_merge(tmp_path, 2)  # the merge's live event redraws the panels: no reload
        page.wait_for_function(
            "document.getElementById('content-cycle').textContent.startsWith('cycle 2,')"
        )
        shot(page, "run-detectors")

        page.goto(f"http://127.0.0.1:{port}/fastmon/")  # the current run's detector tiles
        page.wait_for_function(
            "document.querySelectorAll('#detector-tiles [data-detector]').length == 5"
        )
        assert page.locator("#detector-tiles [data-detector='BEMC'] p").inner_text() == "unknown"
        assert errors == []


def sample_and_merge(folder: Path, sequence: int) -> None:
    """An ETF1 STF of run RUN written, announced, sampled, and merged."""
    written = write_etf1_stf(folder / stf_name(RUN, sequence), 40, seed=sequence)
    names = announce("stf_ready", RUN, sequence, data_dir=folder, tf_count=40,
                     tf_offsets=written.offsets)  # fmt: skip
    sample_stfs(names)
    merge_cycle()


def test_a_cycle_is_two_requests_and_a_failed_one_is_tried_again(
    browser, start_process, tmp_path: Path
) -> None:
    """Each merge: the summary, then every histogram shown in one gzipped answer. A failure
    leaves the panels marked stale, the last cycle drawn as it was, until a retry draws."""
    port = serve(start_process)
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        ingest_message(json.dumps(example("run_imminent", run_id=RUN)))
        sample_and_merge(tmp_path, 1)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{RUN}/")
        page.wait_for_function(drawn(1))
        fetched: list[Any] = []
        page.on("requestfinished", lambda request: fetched.append(request))
        sample_and_merge(tmp_path, 2)
        page.wait_for_function(drawn(2))
        summary, histograms = fetched
        assert summary.url.endswith(f"/api/runs/{RUN}/content/")
        asked = parse_qs(urlsplit(histograms.url).query)["name"]
        assert sorted(asked) == sorted(f"{d.name}/{n}" for d in detector_map()
                                       for n in ("occupancy", "adc", "bx"))  # fmt: skip
        assert histograms.response().header_value("content-encoding") == "gzip"

        failing = {"left": 2}  # the next two histogram requests fail

        def fail(route: Any) -> None:
            if failing["left"]:
                failing["left"] -= 1
                route.fulfill(status=503, body="")
            else:
                route.continue_()

        page.route("**/histograms/?*", fail)
        sample_and_merge(tmp_path, 3)
        page.wait_for_function("document.getElementById('detectors').dataset.stale === 'true'")
        assert page.locator("#detectors").get_attribute("data-drawn-cycle") == "2"
        assert "not updated: the server answered 503" in page.locator("#content-cycle").inner_text()
        page.wait_for_function(
            drawn(3, "!('stale' in document.getElementById('detectors').dataset)")
        )
        assert failing["left"] == 0  # drawn by the retries alone: no event came after the merge
        assert page.locator("#content-cycle").inner_text().startswith("cycle 3,")


def drawn(cycle: int, condition: str = "true") -> str:
    """A page condition: every panel drawn for ``cycle`` (and ``condition``)."""
    return f"document.getElementById('detectors').dataset.drawnCycle === '{cycle}' && {condition}"


def download(page, link, path: Path):
    """What clicking ``link`` downloads, saved to ``path`` and opened with uproot."""
    with page.expect_download() as got:
        link.click()
    got.value.save_as(path)
    return uproot.open(path)


def test_a_hot_channel_arrives_live_and_the_moving_window_sees_it_go(
    browser, start_process, tmp_path: Path
) -> None:
    """A clean cycle, a cycle with BEMC's source 305 channel 11 hot, a clean one again, each
    merged and checked in this process as the content loop does, while the page stays open."""
    port = serve(start_process)
    hot = parse_detector_fault(f"hot_channel@2:BEMC:{SOURCE}:{CHANNEL}", detector_map())
    changes = {"DATA_ROOTS": [str(tmp_path)], "CHECK_GRACE_S": 0, "CONTENT_WINDOW_CYCLES": 1}
    with override_settings(FASTMON={**settings.FASTMON, **changes}):
        for kind in ("run_imminent", "start_run"):  # running: the checks' flags move
            ingest_message(json.dumps(example(kind, run_id=HOT_RUN)))
        run = Run.objects.get(run_number=HOT_RUN)

        def cycle(sequence: int) -> None:
            written = write_stf(tmp_path / stf_name(HOT_RUN, sequence), SIZE, tf_count=TFS,
                                seed=sequence, sequence=sequence,
                                faults=[hot] if sequence == 2 else [])  # fmt: skip
            names = announce("stf_ready", HOT_RUN, sequence, data_dir=tmp_path, tf_count=TFS,
                             tf_offsets=list(written.tf_offsets))  # fmt: skip
            sample_stfs(names)
            ContentMerger().iterate()  # merged, then the content checks

        cycle(1)
        choose_reference("ZDC", run)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{HOT_RUN}/")
        page.wait_for_selector("#fastmon-live-status[data-state='live']")
        page.wait_for_function(drawn(1))
        bemc = page.locator("[data-detector='BEMC']")
        occupancy = bemc.locator("[data-histogram='occupancy']")
        assert bemc.get_attribute("class") == "fastmon-detector fastmon-q-good"

        cycle(2)  # the hot channel: its panel turns bad without a reload
        page.wait_for_function(drawn(2, "document.querySelector(\"[data-detector='BEMC']\")"
                                        ".classList.contains('fastmon-q-bad')"))  # fmt: skip
        where = f"source {SOURCE} channel {CHANNEL}"
        assert where in bemc.locator(".fastmon-detector-reason").inner_text()
        assert "fastmon-q-bad" in occupancy.get_attribute("class").split()
        assert occupancy.locator(".fastmon-quality").inner_text() == "bad"
        reason = occupancy.locator(".fastmon-histogram-reason").inner_text()
        assert reason.startswith("BEMC: 1 hot channels") and where in reason
        canvas = occupancy.locator("canvas")
        assert (canvas.get_attribute("data-peak-source"), canvas.get_attribute("data-peak-channel")
                ) == (str(SOURCE), str(CHANNEL))  # fmt: skip
        assert f"the hottest: {where}" in canvas.get_attribute("title")  # on hovering
        row, column, width = canvas.evaluate("""c => {
            const pixels = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let best = 0;
            for (let i = 4; i < pixels.length; i += 4) if (pixels[i] > pixels[best]) best = i;
            return [Math.floor(best / 4 / c.width), (best / 4) % c.width, c.width];
        }""")  # the reddest pixel: a row a source, a column 512 / width channels
        assert row == SOURCE - 300
        assert column * 512 // width <= CHANNEL < (column + 1) * 512 // width
        # Each spectrum says what its own check said: ZDC's compared with its reference, BEMC's
        # not (it has none).
        zdc_adc = page.locator("[data-detector='ZDC'] [data-histogram='adc']")
        assert "fastmon-q-good" in zdc_adc.get_attribute("class").split()
        assert zdc_adc.locator(".fastmon-histogram-reason").inner_text().startswith("ZDC/adc: chi2")
        bemc_adc = bemc.locator("[data-histogram='adc'] .fastmon-histogram-reason").inner_text()
        assert bemc_adc == "not compared with a reference"
        shot(page, "run-detector-hot-channel")

        whole = served.run_content(run).histograms["BEMC/occupancy"].view()
        assert np.unravel_index(whole.argmax(), whole.shape) == (SOURCE - 300, CHANNEL)
        with download(page, occupancy.locator(".fastmon-download"), tmp_path / "one.root") as f:
            np.testing.assert_array_equal(f["occupancy"].values(), whole)
        with download(page, page.locator("#content-root"), tmp_path / "all.root") as f:
            np.testing.assert_array_equal(f["BEMC/occupancy"].values(), whole)
            assert set(f["ZDC"].keys(cycle=False)) == {"occupancy", "adc", "bx", "hits_per_tf"}

        # The moving window (one cycle here) keeps the choice over the live redraws.
        page.select_option("#content-window", "last")
        page.wait_for_function(
            "document.getElementById('content-root').href.endsWith('histograms.root?window=last')"
        )
        cycle(3)  # clean: the window no longer holds the hot channel, the whole run does
        page.wait_for_function(drawn(3, "!document.querySelector(\"[data-detector='BEMC']\")"
                                        ".classList.contains('fastmon-q-bad')"))  # fmt: skip
        assert page.locator("#content-window").input_value() == "last"
        window = served.run_content(run, "last").histograms["BEMC/occupancy"].view()
        assert float(canvas.get_attribute("data-peak")) == window.max() < whole.max() / 2
        assert (
            occupancy.locator(".fastmon-download")
            .get_attribute("href")
            .endswith("/histograms/BEMC/occupancy/?window=last&format=root")
        )
        assert "(whole run)" in bemc.locator(".fastmon-detector-hits").inner_text()
        shot(page, "run-detectors-moving-window")

        page.select_option("#content-window", "run")
        page.wait_for_function(
            "document.querySelector(\"[data-detector='BEMC'] canvas\").dataset.peakChannel"
            f" === '{CHANNEL}'"
        )
        assert not page.locator("#content-root").get_attribute("href").endswith("?window=last")
        assert errors == []
