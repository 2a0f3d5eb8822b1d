"""The simulator's detector faults, read back as fastmon reads them (the ETF1 decoder and
``histograms.fill``): a hot channel stands far above its neighbours, a dead channel or source
has no hits while the others do, a gain scales the ADC, noise lifts the flat floor of the
occupancy, corrupt TFs count corrupt and the rest decode; each from STF N (to M) only, the same
bytes from the same seed, near the size asked for; and the specs they refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from fastmon.content import etf1
from fastmon.content.detectors import Detector, DetectorMap
from fastmon.content.histograms import Content, fill
from fastmon.simulator.content import Etf1Stf, default_detectors
from fastmon.simulator.detector_faults import DetectorFault
from fastmon.simulator.faults import parse_fault
from fastmon.simulator.files import write_stf
from fastmon.simulator.player import SimulationOptions, Simulator

pytestmark = pytest.mark.unit

MIB = 1024 * 1024
TFS = 100


def written(*faults: str, size: int = 2 * MIB, seed: int = 1) -> bytes:
    parsed = [f for f in map(parse_fault, faults) if isinstance(f, DetectorFault)]
    assert len(parsed) == len(faults)
    stf = Etf1Stf(size, TFS, seed=seed, name="swf.100900.000003.stf", faults=parsed)
    return b"".join(bytes(chunk) for chunk in stf.chunks())


def read(data: bytes, detectors: DetectorMap | None = None) -> Content:
    """The file's content as fastmon fills it, its TFs read by the index."""
    detectors = detectors or default_detectors()
    boundaries = etf1.read_boundaries(lambda at, n: data[at : at + n], len(data))
    assert boundaries is not None  # the index stays sound, whatever the fault
    content = Content()
    fill(content, etf1.Etf1Decoder().decode(data, len(boundaries) - 1, boundaries, detectors),
         detectors)  # fmt: skip
    return content


def detector(name: str) -> Detector:
    return next(d for d in default_detectors() if d.name == name)


def occupancy(content: Content, name: str) -> np.ndarray:
    """Source (index in the detector) x channel."""
    return content.histograms[f"{name}/occupancy"].values()


def adc_mean(content: Content, name: str) -> float:
    adc = content.histograms[f"{name}/adc"]
    return float((adc.values() * adc.axes[0].centers).sum() / adc.values().sum())


@pytest.fixture(scope="module")
def healthy() -> Content:
    content = read(written())
    assert content.corrupt_tfs == 0 and content.tfs_decoded == TFS
    return content


# -- the specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hot_channel@3:SVT", DetectorFault("hot_channel", 3, None, "SVT")),
        ("hot_channel@3-5:SVT:120:4095", DetectorFault("hot_channel", 3, 5, "SVT", 120, 4095)),
        ("dead_channel@1:BEMC:300", DetectorFault("dead_channel", 1, None, "BEMC", 300)),
        ("dead_source@2-2:MPGD:215", DetectorFault("dead_source", 2, 2, "MPGD", 215)),
        ("gain@4:BEMC:0.5", DetectorFault("gain", 4, None, "BEMC", value=0.5)),
        ("gain@0:BEMC:1.3", DetectorFault("gain", 0, None, "BEMC", value=1.3)),  # the issue's
        ("noise@4:dRICH:3", DetectorFault("noise", 4, None, "dRICH", value=3.0)),
        ("corrupt@1", DetectorFault("corrupt", 1, value=0.05)),
        ("corrupt@1-9:0.5", DetectorFault("corrupt", 1, 9, value=0.5)),
    ],
)
def test_detector_fault_specs(text: str, expected: DetectorFault) -> None:
    assert parse_fault(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hot_channel@3:XYZ", "no detector 'XYZ' in the map"),
        ("hot_channel@3", "write hot_channel@N"),
        ("dead_source@3:SVT:99", "source 99 is not SVT's \\(100-131\\)"),
        ("dead_channel@3:ZDC:900:64", "channel 64 is not one of ZDC's \\(0-63\\)"),
        ("dead_channel@3:ZDC:900:x", "write dead_channel@N"),
        ("dead_source@3:ZDC:900:1", "write dead_source@N"),
        ("gain@5-4:SVT:2", "M at least N"),
        ("gain@x:SVT:2", "write gain@N"),
        ("gain@2:SVT", "write gain@N"),
        ("gain@2:SVT:0", "above 0"),
        ("gain@2:SVT:nan", "above 0"),
        ("noise@2:SVT:-1", "above 0"),
        ("noise@2:SVT:inf", "above 0"),
        ("corrupt@2:1.5", "at most 1"),
        ("corrupt@2:0", "above 0"),
        ("corrupt@2:0.1:3", "write corrupt@N"),
        ("melt@2:SVT", "kind must be one of .*hot_channel"),
    ],
)
def test_bad_detector_fault_specs_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_specs_are_checked_against_the_map_in_use() -> None:
    site = DetectorMap([Detector("CAL", 10, 11, 16)])
    assert parse_fault("dead_channel@1:CAL:11:15", site) == DetectorFault(
        "dead_channel", 1, None, "CAL", 11, 15
    )
    with pytest.raises(ValueError, match="no detector 'SVT' in the map \\(CAL\\)"):
        parse_fault("hot_channel@1:SVT", site)
    with pytest.raises(ValueError, match="no detector 'SVT'"):  # the options check it too
        SimulationOptions(detectors=site, data_dir=Path(), faults=(parse_fault("gain@1:SVT:2"),))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"content": "random"}, "ETF1 content"),
        ({"sparse": True}, "ETF1 content"),
        ({"data_dir": None}, "STF files written"),
    ],
)
def test_detector_faults_need_etf1_files(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationOptions(**{"data_dir": Path(), "faults": (parse_fault("corrupt@1"),), **options})


def test_fastmon_simulate_and_the_demo_refuse_a_bad_spec(capsys: pytest.CaptureFixture) -> None:
    from demo.__main__ import parse_args

    with pytest.raises(CommandError, match="no detector 'XYZ'"):
        call_command("fastmon_simulate", "--fault", "hot_channel@1:XYZ", "--data-dir", "/tmp")
    with pytest.raises(CommandError, match="STF files written"):
        call_command("fastmon_simulate", "--fault", "hot_channel@1:SVT")
    with pytest.raises(SystemExit):
        parse_args(["--fault", "gain@1:SVT:0"])
    assert "above 0" in capsys.readouterr().err
    assert parse_args(["--fault", "noise@2-4:dRICH:1"]).simulation.faults == (
        DetectorFault("noise", 2, 4, "dRICH", value=1.0),
    )


# -- their effect --------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_bytes_near_the_size_asked_for() -> None:
    faults = ("hot_channel@1:SVT", "noise@1:dRICH:2", "dead_source@1:MPGD", "corrupt@1")
    data = written(*faults)
    assert written(*faults) == data != written(*faults, seed=2)
    assert abs(len(data) - 2 * MIB) < 0.03 * 2 * MIB


def test_a_hot_channel_stands_far_above_its_neighbours(healthy: Content) -> None:
    svt = detector("SVT")
    hot = occupancy(read(written("hot_channel@1:SVT")), "SVT")
    row = svt.n_sources // 2  # the default: the middle source, channel 7
    neighbours = np.r_[hot[row, 2:7], hot[row, 8:13]]
    assert hot[row, 7] > 20 * neighbours.mean() and hot[row, 7] >= 4 * TFS
    mean_per_channel = occupancy(healthy, "SVT").mean()
    assert hot[row, 7] > 30 * mean_per_channel
    given = occupancy(read(written("hot_channel@1:ZDC:901:40")), "ZDC")
    assert given[1, 40] > 10 * np.delete(given[1], 40).max()


def test_a_dead_channel_and_a_dead_source_have_no_hits(healthy: Content) -> None:
    before = occupancy(healthy, "SVT")
    after = occupancy(read(written("dead_channel@1:SVT:103:2")), "SVT")
    assert before[3, 2] > 0 and after[3, 2] == 0
    assert after[3, 1] == before[3, 1] and after[4, 2] == before[4, 2]  # the rest unchanged
    default = occupancy(read(written("dead_channel@1:SVT")), "SVT")
    assert before[16, 7] > 0 and default[16, 7] == 0
    content = read(written("dead_source@1:MPGD:203"))
    mpgd = occupancy(content, "MPGD").sum(axis=1)
    assert mpgd[3] == 0 and np.all(np.delete(mpgd, 3) > 0) and content.corrupt_tfs == 0


def test_a_gain_scales_the_adc(healthy: Content) -> None:
    for factor in (0.5, 1.5):
        scaled = read(written(f"gain@1:BEMC:{factor}"))
        assert adc_mean(scaled, "BEMC") == pytest.approx(factor * adc_mean(healthy, "BEMC"),
                                                         rel=0.03)  # fmt: skip
        assert adc_mean(scaled, "SVT") == adc_mean(healthy, "SVT")


def test_noise_lifts_the_flat_floor_of_the_occupancy(healthy: Content) -> None:
    rate = 2.0
    noisy = read(written(f"noise@1:dRICH:{rate}"))
    drich = detector("dRICH")
    floor, before = occupancy(noisy, "dRICH").sum(axis=0), occupancy(healthy, "dRICH").sum(axis=0)
    quiet = before <= np.quantile(before, 0.25)  # the channels between the profile's bands
    added = rate * drich.n_sources * TFS / drich.channels  # noise hits a channel, expected
    assert floor[quiet].mean() - before[quiet].mean() == pytest.approx(added, rel=0.25)
    assert noisy.corrupt_tfs == 0


@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_corrupt_tfs_count_corrupt_and_the_others_decode(fraction: float) -> None:
    text = "corrupt@1" if fraction == 0.05 else f"corrupt@1:{fraction}"
    content = read(written(text))
    assert content.corrupt_tfs == round(fraction * TFS)
    assert content.tfs_decoded == TFS - content.corrupt_tfs
    if fraction == 0.2:  # both kinds: a channel out of range (its detector's), a bad header
        assert "" in content.corrupt and len(content.corrupt) > 1


def test_a_fault_applies_to_stfs_n_to_m_only(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []
    faults = (parse_fault("dead_source@2-3:MPGD"), parse_fault("corrupt@4:0.1"))
    options = SimulationOptions(stfs_per_run=5, rate=1e6, stf_size=MIB // 2, tf_count=20,
                                data_dir=tmp_path, faults=faults)  # fmt: skip
    Simulator(options, lambda _, body: sent.append(json.loads(body))).run()
    ready = {b["sequence"]: b["file_url"] for b in sent if b["msg_type"] == "stf_ready"}
    contents = {n: read(Path(urlparse(url).path).read_bytes()) for n, url in ready.items()}
    middle = occupancy(contents[1], "MPGD").shape[0] // 2  # the default source: 208
    dead = [n for n, c in contents.items() if not occupancy(c, "MPGD")[middle].any()]
    assert dead == [2, 3]
    assert [n for n, c in contents.items() if c.corrupt_tfs] == [4, 5]  # from 4 on
    assert all(c.corrupt_tfs == 2 for n, c in contents.items() if n >= 4)


def test_write_stf_refuses_detector_faults_without_etf1(tmp_path: Path) -> None:
    fault = parse_fault("corrupt@1")
    assert isinstance(fault, DetectorFault)
    with pytest.raises(ValueError, match="ETF1"):
        write_stf(tmp_path / "x.stf", 1000, content="random", faults=[fault])
