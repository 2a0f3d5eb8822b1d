"""Remote partial reads: STFs sampled where they live, over XRootD and HTTP (the servers
scripts/services.sh starts over one data directory), reading only the sampled byte ranges, with
sizes and Adler-32 equal to a local read of the same files; a server that is away; a server that
answers one range at a time, and the bearer token; hostile servers (wrong ranges, endless
multipart answers, redirects off the roots) through the broker to run_fastmon."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.content.etf1 import TRAILER
from fastmon.ingest.pipeline import ingest_message
from fastmon.models import StfFile, TfSample
from fastmon.sampling.reading import Unreachable, read_stf, read_tf_ranges
from fastmon.sampling.service import sample_stfs
from fastmon.sampling.spans import EQUAL, byte_spans
from fastmon.simulator.files import write_stf_file
from fastmon.testing.announcing import announce
from fastmon.testing.hostile_server import HostileServer
from fastmon.testing.messages import stf_name
from fastmon.testing.network import free_port
from fastmon.testing.sampling import OFFSETS, RUN, TFS, ThroughBroker

SIZE = 8 * 1024 * 1024


def log_lines(path: str) -> int:
    return len(Path(path).read_text(errors="replace").splitlines()) if Path(path).exists() else 0


@pytest.mark.django_db
def test_samples_over_xrootd_and_http_equal_local_reads_of_only_the_sampled_ranges(
    remote_data_dir: Path,
) -> None:
    files = []
    for n in (1, 2, 3):
        path = remote_data_dir / f"stf-{n}.stf"
        write_stf_file(path, SIZE, seed=n)
        files.append(path)
    relative = remote_data_dir.name
    xrootd = f"{settings.XROOTD_URL}/{relative}/"
    http = f"{settings.HTTP_DATA_URL}{relative}/"
    xrootd_seen, http_seen = log_lines(settings.XROOTD_LOG), log_lines(settings.HTTP_LOG)
    names = {}
    for n, path in enumerate(files, 1):
        for run, root in ((100801, xrootd), (100802, http)):
            [name] = announce("stf_ready", run, n, file_url=f"{root}{path.name}", size_bytes=SIZE)
            names[name] = path

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

    # What the servers were asked for: the sampled spans, and the trailer that says whether
    # the file has a TF index (these have none: equal shares), nothing else.
    wanted: dict[str, set[tuple[str, int, int]]] = {"root": set(), "http": set()}
    trailers = {(path.name, SIZE - TRAILER.size, SIZE) for path in files}
    for stf in StfFile.objects.all():
        ranges = [(s.tf_first, s.tf_last) for s in stf.tf_samples.all()]
        wanted[stf.read_protocol] |= {
            (names[stf.stf_filename].name, start, end)
            for start, end in byte_spans(1000, ranges, None, SIZE)
        }
    assert {s.tf_boundaries for s in TfSample.objects.all()} == {"equal"}
    http_asked = set()
    for line in Path(settings.HTTP_LOG).read_text().splitlines()[http_seen:]:
        if f"/{relative}/" in line and line.startswith("GET"):
            name = re.search(r"/([^/ ]+\.stf) ", line)[1]
            for start, end in re.findall(r"(\d+)-(\d+)", line.split("range=bytes=")[1]):
                http_asked.add((name, int(start), int(end) + 1))
    assert http_asked == wanted["http"] | trailers and len(http_asked) == 21 + 3
    pieces = [
        (int(length), int(offset))
        for length, offset in re.findall(r"readV (\d+)@(\d+)",
                                         "\n".join(Path(settings.XROOTD_LOG).read_text(
                                             errors="replace").splitlines()[xrootd_seen:]))
    ]  # fmt: skip
    xrootd_bytes = sum(length for length, _ in pieces)  # vector reads: the spans only
    assert xrootd_bytes == sum(s.bytes_read for s in StfFile.objects.filter(read_protocol="root"))
    spans = [(start, end) for _, start, end in wanted["root"]]
    assert all(any(start <= offset and offset + length <= end for start, end in spans)
               for length, offset in pieces)  # fmt: skip


@pytest.mark.django_db
def test_a_server_that_is_away_is_retried_then_gives_metadata_only_samples(caplog) -> None:
    closed = f"http://127.0.0.1:{free_port()}/data/"
    [name] = announce("stf_ready", 100803, 1, file_url=f"{closed}swf.100803.000001.stf",
                      size_bytes=SIZE)  # fmt: skip
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
    outside = ["http://127.0.0.1:8088/other/x.stf", "http://127.0.0.1:8088/data/../etc/x.stf"]
    names = [announce("stf_ready", 100804, n, file_url=url, size_bytes=SIZE)[0]
             for n, url in enumerate(outside, 1)]  # fmt: skip
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [root]}):
        sample_stfs(names)
    reasons = sorted({s.metadata["estimated_because"] for s in TfSample.objects.all()})
    assert reasons == [
        "http://127.0.0.1:8088/data/../etc/x.stf: BadURL: '..' is not allowed in a remote path",
        "http://127.0.0.1:8088/other/x.stf is outside the data roots",
    ]


@pytest.mark.parametrize(("host", "error"), [
    ("a\u200b.example", "InvalidURL: Invalid IDNA hostname"), ("xn--zz", "IDNAError"),
])  # fmt: skip
def test_a_url_httpx_refuses_is_a_reason_not_an_escape(host: str, error: str) -> None:
    root = f"http://{host}/data/"
    with pytest.raises(Unreachable, match=f"^http://{host}:80/data/x.stf: HTTPError: {error}"):
        read_stf(f"{root}x.stf", "x.stf", [root], 10, [(1, 1)], lambda size, read_at: EQUAL)


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
    [name] = announce("stf_ready", 100805, 1, file_url=f"{root}stf.stf", size_bytes=SIZE)
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
    # The trailer (no TF index here), one multi-range request answered with its first range,
    # then one range a request.
    assert len(OneRangeServer.seen) == 1 + 1 + 1 + 6


@pytest.mark.django_db
def test_the_simulator_announces_remote_urls_and_the_stf_page_shows_the_partial_read(
    remote_data_dir: Path, client
) -> None:
    from fastmon.simulator.player import SimulationOptions, Simulator

    prefix = f"{settings.XROOTD_URL}/{remote_data_dir.name}/"
    sent: list[dict] = []
    options = SimulationOptions(stfs_per_run=2, rate=1000, data_dir=remote_data_dir, stf_size=SIZE,
                                url_prefix=prefix, first_run=100806)  # fmt: skip
    Simulator(options, lambda _, body: sent.append(json.loads(body))).run()
    ready = [body for body in sent if body["msg_type"] == "stf_ready"]
    assert [body["file_url"] for body in ready] == [
        f"{prefix}swf.100806.run/{stf_name(100806, n)}" for n in (1, 2)]  # fmt: skip
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


@pytest.mark.django_db(transaction=True)
def test_a_wrong_range_and_an_endless_multipart_answer_end_the_read_at_once(
    through_broker: ThroughBroker, tmp_path: Path
) -> None:
    """Through the broker to run_fastmon: a 206 beside the range asked for is asked once, not
    again and again; a multipart answer that never delimits is given up within a few KiB, not
    buffered and searched without end; both STFs get metadata-only samples with the reason."""
    with (
        HostileServer(tmp_path, "wrong-range") as wrong,
        HostileServer(tmp_path, "endless-multipart") as endless,
    ):
        through_broker.start([wrong.url, endless.url])
        began = time.monotonic()
        through_broker.publish([through_broker.stf(tmp_path, 1, wrong.url),
                                through_broker.stf(tmp_path, 2, endless.url)])  # fmt: skip
        through_broker.wait_sampled(2, 30)
        seconds = time.monotonic() - began
    status, reason = through_broker.outcome(1)
    assert status == StfFile.Status.SAMPLED
    assert re.fullmatch(
        rf"{re.escape(wrong.url + stf_name(RUN, 1))}: WrongRange: the server "
        r"answered bytes \d+-\d+, not a range asked for",
        reason,
    ), reason
    assert len(wrong.asked("GET")) == 1
    status, reason = through_broker.outcome(2)
    assert status == StfFile.Status.SAMPLED
    assert reason == f"{endless.url}{stf_name(RUN, 2)}: BadMultipart: no b'--fastmon-hostile' " \
        "within 8192 bytes of a multipart answer"  # fmt: skip
    assert len(endless.asked("GET")) == 1 and seconds < 20


@pytest.mark.django_db(transaction=True)
def test_redirects_are_followed_only_under_the_roots(
    through_broker: ThroughBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the broker to run_fastmon: a door's redirect to a pool its root names is read
    there, the token with it; a redirect to another host, or to a path of the same host outside
    the root, is not followed, and the place it names is never asked (nor given the token); a
    loop ends after a few redirects; each with a reason, none failed."""
    monkeypatch.setenv("BEARER_TOKEN", "fastmon-token")
    pool, elsewhere = tmp_path / "pool", tmp_path / "elsewhere"
    with (
        HostileServer(pool, "honest") as pool_server,
        HostileServer(tmp_path, "honest") as off_host,
        HostileServer(tmp_path, "redirect", redirect_to=pool_server.url) as door,
        HostileServer(tmp_path, "redirect", redirect_to=off_host.url) as to_off_host,
        HostileServer(tmp_path, "redirect") as same_host,
        HostileServer(tmp_path, "redirect") as loop_a,
        HostileServer(tmp_path, "redirect", redirect_to=loop_a.url) as loop_b,
    ):
        same_host.redirect_to = f"{same_host.url}elsewhere/"
        loop_a.redirect_to = loop_b.url
        roots = [f"{door.url}data/", pool_server.url, f"{to_off_host.url}data/",
                 f"{same_host.url}data/", f"{loop_a.url}data/", loop_b.url]  # fmt: skip
        (pool / "data").mkdir(parents=True)
        (elsewhere / "data").mkdir(parents=True)
        bodies = [through_broker.stf(pool / "data", 1, f"{door.url}data/"),
                  through_broker.stf(tmp_path, 2, f"{to_off_host.url}data/"),
                  through_broker.stf(elsewhere / "data", 3, f"{same_host.url}data/"),
                  through_broker.stf(tmp_path, 4, f"{loop_a.url}data/")]  # fmt: skip
        through_broker.start(roots)
        through_broker.publish(bodies)
        through_broker.wait_sampled(4, 60)

    assert through_broker.outcome(1) == (StfFile.Status.SAMPLED, "")
    samples = TfSample.objects.filter(stf__stf_filename=stf_name(RUN, 1)).order_by("tf_first")
    local, _ = read_tf_ranges(pool / "data" / stf_name(RUN, 1), TFS,
                              [(s.tf_first, s.tf_last) for s in samples], OFFSETS)  # fmt: skip
    assert [s.checksum for s in samples] == [m.checksum for m in local]
    assert {seen.headers["authorization"] for seen in pool_server.seen} == {"Bearer fastmon-token"}
    for sequence, server in ((2, to_off_host), (3, same_host)):
        url = f"{server.url}data/{stf_name(RUN, sequence)}"
        assert through_broker.outcome(sequence) == (
            StfFile.Status.SAMPLED,
            f"{url}: Redirect: redirected off the data roots: not followed",
        )
        assert all(seen.path.startswith("/data/") for seen in server.seen)
    assert off_host.seen == []
    assert through_broker.outcome(4) == (
        StfFile.Status.SAMPLED, f"{loop_a.url}data/{stf_name(RUN, 4)}: TooManyRedirects: more "
        "than 5 redirects")  # fmt: skip
