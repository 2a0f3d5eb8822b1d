"""The reliability benchmark's rounds of a hostile data server and of a start_run flood (see
benchmarks/reliability.py, which runs them: ``--hostile N``, ``--flood N``)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from benchmarks.consume import fill_queue
from benchmarks.harness import RunFastmon, query

HOSTILE_MODES = ("drip", "wrong-range", "endless-multipart", "redirect")
HOSTILE_STFS, HOSTILE_DEADLINE_S, HOSTILE_STF_BYTES, TFS = 3, 10.0, 256 * 1024, 10
LOCAL_FROM, NGINX_FROM = 1001, 2001  # the others' sequence numbers; the hostile STFs' below


def hostile_round(count: int) -> None:
    """``count`` local STFs and ``count`` over nginx, published at 20 a second to run_fastmon
    sampling on its own, alone and then beside one hostile server of each HOSTILE_MODES (a drip
    of a byte a second, a wrong range, an endless multipart answer, a redirect off the roots),
    each serving HOSTILE_STFS STFs published first. The others' latencies should not move."""
    from django.conf import settings

    from fastmon.conf import fastmon_settings
    from fastmon.models import StfFile
    from fastmon.simulator.files import write_stf_file
    from fastmon.testing.broker import broker_login, publish
    from fastmon.testing.hostile_server import HostileServer
    from fastmon.testing.messages import stf_body, stf_name

    tag = uuid.uuid4().hex[:6]
    local, remote = Path(f"/tmp/fastmon-reliability-{tag}"), Path(settings.REMOTE_DATA_DIR) / tag
    nginx, destination = f"{settings.HTTP_DATA_URL}{tag}/", f"/queue/fastmon.reliability.{tag}"
    offsets = [n * HOSTILE_STF_BYTES // TFS for n in range(TFS + 1)]

    def stfs(run: int, first: int, many: int, directory: Path, url: str | None) -> list[str]:
        """STFs written in ``directory``, announced under ``url`` (None: as local files)."""
        bodies = []
        for n in range(first, first + many):
            write_stf_file(path := directory / stf_name(run, n), HOSTILE_STF_BYTES, seed=n)
            bodies.append(stf_body("stf_ready", run, n, size_bytes=HOSTILE_STF_BYTES,
                                   file_url=path.as_uri() if url is None else url + path.name,
                                   tf_count=TFS, tf_offsets=offsets))  # fmt: skip
        return bodies

    def p50_p99(stfs: list[StfFile], since: str, until: str) -> str:
        taken = [(getattr(s, until) - getattr(s, since)).total_seconds() for s in stfs]
        return f"{statistics.median(taken):8.3f} {statistics.quantiles(taken, n=100)[98]:7.3f}"

    with ExitStack() as stack:
        for directory in (local, remote):
            directory.mkdir()
            stack.callback(shutil.rmtree, directory)
        off_host = stack.enter_context(HostileServer(local, "honest"))
        servers = [stack.enter_context(HostileServer(local, mode, drip_every=1.0,
                   redirect_to=off_host.url)) for mode in HOSTILE_MODES]  # fmt: skip
        consumer = RunFastmon(destination)
        consumer.changes.update(SAMPLING_ENABLED=True, SAMPLING_WORKERS="run_fastmon",
                                DATA_ROOTS=[str(local), nginx, *(s.url for s in servers)],
                                REMOTE_READ_DEADLINE_S=HOSTILE_DEADLINE_S,
                                SAMPLING_POLL_S=0.2)  # fmt: skip
        consumer.start()
        login, address = broker_login(), fastmon_settings.BROKER_HOSTS[0]
        print(f"\n{'lane':6s} {'phase':15s} {'STFs':>5s} {'ingest p50':>10s} {'p99':>7s} "
              f"{'sampling p50':>12s} {'p99':>7s}")  # fmt: skip
        for phase, run, hostile in (("alone", 100901, []), ("beside hostile", 100902, servers)):
            publish(address, login, destination, [body for n, server in enumerate(hostile, 1)
                    for body in stfs(run, 100 * n, HOSTILE_STFS, local, server.url)])  # fmt: skip
            lanes = (stfs(run, LOCAL_FROM, count, local, None),
                     stfs(run, NGINX_FROM, count, remote, nginx))  # fmt: skip
            others = [body for pair in zip(*lanes, strict=True) for body in pair]
            for at in range(0, len(others), 10):
                publish(address, login, destination, others[at : at + 10])
                time.sleep(0.5)
            done = StfFile.objects.filter(run__run_number=run, sequence__gte=LOCAL_FROM,
                                          sampled_at__isnull=False)  # fmt: skip
            while query(done.count) < 2 * count:
                consumer.check()
                time.sleep(0.5)
            for lane, first in (("local", LOCAL_FROM), ("nginx", NGINX_FROM)):
                rows = list(done.filter(sequence__gte=first, sequence__lt=first + count))
                print(f"{lane:6s} {phase:15s} {len(rows):5d} "
                      f"{p50_p99(rows, 'broker_at', 'committed_at')} "
                      f"{p50_p99(rows, 'committed_at', 'sampled_at')}", flush=True)  # fmt: skip
        hostile_stfs = StfFile.objects.filter(run__run_number=100902, sequence__lt=LOCAL_FROM)
        give_up = time.monotonic() + 2 * HOSTILE_STFS * HOSTILE_DEADLINE_S + 60
        while hostile_stfs.filter(sampled_at__isnull=True).exists() and time.monotonic() < give_up:
            time.sleep(1)
        consumer.stop()
    samples = [(stf.status, stf.tf_samples.first()) for stf in hostile_stfs]
    reasons = [(status, sample.metadata.get("estimated_because", "-: read").split(": ")[1]
                if sample else "-") for status, sample in samples]  # fmt: skip
    print(f"hostile STFs: {dict(Counter(reasons))}; the off-host server asked "
          f"{len(off_host.seen)} times; run_fastmon crashed {consumer.crashed} times")  # fmt: skip


FLOOD_FROM = 200_000  # the flood's first run number


def flood_round(runs: int, count: int) -> None:
    """Ingest of ``count`` STFs of one run with the default checks ticked every second (five
    times the default), with and without ``runs`` running runs that never send one (their
    absence alarms raised first), and the CPU run_fastmon's main process (the ticker's, not
    ingest's) takes meanwhile; how long a tick takes here, its queries included; then the
    alarm messages of the flood, raised and cleared by its end_runs. Each drain starts with the
    STFs queued."""
    from itertools import pairwise

    from fastmon.conf import DEFAULTS, fastmon_settings
    from fastmon.models import Alarm, OutboxMessage, Run, StfFile
    from fastmon.quality.evaluate import on_tick
    from fastmon.testing.broker import broker_login, publish
    from fastmon.testing.messages import example

    destination = f"/queue/fastmon.reliability.{uuid.uuid4().hex[:8]}"
    consumer = RunFastmon(destination)
    absence = {"class": "fastmon.quality.builtin.StfAbsence", "max_silence_s": 5}
    checks = [absence if c["class"] == absence["class"] else c for c in DEFAULTS["CHECKS"]]
    consumer.changes.update(CHECKS=checks, CHECK_INTERVAL_S=1.0, CHECK_GRACE_S=0)
    address, login = fastmon_settings.BROKER_HOSTS[0], broker_login()
    flood = range(FLOOD_FROM, FLOOD_FROM + runs)
    alarmed = Alarm.objects.filter(run__run_number__gte=FLOOD_FROM)

    def drain(phase: str) -> None:
        names = fill_queue(destination, count)
        consumer.start()
        while not StfFile.objects.filter(stf_filename=names[0]).exists():
            time.sleep(0.05)
        cpu = cpu_seconds(consumer)
        while not StfFile.objects.filter(stf_filename=names[-1]).exists():
            time.sleep(0.2)
        cpu = cpu_seconds(consumer) - cpu
        stored = StfFile.objects.filter(run__run_number=int(names[0].split(".")[1]))
        while stored.count() < count:
            time.sleep(0.2)
        stamps = sorted(set(stored.values_list("committed_at", flat=True)))
        gaps = [(b - a).total_seconds() for a, b in pairwise(stamps)]
        span = (stamps[-1] - stamps[0]).total_seconds()
        print(f"{phase:26s} {count / span:6.0f} STF/s, longest stall {max(gaps):4.2f} s, "
              f"main process CPU {cpu / span:4.0%}", flush=True)  # fmt: skip
        consumer.stop()

    drain("ingest alone")
    consumer.start()
    publish(address, login, destination,
            [json.dumps(example("start_run", run_id=run)) for run in flood])  # fmt: skip
    while alarmed.count() < min(runs, fastmon_settings.CHECK_TICK_MAX_RUNS):
        time.sleep(0.5)
    consumer.stop()
    took = []
    for _ in range(3):
        begin = time.perf_counter()
        on_tick()
        took.append(time.perf_counter() - begin)
    print(f"a tick with {runs} runs running takes {statistics.median(took):.2f} s", flush=True)
    drain(f"ingest beside {runs} runs")
    before = OutboxMessage.objects.filter(msg_type="fastmon_alarm").count()
    consumer.start()
    ended = [example("end_run", run_id=run, total_stf_files=0) for run in flood]
    publish(address, login, destination, map(json.dumps, ended))
    while Run.objects.filter(state="run", run_number__gte=FLOOD_FROM).exists():
        time.sleep(0.5)
    consumer.stop()
    bodies = OutboxMessage.objects.filter(msg_type="fastmon_alarm").values_list("body", flat=True)
    actions = Counter(json.loads(body)["action"] for body in bodies)
    print(f"{alarmed.count()} alarms of the flood, {alarmed.filter(cleared_at=None).count()} "
          f"left open; fastmon_alarm messages: {actions['raise']} raising, {actions['clear']} "
          f"clearing, {len(bodies) - before} of them at the end_runs; run_fastmon crashed "
          f"{consumer.crashed} times")  # fmt: skip


def cpu_seconds(consumer: RunFastmon) -> float:
    """User and system CPU of run_fastmon's main process (not its ingest child) so far."""
    assert consumer.process is not None
    fields = Path(f"/proc/{consumer.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
