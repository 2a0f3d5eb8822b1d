"""A run's content over the API: the summary with URLs, one histogram as UHI JSON and as a
ROOT file (read back with uproot), all of them as one ROOT file, the moving window, and what a
page shows in one answer (gzipped, the next cycle's after a merge, hostile names refused)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import uproot
from boost_histogram.serialization import from_uhi
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from fastmon.content.merging import merge_cycle
from fastmon.content.references import choose_reference
from fastmon.ingest.pipeline import ingest_message
from fastmon.models import Run
from fastmon.sampling.service import sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.content import write_etf1_stf
from fastmon.testing.messages import example_body, stf_name

pytestmark = pytest.mark.django_db

API, RUN = "/fastmon/api", 101993


@pytest.fixture
def merged_run(tmp_path: Path):
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        ingest_message(example_body("run_imminent"))
        stf = write_etf1_stf(tmp_path / stf_name(RUN, 1), 100)
        [name] = announce("stf_ready", RUN, 1, data_dir=tmp_path, tf_count=100,
                          tf_offsets=stf.offsets)  # fmt: skip
        sample_stfs([name])
        merge_cycle()
        yield


def test_the_summary_lists_every_histogram_with_its_url(merged_run: None) -> None:
    client = APIClient()
    found = client.get(f"{API}/runs/{RUN}/content/").json()
    assert found["run_number"] == RUN and found["cycle"] == 1 and found["merged_at"]
    assert found["tfs_decoded"] > 0 and found["corrupt_tfs"] == 0
    assert found["detectors"]["BEMC"]["hits"] > 0
    names = {h["name"] for h in found["histograms"]}
    assert {"BEMC/occupancy", "BEMC/adc", "BEMC/bx", "BEMC/hits_per_tf"} <= names
    url = next(h["url"] for h in found["histograms"] if h["name"] == "BEMC/adc")
    assert url.endswith(f"{API}/runs/{RUN}/histograms/BEMC/adc/")
    assert client.get(url).status_code == 200


def test_a_histogram_as_uhi_json_and_as_root_give_the_same_bins(merged_run: None) -> None:
    client = APIClient()
    url = f"{API}/runs/{RUN}/histograms/BEMC/occupancy/"
    histogram = from_uhi(client.get(url).json())
    browsed = client.get(url, HTTP_ACCEPT="text/html")  # DRF's browsable API, as a browser asks
    assert browsed.status_code == 200 and "occupancy" in browsed.content.decode()
    answer = client.get(url, {"format": "root"})
    assert answer["Content-Type"] == "application/octet-stream"
    with uproot.open(io.BytesIO(answer.content)) as file:
        read = file["occupancy"]
        assert read.classname == "TH2D"
        assert np.array_equal(read.values(), histogram.view())
    assert histogram.sum() > 0


def test_the_whole_run_as_one_root_file_and_the_window(merged_run: None) -> None:
    client = APIClient()
    answer = client.get(f"{API}/runs/{RUN}/histograms.root")
    whole = client.get(f"{API}/runs/{RUN}/histograms/ZDC/adc/").json()
    with uproot.open(io.BytesIO(answer.content)) as file:
        assert file["ZDC/adc"].classname == "TH1D"
        assert np.array_equal(file["ZDC/adc"].values(), from_uhi(whole).view())
        directories = {key.split(";")[0] for key in file.keys(recursive=False)}
        assert {"SVT", "MPGD", "BEMC", "dRICH", "ZDC"} <= directories
    window = client.get(f"{API}/runs/{RUN}/histograms/ZDC/adc/", {"window": "last"}).json()
    assert from_uhi(window) == from_uhi(whole)  # one cycle so far: the window is the run


def test_unknown_runs_histograms_and_windows_are_clear_errors(merged_run: None) -> None:
    client = APIClient()
    assert client.get(f"{API}/runs/9/content/").status_code == 404
    assert client.get(f"{API}/runs/9/histograms/BEMC/adc/").status_code == 404
    assert client.get(f"{API}/runs/9/histograms/", {"name": "BEMC/adc"}).status_code == 404
    assert client.get(f"{API}/runs/9/histograms.root").status_code == 404
    missing = client.get(f"{API}/runs/{RUN}/histograms/BEMC/nothing/")
    assert missing.status_code == 404 and "BEMC/nothing" in missing.json()["detail"]
    bad = client.get(f"{API}/runs/{RUN}/histograms/BEMC/adc/", {"window": "week"})
    assert bad.status_code == 400 and "window" in bad.json()
    whole = client.get(f"{API}/runs/{RUN}/histograms.root", {"window": "reference"})
    assert whole.status_code == 400  # references are served one histogram at a time


def test_a_run_before_its_first_merge_has_empty_content() -> None:
    ingest_message(example_body("run_imminent"))
    found = APIClient().get(f"{API}/runs/{RUN}/content/").json()
    assert (found["cycle"], found["merged_at"], found["tfs_decoded"]) == (0, None, 0)
    assert found["histograms"] == []


def test_a_detectors_reference_is_served_for_overlay(merged_run: None) -> None:
    client = APIClient()
    assert client.get(f"{API}/runs/{RUN}/content/").json()["references"] == {}
    choose_reference("BEMC", Run.objects.get(run_number=RUN))
    found = client.get(f"{API}/runs/{RUN}/content/").json()
    assert set(found["references"]) == {"BEMC"}
    url = found["references"]["BEMC"]["adc"]
    assert url.endswith(f"{API}/runs/{RUN}/histograms/BEMC/adc/?window=reference")
    ours = client.get(f"{API}/runs/{RUN}/histograms/BEMC/adc/").json()
    assert from_uhi(client.get(url).json()) == from_uhi(ours)
    missing = client.get(f"{API}/runs/{RUN}/histograms/SVT/adc/", {"window": "reference"})
    assert missing.status_code == 404


def bundle(client: APIClient, gzipped: bool = False, **query: object):
    """The pages' one request for what they show."""
    headers = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"} if gzipped else {}
    return client.get(f"{API}/runs/{RUN}/histograms/", query, **headers)


def test_what_a_page_shows_comes_in_one_answer_gzipped(merged_run: None) -> None:
    client = APIClient()
    summary = client.get(f"{API}/runs/{RUN}/content/").json()
    assert summary["histograms_url"].endswith(f"{API}/runs/{RUN}/histograms/")
    choose_reference("BEMC", Run.objects.get(run_number=RUN))
    names = ["SVT/occupancy", "BEMC/adc", "ZDC/bx"]
    plain = bundle(client, name=names, reference=["BEMC/adc", "BEMC/bx", "ZDC/adc"])
    assert plain.status_code == 200 and "Content-Encoding" not in plain
    found = json.loads(plain.content)
    assert found["cycle"] == 1 and list(found["histograms"]) == names
    for name in names:  # the same bins as each one's own URL
        one = client.get(f"{API}/runs/{RUN}/histograms/{name}/").json()
        assert from_uhi(found["histograms"][name]) == from_uhi(one)
    assert set(found["references"]) == {"BEMC/adc", "BEMC/bx"}  # ZDC has no reference
    assert from_uhi(found["references"]["BEMC/adc"]) == from_uhi(found["histograms"]["BEMC/adc"])

    zipped = bundle(client, gzipped=True, name=names, reference=["BEMC/adc", "BEMC/bx", "ZDC/adc"])
    assert zipped["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped["Vary"]
    assert json.loads(gzip.decompress(zipped.content)) == found
    assert int(zipped["Content-Length"]) == len(zipped.content) < len(plain.content) / 5

    window = bundle(client, name=["ZDC/bx"], window="last").json()  # one cycle: the run's
    assert from_uhi(window["histograms"]["ZDC/bx"]) == from_uhi(found["histograms"]["ZDC/bx"])


def test_the_next_merge_is_served_not_the_cycle_kept(merged_run: None, tmp_path: Path) -> None:
    """Rendered once a cycle and window: a merge makes the next answer the new cycle's."""
    client = APIClient()
    before = bundle(client, name=["BEMC/occupancy"]).json()
    bundle(client, name=["BEMC/occupancy"], window="last")
    changes = {"DATA_ROOTS": [str(tmp_path)], "CONTENT_WINDOW_CYCLES": 1}
    with override_settings(FASTMON={**settings.FASTMON, **changes}):
        stf = write_etf1_stf(tmp_path / stf_name(RUN, 2), 100, seed=2)
        sample_stfs(announce("stf_ready", RUN, 2, data_dir=tmp_path, tf_count=100,
                             tf_offsets=stf.offsets))  # fmt: skip
        merge_cycle()
    after = bundle(client, name=["BEMC/occupancy"]).json()
    assert (before["cycle"], after["cycle"]) == (1, 2)
    ours, theirs = (from_uhi(x["histograms"]["BEMC/occupancy"]) for x in (before, after))
    assert theirs.sum() > ours.sum()
    one = client.get(f"{API}/runs/{RUN}/histograms/BEMC/occupancy/").json()
    assert from_uhi(one) == theirs
    window = bundle(client, name=["BEMC/occupancy"], window="last").json()  # cycle 2 alone
    assert from_uhi(window["histograms"]["BEMC/occupancy"]).sum() == theirs.sum() - ours.sum()


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"name": ["BEMC/adc", "BEMC/nothing"]}, 404, "BEMC/nothing"),
        ({}, 400, "from 1 to 64"),
        ({"name": [f"BEMC/adc{n}" for n in range(65)]}, 400, "from 1 to 64"),
        ({"name": ["BEMC"]}, 400, "not DETECTOR/name"),
        ({"name": ["a/b/c"]}, 400, "not DETECTOR/name"),
        ({"reference": ["/adc"]}, 400, "not DETECTOR/name"),
        ({"name": ["BEMC/" + "x" * 300]}, 400, "not DETECTOR/name"),
        ({"name": ["BEMC/adc"], "window": "reference"}, 400, "window"),
    ],
)
def test_the_bundle_refuses_what_it_cannot_answer(
    merged_run: None, query: dict, status: int, words: str
) -> None:
    answer = bundle(APIClient(), **query)
    assert answer.status_code == status
    assert words in answer.content.decode()
    assert len(answer.content) < 1000  # a hostile name is not echoed at length
