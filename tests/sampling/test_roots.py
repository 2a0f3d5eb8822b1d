"""Remote data roots: the URL rules, pure, and URLs that would escape a root sent through the
broker to run_fastmon (the reads themselves: ``test_clients``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from fastmon.models import StfFile, TfSample
from fastmon.sampling.reading import read_tf_ranges
from fastmon.sampling.roots import parse_remote
from fastmon.testing.hostile_server import HostileServer
from fastmon.testing.messages import stf_name
from fastmon.testing.sampling import OFFSETS, RUN, TFS, ThroughBroker


@pytest.mark.parametrize(("url", "expected"), [
    ("root://Door.example:1094//data/stf/a.stf", "root://door.example:1094//data/stf/a.stf"),
    ("root://door.example//data/stf/a.stf", "root://door.example:1094//data/stf/a.stf"),
    ("davs://dav.example/rucio/a.stf", "https://dav.example:443/rucio/a.stf"),
    ("http://dav.example:8000/a/./b//c.stf", "http://dav.example:8000/a/b/c.stf"),
    ("https://dav.example/%61.stf", "https://dav.example:443/a.stf"),
    # IPv6 literals keep their brackets; a name is asked for percent-encoded over HTTP, as it
    # is over XRootD (which decodes nothing): both servers then see the same name.
    ("http://[::1]:8088/stf/a.stf", "http://[::1]:8088/stf/a.stf"),
    ("root://[FD00::2]//stf/a.stf", "root://[fd00::2]:1094//stf/a.stf"),
    ("http://dav.example/run%201/%2541.stf", "http://dav.example:80/run%201/%2541.stf"),
    ("root://door.example//run%201/%2541.stf", "root://door.example:1094//run 1/%41.stf"),
    ("https://dav.example/a.stf?query#fragment", "https://dav.example:443/a.stf"),
])  # fmt: skip
def test_remote_urls_are_normalised(url: str, expected: str) -> None:
    assert str(parse_remote(url)) == expected


@pytest.mark.parametrize("url", [
    "root://user:secret@door.example//a.stf", "http://dav.example/a/../../etc/passwd",
    "https://dav.example/a/%2e%2e/b.stf", "root:///no-host.stf",
    # Whatever decoding, once or again, makes a separator, a dot segment, a query, a fragment
    # or a control character of: escapes from the root and smuggled options, for both schemes.
    "http://dav.example/root/%252e%252e/x.stf", "http://dav.example/root/..%252f/x.stf",
    "root://door.example//root/%25252e%25252e/x.stf", "http://dav.example/root/%2e/x.stf",
    "http://dav.example/root/..%2fx.stf", "http://dav.example/root/..%5cx.stf",
    "root://door.example//root/x.stf%3Fxrd.wantprot=zzz", "http://dav.example/root/x%23y.stf",
    "http://dav.example/root/x%253Fy.stf", "http://dav.example/root/%0d%0aX-Evil:%201",
    "http://dav.example/root/x%00.stf", "http://dav.example/root/x\r\n.stf",
    "http://dav.example/root/..;/x.stf", "http://dav.example/root/%2e%2e%3bx/y.stf",
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
    assert parse_remote("http://[::1]:8088/data/").contains(
        parse_remote("http://[::1]:8088/data/a")
    )


@pytest.mark.django_db(transaction=True)
def test_encoded_escapes_are_never_sent_and_ipv6_roots_are_read(
    through_broker: ThroughBroker, remote_data_dir: Path, tmp_path: Path
) -> None:
    """Through the broker to run_fastmon: files outside the root that nginx would serve once a
    double encoding is decoded, XRootD options smuggled in an encoded '?', and a CR LF, all
    refused before any request (metadata-only samples with the reason, not failed STFs); a root
    at an IPv6 literal read like any other."""
    inner = remote_data_dir / "inner"
    inner.mkdir()
    http = f"{settings.HTTP_DATA_URL}{remote_data_dir.name}/inner/"
    xrootd = f"{settings.XROOTD_URL}/{remote_data_dir.name}/inner/"
    seen = Path(settings.HTTP_LOG).read_text().count("\n")
    with HostileServer(tmp_path, "honest", host="::1") as ipv6:
        bodies = [
            through_broker.stf(remote_data_dir, 1, f"{http}%252e%252e/{stf_name(RUN, 1)}"),
            through_broker.stf(remote_data_dir, 2, f"{http}..%252f{stf_name(RUN, 2)}"),
            through_broker.stf(inner, 3, f"{xrootd}{stf_name(RUN, 3)}%3Fxrd.wantprot=zzz"),
            through_broker.stf(inner, 4, f"{http}{stf_name(RUN, 4)}%0d%0aX-Injected:%201"),
            through_broker.stf(tmp_path, 5, ipv6.url),
        ]
        through_broker.start([http, xrootd, ipv6.url])
        through_broker.publish(bodies)
        through_broker.wait_sampled(5, 60)
    for sequence in (1, 2, 3, 4):
        status, reason = through_broker.outcome(sequence)
        assert status == StfFile.Status.SAMPLED and ": BadURL: " in reason, (sequence, reason)
    assert "decodes to a separator, a dot segment, '?', '#'" in through_broker.outcome(1)[1]
    asked = Path(settings.HTTP_LOG).read_text().splitlines()[seen:]
    assert not [line for line in asked if remote_data_dir.name in line]  # nginx: nothing asked

    assert through_broker.outcome(5) == (StfFile.Status.SAMPLED, "")
    samples = TfSample.objects.filter(stf__stf_filename=stf_name(RUN, 5)).order_by("tf_first")
    local, _ = read_tf_ranges(tmp_path / stf_name(RUN, 5), TFS,
                              [(s.tf_first, s.tf_last) for s in samples], OFFSETS)  # fmt: skip
    assert [s.checksum for s in samples] == [m.checksum for m in local]
    assert StfFile.objects.get(stf_filename=stf_name(RUN, 5)).read_protocol == "http"
