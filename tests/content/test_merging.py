"""Content end to end against PostgreSQL: an ETF1 STF sampled (boundaries from its index or
its announcement), its partial stored with its samples, folded once by the merger, and served
bin for bin as an independent decode of exactly the sampled ranges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from fastmon.content import served
from fastmon.content.merging import merge_cycle
from fastmon.ingest.pipeline import ingest_message
from fastmon.models import ContentCycle, ContentPartial, LiveEvent, Run, RunContent, TfSample
from fastmon.sampling.service import sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.content import WrittenStf, write_etf1_stf
from fastmon.testing.messages import example_body, stf_name

pytestmark = pytest.mark.django_db

RUN, TFS = 101993, 200


@pytest.fixture
def data_root(tmp_path: Path):
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        yield tmp_path


def sample(data_root: Path, sequence: int, offsets: bool, **written: object) -> WrittenStf:
    stf = write_etf1_stf(data_root / stf_name(RUN, sequence), TFS, seed=sequence, **written)
    extra = {"tf_offsets": stf.offsets} if offsets else {}
    size = (data_root / stf_name(RUN, sequence)).stat().st_size
    [name] = announce("stf_ready", RUN, sequence, data_dir=data_root, tf_count=TFS,
                      size_bytes=size, **extra)  # fmt: skip
    sample_stfs([name])
    return stf


def ranges_of(sequence: int) -> list[tuple[int, int]]:
    return list(TfSample.objects.filter(stf__stf_filename=stf_name(RUN, sequence))
                .order_by("tf_first").values_list("tf_first", "tf_last"))  # fmt: skip


def unmapped_hits(stf: WrittenStf, ranges: list[tuple[int, int]]) -> int:
    sampled = [tf for first, last in ranges for tf in range(first, last + 1)]
    return int(((stf.source == 7) & np.isin(stf.tf, sampled)).sum())


def test_boundaries_come_from_the_index_or_the_announcement(data_root: Path) -> None:
    ingest_message(example_body("run_imminent"))
    from_index = sample(data_root, 1, offsets=False)
    announced = sample(data_root, 2, offsets=True)
    for sequence, stf, kind in ((1, from_index, "index"), (2, announced, "announced")):
        samples = TfSample.objects.filter(stf__stf_filename=stf_name(RUN, sequence))
        assert {s.tf_boundaries for s in samples} == {kind}
        for s in samples:  # whole TFs: a sample's size is its TFs' bytes
            assert s.file_size_bytes == stf.offsets[s.tf_last + 1] - stf.offsets[s.tf_first]
    listed = APIClient().get("/fastmon/api/fastmon-files/", {"tf_boundaries": "index"}).json()
    assert {row["stf_file"] for row in listed} == {stf_name(RUN, 1)}
    assert {row["tf_boundaries"] for row in listed} == {"index"}


def test_served_occupancy_equals_an_independent_decode_of_the_sampled_ranges(
    data_root: Path,
) -> None:
    ingest_message(example_body("run_imminent"))
    written = {n: sample(data_root, n, offsets=n % 2 == 0, unmapped=(7,)) for n in (1, 2, 3)}
    assert ContentPartial.objects.count() == 3
    assert merge_cycle().partials == 3 and merge_cycle() == (0, ())
    assert not ContentPartial.objects.exists()

    content = served.run_content(Run.objects.get(run_number=RUN))
    for detector in ("SVT", "MPGD", "BEMC", "dRICH", "ZDC"):
        expected = sum(stf.occupancy(detector, ranges_of(n)) for n, stf in written.items())
        assert np.array_equal(content.histograms[f"{detector}/occupancy"].view(), expected)
    tfs = sum(last - first + 1 for n in written for first, last in ranges_of(n))
    assert (content.tfs_decoded, content.corrupt_tfs, content.undecodable) == (tfs, 0, 0)
    assert content.unmapped == {"7": sum(unmapped_hits(stf, ranges_of(n))
                                         for n, stf in written.items())}  # fmt: skip
    event = LiveEvent.objects.filter(kind=LiveEvent.Kind.CONTENT).get()
    assert event.run_number == RUN and event.payload["cycle"] == 1
    assert event.payload["tfs_decoded"] == tfs and "bins" not in json.dumps(event.payload)


def test_a_sample_taken_again_adds_nothing(data_root: Path) -> None:
    ingest_message(example_body("run_imminent"))
    sample(data_root, 1, offsets=True)
    merge_cycle()
    before = served.run_content(Run.objects.get(run_number=RUN))
    assert sample_stfs([stf_name(RUN, 1)]).sampled == 0  # already sampled: nothing stored
    assert merge_cycle().partials == 0
    after = served.run_content(Run.objects.get(run_number=RUN))
    assert after.tfs_decoded == before.tfs_decoded
    assert after.histograms["BEMC/occupancy"] == before.histograms["BEMC/occupancy"]


def test_the_window_keeps_the_last_cycles_only(data_root: Path) -> None:
    ingest_message(example_body("run_imminent"))
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(data_root)],
                                    "CONTENT_WINDOW_CYCLES": 2}):  # fmt: skip
        for n in (1, 2, 3):
            sample(data_root, n, offsets=True)
            merge_cycle()
        run = Run.objects.get(run_number=RUN)
        whole, window = served.run_content(run), served.run_content(run, "last")
        last_two = sum(last - first + 1 for n in (2, 3) for first, last in ranges_of(n))
        assert window.tfs_decoded == last_two < whole.tfs_decoded
        assert RunContent.objects.get().cycle == 3
        assert list(ContentCycle.objects.values_list("cycle", flat=True).order_by("cycle")) == [
            2,
            3,
        ]


def test_other_content_is_undecodable_and_the_envelope_goes_on(data_root: Path) -> None:
    ingest_message(example_body("run_imminent"))
    path = data_root / stf_name(RUN, 1)
    path.write_bytes(np.random.default_rng(1).bytes(1 << 20))
    [name] = announce("stf_ready", RUN, 1, data_dir=data_root, size_bytes=1 << 20)
    assert sample_stfs([name]).samples == 7
    assert {s.tf_boundaries for s in TfSample.objects.all()} == {"equal"}
    assert all(s.checksum.startswith("ad:") for s in TfSample.objects.all())
    merge_cycle()
    content = served.run_content(Run.objects.get(run_number=RUN))
    assert content.undecodable == sum(s.tf_count for s in TfSample.objects.all())
    assert content.tfs_decoded == 0 and content.corrupt_tfs == 0


def test_corrupt_tfs_are_counted_with_reasons_and_the_rest_decoded(
    data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad magic, an overrunning n_hits, a channel out of range: counted, skipped, never an
    exception in the log."""
    ingest_message(example_body("run_imminent"))
    path = data_root / stf_name(RUN, 1)
    stf = write_etf1_stf(path, TFS, seed=1)
    data = bytearray(path.read_bytes())
    broken = {}
    for n in range(TFS):
        at = stf.offsets[n]
        if n % 10 == 3:
            data[at : at + 4] = b"XTF1"
            broken[n] = "bad magic"
        elif n % 10 == 5:
            data[at + 36 : at + 40] = (2**31).to_bytes(4, "little")  # the first block's n_hits
            broken[n] = "overrun"
        elif n % 10 == 7:
            block = at + 32  # the first block: its source, then the first hit's channel
            if int.from_bytes(data[block + 4 : block + 8], "little"):
                data[block + 16 : block + 18] = (65535).to_bytes(2, "little")
                broken[n] = "channel"
    path.write_bytes(bytes(data))
    [name] = announce("stf_ready", RUN, 1, data_dir=data_root, tf_count=TFS,
                      tf_offsets=stf.offsets, size_bytes=len(data))  # fmt: skip
    with caplog.at_level("WARNING"):
        sample_stfs([name])
        merge_cycle()
    content = served.run_content(Run.objects.get(run_number=RUN))
    sampled = {tf for first, last in ranges_of(1) for tf in range(first, last + 1)}
    assert content.corrupt_tfs == len(sampled & set(broken)) > 0
    assert content.tfs_decoded == len(sampled - set(broken))
    assert content.corrupt_first_reason
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
