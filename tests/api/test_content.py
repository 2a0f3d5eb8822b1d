"""A run's content over the API: the summary with URLs, one histogram as UHI JSON and as a
ROOT file (read back with uproot), all of them as one ROOT file, the moving window."""

from __future__ import annotations

import io
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
    missing = client.get(f"{API}/runs/{RUN}/histograms/BEMC/nothing/")
    assert missing.status_code == 404 and "BEMC/nothing" in missing.json()["detail"]
    bad = client.get(f"{API}/runs/{RUN}/histograms/BEMC/adc/", {"window": "week"})
    assert bad.status_code == 400 and "window" in bad.json()


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
