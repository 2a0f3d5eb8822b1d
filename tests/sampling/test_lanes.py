"""Lanes: a server dripping its answers holds up only its own STFs. Through the broker to
run_fastmon, local STFs and another root's are sampled as promptly while it drips as before;
its STF ends by the deadline with metadata-only samples and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from fastmon.models import StfFile
from fastmon.testing.hostile_server import HostileServer
from fastmon.testing.messages import stf_name
from fastmon.testing.sampling import RUN, ThroughBroker
from fastmon.testing.waiting import wait_until

DEADLINE_S = 15.0


def latencies(sequences: range) -> list[float]:
    stfs = StfFile.objects.filter(stf_filename__in=[stf_name(RUN, n) for n in sequences])
    return [(stf.sampled_at - stf.received_at).total_seconds() for stf in stfs]


@pytest.mark.django_db(transaction=True)
def test_a_dripping_server_holds_up_neither_local_files_nor_another_root(
    through_broker: ThroughBroker, remote_data_dir: Path, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    nginx = f"{settings.HTTP_DATA_URL}{remote_data_dir.name}/"
    with HostileServer(tmp_path, "drip", drip_every=1.0) as drip:
        through_broker.start([str(local), nginx, drip.url], REMOTE_READ_DEADLINE_S=DEADLINE_S,
                             SAMPLING_POLL_S=0.2)  # fmt: skip
        through_broker.publish([through_broker.stf(tmp_path, 1, drip.url)])
        wait_until(lambda: drip.seen, 10, "the dripping server asked")
        # While its lane drips: another of its STFs (left waiting), local files, nginx's.
        others = [through_broker.stf(tmp_path, 2, drip.url)]
        others += [through_broker.stf(local, n, f"{local.as_uri()}/") for n in range(3, 8)]
        others += [through_broker.stf(remote_data_dir, n, nginx) for n in range(8, 13)]
        through_broker.publish(others)
        through_broker.wait_sampled(10, DEADLINE_S - 3)
        assert not StfFile.objects.filter(stf_filename__in=[stf_name(RUN, 1), stf_name(RUN, 2)],
                                          sampled_at__isnull=False)  # fmt: skip
        assert max(latencies(range(3, 13))) < DEADLINE_S - 5, latencies(range(3, 13))
        for n in range(3, 13):
            assert through_broker.outcome(n) == (StfFile.Status.SAMPLED, ""), n
        through_broker.wait_sampled(12, 2 * DEADLINE_S + 20)
    for n in (1, 2):
        assert through_broker.outcome(n) == (StfFile.Status.SAMPLED, (
            f"{drip.url}{stf_name(RUN, n)}: Deadline: not read within REMOTE_READ_DEADLINE_S "
            f"({DEADLINE_S:g}s)"))  # fmt: skip
    assert min(latencies(range(1, 3))) >= DEADLINE_S
