"""TF sample checksums compared with what the announcement's per-TF checksums make of the range,
and with a second read: agreement is good, a disagreement is a bad flag and an alarm."""

from __future__ import annotations

import itertools
import random
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.models import Alarm, CheckState, TfSample
from fastmon.sampling.checksums import adler32_combine, announced_range_checksums, parse_adler32
from fastmon.sampling.service import sample_stfs
from fastmon.sampling.spans import tf_offset
from fastmon.simulator.files import write_stf_file
from fastmon.testing.announcing import announce
from fastmon.testing.messages import stf_name

RUN, TFS, SIZE = 100320, 100, 1_000_000


def test_adler32_of_a_concatenation_from_its_parts() -> None:
    rng = random.Random(7)
    for _ in range(100):
        first, second = rng.randbytes(rng.randint(0, 3000)), rng.randbytes(rng.randint(0, 70_000))
        combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
        assert combined == zlib.adler32(first + second)
    assert parse_adler32("ad:123") == 123 and parse_adler32("0000007b") == 123
    assert parse_adler32("ad:x") is parse_adler32(7) is parse_adler32("ad:-1") is None


def test_a_ranges_checksum_from_its_tfs_by_their_boundaries() -> None:
    data = random.Random(1).randbytes(1000)
    bounds = [0, 10, 300, 301, 1000]
    per_tf = [f"ad:{zlib.adler32(data[a:b])}" for a, b in itertools.pairwise(bounds)]
    found = announced_range_checksums(per_tf, 4, [(0, 1), (1, 3), (2, 2)], bounds, 1000)
    assert found == [f"ad:{zlib.adler32(data[a:b])}" for a, b in [(0, 300), (10, 1000), (300, 301)]]
    assert announced_range_checksums(per_tf[:3], 4, [(0, 1)], bounds, 1000) == [None]
    assert announced_range_checksums(["ad:1", "no", "ad:2", "ad:3"], 4, [(0, 1), (2, 3)], None,
                                     1000)[0] is None  # fmt: skip


def tf_checksums(path: Path) -> list[str]:
    data = path.read_bytes()
    offsets = [tf_offset(n, TFS, len(data)) for n in range(TFS + 1)]
    return [f"ad:{zlib.adler32(data[a:b])}" for a, b in itertools.pairwise(offsets)]


@pytest.mark.django_db
def test_checksums_agree_until_an_stf_is_not_what_was_announced(tmp_path: Path) -> None:
    changes = {"DATA_ROOTS": [str(tmp_path)], "VERIFY_READ_FRACTION": 1.0}
    paths = [tmp_path / stf_name(RUN, n) for n in (1, 2)]
    for n, path in enumerate(paths, 1):
        write_stf_file(path, SIZE, seed=n)
    stfs = {"data_dir": tmp_path, "size_bytes": SIZE, "tf_count": TFS}
    with override_settings(FASTMON={**settings.FASTMON, **changes}):
        sample_stfs(announce("stf_ready", RUN, 1, tf_checksums=tf_checksums(paths[0]), **stfs))
        samples = list(TfSample.objects.all())
        assert samples and all(
            s.metadata["checksum_announced"] == s.metadata["checksum_reread"] == s.checksum
            for s in samples
        )  # fmt: skip
        state = CheckState.objects.get(check_name="TfChecksum")
        assert (state.quality, state.reason) == (
            "good",
            f"{len(samples)} TF sample checksums agree",
        )

        wrong = [f"ad:{parse_adler32(c) ^ 1}" for c in tf_checksums(paths[1])]  # a bit flipped
        sample_stfs(announce("stf_ready", RUN, 2, tf_checksums=wrong, **stfs))
    state.refresh_from_db()
    assert state.quality == "bad" and "disagree" in state.reason
    assert Alarm.objects.get(check_name="TfChecksum").cleared_at is None


def test_a_second_read_that_fails_leaves_the_first_as_it_was() -> None:
    from fastmon.sampling.service import _read_again

    def unreadable() -> None:
        raise OSError("the disk went away")

    assert _read_again(unreadable, "swf.100320.000001.stf") is None
