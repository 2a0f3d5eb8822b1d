"""Remote data roots: the URL rules, pure (the reads themselves: ``test_clients``)."""

from __future__ import annotations

import pytest

from fastmon.sampling.roots import parse_remote


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
