"""Remote partial reads: STFs sampled where they live, over XRootD and HTTP (the servers
scripts/services.sh starts over one data directory), reading only the sampled byte ranges, with
sizes and Adler-32 equal to a local read of the same files; the URL rules; a server that is
away; a server that answers one range at a time, and the bearer token."""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import StfFile, TfSample
from fastmon.sampling.reading import read_tf_ranges
from fastmon.sampling.roots import parse_remote
from fastmon.sampling.service import sample_stfs
from fastmon.sampling.spans import byte_spans
from fastmon.simulator.files import write_stf_file
from fastmon.testing.messages import example
from tests.conftest import require_service

SIZE = 8 * 1024 * 1024


# -- the URL rules (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("root://Door.example:1094//data/stf/a.stf", "root://door.example:1094//data/stf/a.stf"),
    ("root://door.example//data/stf/a.stf", "root://door.example:1094//data/stf/a.stf"),
    ("davs://dav.example/rucio/a.stf", "https://dav.example:443/rucio/a.stf"),
    ("http://dav.example:8000/a/./b//c.stf", "http://dav.example:8000/a/b/c.stf"),
    ("https://dav.example/%61.stf", "https://dav.example:443/a.stf"),
])  # fmt: skip
def test_remote_urls_are_normalised(url: str, expected: str) -> None:
    assert str(parse_remote(url)) == expected


@pytest.mark.parametrize("url", [
    "root://user:secret@door.example//a.stf", "http://dav.example/a/../../etc/passwd",
    "https://dav.example/a/%2e%2e/b.stf", "root:///no-host.stf",
])  # fmt: skip
def test_remote_urls_that_are_never_read(url: str) -> None:
    with pytest.raises(ValueError):
        parse_remote(url)


def test_containment_is_by_scheme_host_port_and_whole_path_segments() -> None:
    root = parse_remote("root://door.example:1094//data/stf/")
    assert root.contains(parse_remote("root://door.example//data/stf/run1/a.stf"))
    for outside in [
        "root://door.example//data/stf2/a.stf",
        "root://other.example//data/stf/a",
        "root://door.example:1095//data/stf/a",
        "https://door.example/data/stf/a",
    ]:
        assert not root.contains(parse_remote(outside)), outside
    assert parse_remote("file:///data/stf/a.stf") is None  # local: the local rules apply


# -- the real servers -----------------------------------------------------------------------------


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A directory of the test's own inside what XRootD and nginx serve."""
    require_service("nginx", "127.0.0.1", 8088)
    base = Path(settings.REMOTE_DATA_DIR)
    if not base.is_dir():
        pytest.fail(f"{base} is missing: start it with `scripts/services.sh up`", pytrace=False)
    directory = base / f"test-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    yield directory
    shutil.rmtree(directory)


def announce(run: int, n: int, file_url: str) -> str:
    name = f"swf.{run}.{n:06d}.stf"
    ingest_message(json.dumps(example("stf_ready", run_id=run, filename=name, sequence=n,
                                      file_url=file_url, size_bytes=SIZE)))  # fmt: skip
    return name


def log_lines(path: str) -> int:
    return len(Path(path).read_text(errors="replace").splitlines()) if Path(path).exists() else 0


@pytest.mark.django_db
def test_samples_over_xrootd_and_http_equal_local_reads_of_only_the_sampled_ranges(
    data_dir: Path,
) -> None:
    files = []
    for n in (1, 2, 3):
        path = data_dir / f"stf-{n}.stf"
        write_stf_file(path, SIZE, seed=n)
        files.append(path)
    relative = data_dir.name
    xrootd = f"{settings.XROOTD_URL}/{relative}/"
    http = f"{settings.HTTP_DATA_URL}{relative}/"
    xrootd_seen, http_seen = log_lines(settings.XROOTD_LOG), log_lines(settings.HTTP_LOG)
    names = {}
    for n, path in enumerate(files, 1):
        names[announce(100801, n, f"{xrootd}{path.name}")] = path
        names[announce(100802, n, f"{http}{path.name}")] = path

    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [xrootd, http]}):
        report = sample_stfs(list(names))
    assert report.sampled == 6 and report.samples == 42

    for stf in StfFile.objects.order_by("stf_filename"):
        samples = list(stf.tf_samples.order_by("tf_first"))
        assert not any(s.size_estimated for s in samples), samples[0].metadata
        ranges = [(s.tf_first, s.tf_last) for s in samples]
        local, read = read_tf_ranges(names[stf.stf_filename], 1000, ranges)
        assert [(s.file_size_bytes, s.checksum) for s in samples] == [
            (m.size_bytes, m.checksum) for m in local]  # fmt: skip
        assert stf.bytes_read == read < stf.file_bytes == SIZE  # a partial read
        assert stf.read_protocol == ("root" if stf.run.run_number == 100801 else "http")

    # What the servers were asked for: the sampled spans, nothing else.
    wanted: dict[str, set[tuple[str, int, int]]] = {"root": set(), "http": set()}
    for stf in StfFile.objects.all():
        ranges = [(s.tf_first, s.tf_last) for s in stf.tf_samples.all()]
        wanted[stf.read_protocol] |= {
            (names[stf.stf_filename].name, start, end)
            for start, end in byte_spans(1000, ranges, None, SIZE)
        }
    http_asked = set()
    for line in Path(settings.HTTP_LOG).read_text().splitlines()[http_seen:]:
        if f"/{relative}/" in line and line.startswith("GET"):
            name = re.search(r"/([^/ ]+\.stf) ", line)[1]
            for start, end in re.findall(r"(\d+)-(\d+)", line.split("range=bytes=")[1]):
                http_asked.add((name, int(start), int(end) + 1))
    assert http_asked == wanted["http"] and len(http_asked) == 21
    pieces = [
        (int(length), int(offset))
        for length, offset in re.findall(r"readV (\d+)@(\d+)",
                                         "\n".join(Path(settings.XROOTD_LOG).read_text(
                                             errors="replace").splitlines()[xrootd_seen:]))
    ]  # fmt: skip
    xrootd_bytes = sum(length for length, _ in pieces)
    assert xrootd_bytes == sum(s.bytes_read for s in StfFile.objects.filter(read_protocol="root"))
    spans = [(start, end) for _, start, end in wanted["root"]]
    assert all(any(start <= offset and offset + length <= end for start, end in spans)
               for length, offset in pieces)  # fmt: skip


@pytest.mark.django_db
def test_a_server_that_is_away_is_retried_then_gives_metadata_only_samples(caplog) -> None:
    closed = f"http://127.0.0.1:{_free_port()}/data/"
    name = announce(100803, 1, f"{closed}swf.100803.000001.stf")
    changes = {"DATA_ROOTS": [closed], "REMOTE_READ_RETRIES": 2, "RETRY_MIN_S": 0.01}
    with override_settings(FASTMON={**settings.FASTMON, **changes}):
        sample_stfs([name])
    samples = TfSample.objects.all()
    assert samples.count() == 7 and all(s.size_estimated for s in samples)
    reason = samples[0].metadata["estimated_because"]
    assert reason.startswith(f"{closed}swf.100803.000001.stf: HTTPError: ConnectError"), reason
    assert caplog.text.count("retry") == 2


@pytest.mark.django_db
def test_urls_outside_the_remote_roots_are_not_read() -> None:
    root = "http://127.0.0.1:8088/data/"
    names = [announce(100804, 1, "http://127.0.0.1:8088/other/x.stf"),
             announce(100804, 2, "http://127.0.0.1:8088/data/../etc/x.stf")]  # fmt: skip
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [root]}):
        sample_stfs(names)
    reasons = sorted({s.metadata["estimated_because"] for s in TfSample.objects.all()})
    assert reasons == [
        "http://127.0.0.1:8088/data/../etc/x.stf: BadURL: '..' and NUL are not allowed in a "
        "remote path",
        "http://127.0.0.1:8088/other/x.stf is outside the data roots",
    ]


class OneRangeServer(BaseHTTPRequestHandler):
    """A server that answers only the first range of a request, and records the headers."""

    root: Path
    seen: list[dict[str, str]] = []

    def do_HEAD(self) -> None:
        self.seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", str((self.root / self.path.lstrip("/")).stat().st_size))
        self.end_headers()

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        data = (self.root / self.path.lstrip("/")).read_bytes()
        start, end = map(int, re.match(r"bytes=(\d+)-(\d+)", self.headers["Range"]).groups())
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.django_db
def test_a_server_of_one_range_an_answer_and_the_bearer_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stf.stf"
    write_stf_file(path, SIZE, seed=7)
    OneRangeServer.root, OneRangeServer.seen = tmp_path, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneRangeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token_file = tmp_path / "token"
    token_file.write_text("wlcg-token\n")
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(token_file))
    root = f"http://127.0.0.1:{server.server_address[1]}/"
    name = announce(100805, 1, f"{root}stf.stf")
    try:
        with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [root]}):
            sample_stfs([name])
    finally:
        server.shutdown()
    samples = list(TfSample.objects.order_by("tf_first"))
    local, _ = read_tf_ranges(path, 1000, [(s.tf_first, s.tf_last) for s in samples])
    assert [(s.file_size_bytes, s.checksum) for s in samples] == [
        (m.size_bytes, m.checksum) for m in local]  # fmt: skip
    assert {h["Authorization"] for h in OneRangeServer.seen} == {"Bearer wlcg-token"}
    # One multi-range request answered with its first range, then one range a request.
    assert len(OneRangeServer.seen) == 1 + 1 + 6


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db
def test_the_simulator_announces_remote_urls_and_the_stf_page_shows_the_partial_read(
    data_dir: Path, client
) -> None:
    from fastmon.simulator.player import SimulationOptions, Simulator

    prefix = f"{settings.XROOTD_URL}/{data_dir.name}/"
    sent: list[dict] = []
    options = SimulationOptions(stfs_per_run=2, rate=1000, data_dir=data_dir, stf_size=SIZE,
                                url_prefix=prefix, first_run=100806)  # fmt: skip
    Simulator(options, lambda _, body: sent.append(json.loads(body))).run()
    ready = [body for body in sent if body["msg_type"] == "stf_ready"]
    assert [body["file_url"] for body in ready] == [
        f"{prefix}swf.100806.run/swf.100806.{n:06d}.stf" for n in (1, 2)]  # fmt: skip
    for body in sent:
        ingest_message(json.dumps(body))
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [prefix]}):
        sample_stfs([body["filename"] for body in ready])
    stf = StfFile.objects.get(stf_filename="swf.100806.000001.stf")
    assert stf.read_protocol == "root" and 0 < stf.bytes_read < SIZE
    scraped = client.get("/fastmon/metrics/").content.decode()
    assert re.search(r'fastmon_read_seconds_count\{protocol="root"\} [1-9]', scraped)
    assert re.search(r'fastmon_read_bytes_total\{protocol="root"\} [1-9]', scraped)
    page = client.get(f"/fastmon/stf/{stf.stf_filename}/").content.decode()
    shown = re.search(r'id="stf-read">([^<]+)<', page)[1]
    assert shown.startswith("1.") and " of 8.0\xa0MB (" in shown and "over root in" in shown
