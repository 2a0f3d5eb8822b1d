"""Reliability figures on demand: the faults the tests cover, at scale, on the real services.

    .venv/bin/python benchmarks/reliability.py [--announcements 10000] [--kills 5] [--fuzz 100000]
    .venv/bin/python benchmarks/reliability.py --hostile 100
    .venv/bin/python benchmarks/reliability.py --flood 3000 [--announcements 10000]

Needs the services (`scripts/services.sh up`); restarts its ActiveMQ and PostgreSQL on the way.
Uses its own database, fastmon_bench, created afresh. Each fault gets a fresh run of persistent
stf_gen announcements on a queue of its own, drained by `manage.py run_fastmon` (sampling off:
the figures are ingest's):

- SIGKILL: run_fastmon killed ``--kills`` times while it drains, restarted each time;
- broker restart: ActiveMQ stopped and started while run_fastmon drains;
- database restart: PostgreSQL restarted (fast shutdown) while run_fastmon drains;
- fuzz: ``--fuzz`` bodies mutated from the spec's examples (fields set to hostile values,
  dropped or added; bytes flipped, cut or inserted), through the ingest pipeline in batches.

``--hostile N`` runs the hostile-server round alone (``hostile_round``): N local STFs and N read
over nginx, sampled by run_fastmon's own sampler, first alone, then beside hostile data servers
(``fastmon.testing.hostile_server``) serving STFs of their own; it prints the others' ingest and
sampling latencies, p50 and p99, alone and beside them, and what became of the hostile STFs.

``--flood RUNS`` runs the start_run-flood round alone (``flood_round``): ``--announcements``
STFs of one run drained by run_fastmon, then again while RUNS runs announced with no STF are
ticked, then the RUNS end_runs; it prints the ingest rate and longest stall both ways, and the
alarm messages the flood's alarms went out in.

Prints one row per fault: announcements stored, lost (sent, not stored), duplicated (an STF
announced to the live pages twice), dead-lettered (of them fastmon's own failures, "internal")
and crashed (a run_fastmon exiting on its own or with a traceback; an exception out of
ingest). Target: 0 lost, 0 duplicated, 0 crashed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

from benchmarks.consume import fill_queue, recreate_database
from benchmarks.harness import ROOT, RunFastmon, query
from benchmarks.reliability_rounds import flood_round, hostile_round

STALL_S = 60  # no new row for this long: the drain is over, whatever is missing is lost
FUZZ_BATCH = 100
HOSTILE = [None, -1, 0, 2**70, 1.5, True, "", "x" * 300, [], {}, "../../etc/passwd",
           "swf.1.2\u202e.stf", "NaN", "2026-13-45T99:99:99", "\x00"]  # fmt: skip


@dataclass
class Figures:
    fault: str
    sent: int
    stored: int = 0
    accounted: int | None = None  # bodies with an outcome, when not all are stored (fuzz)
    duplicated: int | str = 0
    dead_lettered: int = 0
    internal: int = 0
    crashed: int = 0
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - (self.stored if self.accounted is None else self.accounted)


def drain(name: str, count: int, faults: Callable[[RunFastmon, int], None]) -> Figures:
    """Queue ``count`` announcements, drain them with run_fastmon while ``faults`` strikes, and
    count what arrived."""
    from fastmon.models import DeadLetter, LiveEvent, StfFile

    destination = f"/queue/fastmon.reliability.{uuid.uuid4().hex[:8]}"
    names = fill_queue(destination, count)
    run = int(names[0].split(".")[1])
    letters = query(DeadLetter.objects.count)

    def stored() -> int:
        return query(StfFile.objects.filter(run__run_number=run).count)

    consumer = RunFastmon(destination)
    begin = time.perf_counter()
    consumer.start()
    faults(consumer, count)
    last, progress = -1, time.monotonic()
    while (now := stored()) < count and time.monotonic() - progress < STALL_S:
        consumer.check()
        if now != last:
            last, progress = now, time.monotonic()
        time.sleep(0.2)
    seconds = time.perf_counter() - begin
    consumer.stop()
    mentions = Counter(
        stf["stf_filename"]
        for payload in LiveEvent.objects.filter(kind="stf", run_number=run).values_list(
            "payload", flat=True
        )
        for stf in payload["stfs"]
    )
    return Figures(
        name, count, stored(), duplicated=sum(n - 1 for n in mentions.values()),
        dead_lettered=DeadLetter.objects.count() - letters, crashed=consumer.crashed,
        seconds=seconds,
    )  # fmt: skip


def when_stored(share: float, count: int) -> None:
    """Wait until this share of ``count`` more announcements is stored."""
    from fastmon.models import StfFile

    start = query(StfFile.objects.count)
    while query(StfFile.objects.count) - start < share * count:
        time.sleep(0.01)


def struck(what: str) -> None:
    """Say how far the drain was when a fault struck (rows of all faults so far: each fault
    adds its run of announcements): proof it struck mid-stream."""
    from fastmon.models import StfFile

    print(f"  {what} with {query(StfFile.objects.count)} rows stored", flush=True)


def kills(times: int) -> Callable[[RunFastmon, int], None]:
    def strike(consumer: RunFastmon, count: int) -> None:
        for _ in range(times):
            when_stored(random.uniform(0.02, 0.6 / times), count)
            consumer.kill()
            struck("killed")
            consumer.start()

    return strike


def restart(service: str) -> Callable[[RunFastmon, int], None]:
    def strike(consumer: RunFastmon, count: int) -> None:
        when_stored(0.3, count)
        struck(f"{service} began")
        subprocess.run([str(ROOT / "scripts" / "services.sh"), service], check=True,
                       capture_output=True, timeout=180)  # fmt: skip
        struck(f"{service} done")

    return strike


def fuzzed_bodies(count: int, seed: int) -> Iterator[bytes]:
    """Bodies mutated from the spec's examples, at the JSON level or the byte level."""
    from fastmon.testing.messages import example, example_names

    rng = random.Random(seed)
    examples = [example(name) for name in example_names()]
    for _ in range(count):
        body = dict(rng.choice(examples))
        if rng.random() < 0.6:
            for _ in range(rng.randint(1, 3)):
                key = rng.choice([*body, "extra"]) if body else "msg_type"
                if rng.random() < 0.2:
                    body.pop(key, None)
                else:
                    body[key] = rng.choice(HOSTILE)
            yield json.dumps(body).encode()
            continue
        raw = bytearray(json.dumps(body).encode())
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(raw))
            mutation = rng.randrange(3)
            if mutation == 0:
                raw[at] = rng.randrange(256)
            elif mutation == 1:
                del raw[at:]
                raw = raw or bytearray(b"{")
            else:
                raw[at:at] = rng.randbytes(rng.randint(1, 8))
        yield bytes(raw)


def fuzz(count: int, seed: int) -> Figures:
    from fastmon.inbound.messages import InboundMessage, Outcome
    from fastmon.ingest.pipeline import ingest_batch
    from fastmon.models import DeadLetter

    headers = {"destination": "/topic/epictopic", "persistent": "true"}
    logging.getLogger("fastmon.ingest").setLevel(logging.ERROR)  # a warning per dead letter
    figures = Figures(f"fuzz ({count} bodies)", count, duplicated="n/a")
    outcomes: Counter[str] = Counter()
    bodies = list(fuzzed_bodies(count, seed))
    begin = time.perf_counter()
    for start in range(0, count, FUZZ_BATCH):
        batch = [InboundMessage(body, headers) for body in bodies[start : start + FUZZ_BATCH]]
        try:
            outcomes.update(result.outcome for result in ingest_batch(batch).results)
        except Exception as exc:  # ingest promises to raise only for an outage
            figures.crashed += 1
            print(f"  ingest raised on batch {start // FUZZ_BATCH}: {exc!r}", flush=True)
    figures.seconds = time.perf_counter() - begin
    # Every body has an outcome: stored, ignored (a type fastmon does not consume), filtered
    # (another namespace) or dead-lettered; a body without one is lost.
    figures.stored = outcomes[Outcome.STORED]
    figures.accounted = sum(outcomes.values())
    figures.dead_lettered = outcomes[Outcome.DEAD_LETTERED]
    figures.internal = DeadLetter.objects.filter(reason_code="internal").count()
    print(f"  fuzz outcomes: {dict(outcomes)}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--announcements", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--fuzz", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hostile", type=int, default=0, metavar="STFS",
                        help="run the hostile-server round alone, STFS STFs a lane")  # fmt: skip
    parser.add_argument("--flood", type=int, default=0, metavar="RUNS",
                        help="run the start_run-flood round alone, with RUNS runs")  # fmt: skip
    args = parser.parse_args()
    random.seed(args.seed)

    recreate_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.hostile:
        hostile_round(args.hostile)
        return
    if args.flood:
        flood_round(args.flood, args.announcements)
        return
    count = args.announcements
    faults = [
        (f"SIGKILL x{args.kills}", kills(args.kills)),
        ("broker restart", restart("restart-broker")),
        ("database restart", restart("restart-db")),
    ]
    rows = []
    for name, strike in faults:
        print(f"{name}: {count} announcements ...", flush=True)
        rows.append(drain(name, count, strike))
    print(f"fuzz: {args.fuzz} bodies ...", flush=True)
    rows.append(fuzz(args.fuzz, args.seed))

    print(f"\n{'fault':24s} {'sent':>7s} {'stored':>7s} {'lost':>5s} {'dup':>5s} "
          f"{'dead-lettered':>13s} {'internal':>8s} {'crashed':>7s} {'seconds':>8s}")  # fmt: skip
    for row in rows:
        print(f"{row.fault:24s} {row.sent:7d} {row.stored:7d} {row.lost:5d} "
              f"{row.duplicated!s:>5s} {row.dead_lettered:13d} {row.internal:8d} "
              f"{row.crashed:7d} {row.seconds:8.1f}")  # fmt: skip
    bad = [row.fault for row in rows if row.lost or row.crashed or row.internal
           or row.duplicated not in (0, "n/a")]  # fmt: skip
    print("target (0 lost, 0 duplicated, 0 crashed):", "met" if not bad else f"missed: {bad}")


if __name__ == "__main__":
    main()
