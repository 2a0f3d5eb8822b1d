"""Content monitoring's cost: how fast one process decodes ETF1 bytes and fills the histograms,
beside a bare numpy pass over the same bytes, in one run.

    .venv/bin/python benchmarks/content.py [--tfs 1000] [--sample-tfs 21] [--rounds 7] [--sampling]

Needs no service. Builds a realistic STF in memory (numpy and ``etf1.encode_tf``): ``--tfs``
TFs of about ``--tf-kib`` KiB (64) each, every TF holding one block for each of the testbed map's
122 sources, hits shared unevenly among sources (multinomial over gamma weights) with a channel
profile that is not flat (mostly exponential from channel 0, some uniform, a few hot channels)
and a Landau-like ADC with some overflow. Then, as medians of ``--rounds`` alternated rounds of
CPU time (one worker's cost, whatever else the machine runs):

- the bare reference: ``np.frombuffer`` of the TF bytes as uint16 and ``np.bincount`` of the
  channel field of every 8-byte record (headers included: what a histogram of one field costs
  with no layout at all);
- decode, fill, and decode+fill (``Etf1Decoder.decode`` with the index's boundaries, then
  ``histograms.fill`` into one ``Content`` a round) of the whole STF as one batch; of batches the
  size of the testbed policy's samples (``--sample-tfs``, 7 partitions of about 15 %: 21 TFs of
  1000), 7 to a fill as sampling fills an STF's samples; and of one TF a decode call, an STF's
  sampled share (7 x 21) to a fill.

Prints MB/s (10^6 bytes) and hits/s for each, the ratio to the bare reference, and the issue's
targets: decode+fill >= 300 MB/s per worker and >= 0.5 of the bare reference.
``--sampling`` adds part 2 (needs PostgreSQL, `scripts/services.sh up`; its own database,
fastmon_bench): TF samples/s of one process running the sampling service over the simulator's
ETF1 STFs of 64 MiB at the testbed policy, with content on and off in alternated rounds, the
cost beside the issue's target (at most 30 %), and what merging a round's partials takes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("FASTMON_DB_NAME", "fastmon_bench")  # part 2's own database

import django  # noqa: E402

TARGET_RATE, TARGET_RATIO = 300e6, 0.5  # bytes/s per worker, fraction of the bare reference
MB = 1e6
MIB = 1024**2


def build_stf(tfs: int, tf_bytes: int, seed: int = 1) -> bytes:
    """An ETF1 file of ``tfs`` TFs of about ``tf_bytes`` each over the site's detector map."""
    from fastmon.content import etf1
    from fastmon.content.detectors import detector_map

    rng = np.random.default_rng(seed)
    detectors = detector_map()
    ids = np.array([s for d in detectors for s in range(d.first_source, d.last_source + 1)])
    channels = np.array([d.channels for d in detectors for _ in range(d.n_sources)])
    hits_per_tf = (tf_bytes - etf1.TF_HEADER.size - etf1.SOURCE_HEADER.size * len(ids)) // 8
    weights = rng.gamma(3.0, size=len(ids))
    counts = rng.multinomial(hits_per_tf, weights / weights.sum(), size=tfs)  # (tf, source)
    total = int(counts.sum())
    per_hit_channels = np.repeat(np.tile(channels, tfs), counts.ravel())
    # Channels: mostly falling from channel 0, a fifth flat, one in fifty on a few hot channels.
    falling = rng.exponential(0.15, total) * per_hit_channels
    flat = rng.random(total) * per_hit_channels
    hot = (rng.integers(0, 4, total) * 37 + 11) % per_hit_channels
    pick = rng.random(total)
    channel = np.where(pick < 0.78, falling, np.where(pick < 0.98, flat, hot))
    channel = np.minimum(channel.astype(np.int64), per_hit_channels - 1)
    hits = np.zeros(total, dtype=etf1.HIT)
    hits["channel"] = channel
    hits["bx"] = rng.integers(0, 1 << 16, total)
    adc = rng.gamma(2.0, 250.0, total) + rng.exponential(40.0, total)
    adc[rng.random(total) < 0.003] = 5000.0  # saturated: the overflow bin
    hits["adc"] = np.minimum(adc, 65535).astype(np.uint16)
    hits["flags"] = (rng.random(total) < 0.01).astype(np.uint16)
    ends = np.cumsum(counts.ravel())
    parts, at = [], 0
    for n in range(tfs):
        blocks = []
        for k, source in enumerate(ids.tolist()):
            end = int(ends[n * len(ids) + k])
            blocks.append((source, hits[at:end]))
            at = end
        parts.append(etf1.encode_tf(n, n * etf1.BX_PER_TF, blocks))
    return etf1.encode_stf(parts)


def bare_reference(tf_bytes: memoryview) -> np.ndarray:
    """A histogram of the channel field of every 8-byte record: no layout, no map."""
    words = np.frombuffer(tf_bytes, dtype=np.uint16, count=len(tf_bytes) // 8 * 4)
    return np.bincount(words[::4], minlength=1 << 16)


def timed(call: Callable[[], object]) -> float:
    """The CPU time ``call`` takes: one worker's cost, whatever else the machine runs."""
    begin = time.process_time()
    call()
    return time.process_time() - begin


def content_figures(args: argparse.Namespace) -> None:
    from fastmon.content.detectors import detector_map
    from fastmon.content.etf1 import Etf1Decoder, read_boundaries
    from fastmon.content.histograms import Content, fill

    begin = time.perf_counter()
    stf = build_stf(args.tfs, args.tf_kib * 1024)
    built = time.perf_counter() - begin
    boundaries = read_boundaries(lambda at, size: stf[at : at + size], len(stf))
    assert boundaries is not None
    region = memoryview(stf)[: boundaries[-1]]
    detectors, decoder = detector_map(), Etf1Decoder()
    hits = decoder.decode(region, args.tfs, boundaries, detectors).hits
    print(f"STF of {args.tfs} TFs, {len(region) / MB:.1f} MB of TFs ({len(stf) / 2**20:.1f} "
          f"MiB file), {hits:,} hits, over the testbed map's {sum(d.n_sources for d in detectors)}"
          f" sources (built in {built:.1f} s); medians of {args.rounds} rounds")  # fmt: skip

    def batches(size: int) -> list[tuple[memoryview, int, list[int]]]:
        out = []
        for first in range(0, args.tfs, size):
            last = min(first + size, args.tfs)
            base = boundaries[first]
            out.append((region[base : boundaries[last]], last - first,
                        [b - base for b in boundaries[first : last + 1]]))  # fmt: skip
        return out

    # Each mode's batches, and how many of them a fill takes: sampling fills an STF's samples
    # (7 partitions: 7 batches of about 21 TFs) in one (``content.task``).
    per_stf = 7 * args.sample_tfs
    modes = [("one batch of the STF", batches(args.tfs), 1),
             (f"testbed samples ({args.sample_tfs} TFs, 7 a fill)", batches(args.sample_tfs), 7),
             (f"one TF per call ({per_stf} a fill)", batches(1), per_stf)]  # fmt: skip

    def run(work: list[tuple[memoryview, int, list[int]]], group: int, do_fill: bool) -> None:
        content = Content()
        for first in range(0, len(work), group):
            decoded = [decoder.decode(data, count, bounds, detectors)
                       for data, count, bounds in work[first : first + group]]  # fmt: skip
            if do_fill:
                fill(content, decoded, detectors)

    def fill_only(work: list[tuple[memoryview, int, list[int]]], group: int) -> Callable[[], None]:
        decoded = [decoder.decode(data, count, bounds, detectors) for data, count, bounds in work]

        def go() -> None:
            content = Content()
            for first in range(0, len(decoded), group):
                fill(content, decoded[first : first + group], detectors)

        return go

    times: dict[str, list[float]] = {"bare": []}
    fills = {name: fill_only(work, group) for name, work, group in modes}
    for _ in range(args.rounds):
        times["bare"].append(timed(lambda: bare_reference(region)))
        for name, work, group in modes:
            calls = {"decode": partial(run, work, group, False), "fill": fills[name],
                     "both": partial(run, work, group, True)}  # fmt: skip
            for part, call in calls.items():
                times.setdefault(f"{name}/{part}", []).append(timed(call))
    del fills
    size = len(region)
    bare = statistics.median(times["bare"])
    print(
        f"{'bare numpy reference':42} {size / bare / MB:8.0f} MB/s {hits / bare / 1e6:7.1f} "
        f"M hits/s  ({bare * 1e3:.1f} ms: frombuffer + bincount of every record's channel)"
    )
    for name, _, _ in modes:
        decode, filling, both = (statistics.median(times[f"{name}/{part}"])
                                 for part in ("decode", "fill", "both"))  # fmt: skip
        print(f"{name:42} {size / both / MB:8.0f} MB/s {hits / both / 1e6:7.1f} M hits/s  "
              f"{bare / both:.2f} of the reference  (decode {decode * 1e3:.1f} ms, fill "
              f"{filling * 1e3:.1f} ms, both {both * 1e3:.1f} ms)")  # fmt: skip
    print(
        f"targets: decode+fill >= {TARGET_RATE / MB:.0f} MB/s per worker and >= "
        f"{TARGET_RATIO} of the bare reference"
    )


def sampling_figures(args: argparse.Namespace) -> None:
    """TF samples/s of one process running the sampling service (as a Celery worker or
    run_fastmon's sampler does) over ETF1 STFs of 64 MiB written by the simulator, with content
    on and off, alternated rounds on the same files (hard links: the page cache holds them)."""
    stfs, files, rounds = args.stfs, args.files, args.sampling_rounds
    from django.conf import settings
    from django.core.management import call_command

    from benchmarks.consume import recreate_database

    recreate_database()
    call_command("migrate", verbosity=0)
    from django.test import override_settings

    from fastmon.content.merging import merge_cycle
    from fastmon.inbound.messages import InboundMessage
    from fastmon.ingest.pipeline import ingest_batch
    from fastmon.sampling.service import sample_stfs
    from fastmon.simulator.files import write_stf

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        written = [write_stf(base / f"source-{n}.stf", 64 * MIB, seed=n, tf_count=1000)
                   for n in range(files)]  # fmt: skip
        rates: dict[bool, list[float]] = {True: [], False: []}
        merges: list[float] = []
        for round_number in range(rounds):
            for content in (False, True):
                run = 200000 + 2 * round_number + content
                names, messages = [], []
                for n in range(1, stfs + 1):
                    name = f"swf.{run}.{n:06d}.stf"
                    source = written[n % files]
                    os.link(base / f"source-{n % files}.stf", base / name)
                    messages.append(InboundMessage(json.dumps({
                        "msg_type": "stf_ready", "namespace": "epic-fastmon", "run_id": run,
                        "filename": name, "sequence": n, "file_url": (base / name).as_uri(),
                        "size_bytes": source.size, "tf_count": 1000,
                        "tf_offsets": list(source.tf_offsets), "state": "run",
                        "substate": "physics",
                    })))  # fmt: skip
                    names.append(name)
                changes = {**settings.FASTMON, "SAMPLING_ENABLED": False,
                           "DATA_ROOTS": [str(base)], "CONTENT_ENABLED": content}  # fmt: skip
                with override_settings(FASTMON=changes):
                    ingest_batch(messages)
                    chunk = changes.get("SAMPLING_TASK_CHUNK", 50)
                    begin = time.perf_counter()
                    samples = 0
                    for start in range(0, stfs, chunk):
                        samples += sample_stfs(names[start : start + chunk]).samples
                    rates[content].append(samples / (time.perf_counter() - begin))
                    if content:
                        begin = time.perf_counter()
                        merge_cycle()
                        merges.append(time.perf_counter() - begin)
                for name in names:
                    (base / name).unlink()
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"sampling, one process, {stfs} ETF1 STFs of 64 MiB (1000 TFs) a round, testbed "
          f"policy; medians of {rounds} alternated rounds")  # fmt: skip
    print(f"content off              {off:8.0f} TF samples/s")
    print(f"content on               {on:8.0f} TF samples/s  cost {1 - on / off:.0%} "
          f"(target: at most 30 %)")  # fmt: skip
    print(f"merging a round's partials (one cycle of {stfs} STFs): "
          f"{statistics.median(merges) * 1000:.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tfs", type=int, default=1000)
    parser.add_argument("--tf-kib", type=int, default=64)
    parser.add_argument("--sample-tfs", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--sampling",
        action="store_true",
        help="part 2: TF samples/s with content on and off (needs PostgreSQL)",
    )
    parser.add_argument("--stfs", type=int, default=40, help="part 2: STFs a round")
    parser.add_argument("--files", type=int, default=8, help="part 2: distinct files")
    parser.add_argument("--sampling-rounds", type=int, default=3)
    args = parser.parse_args()
    django.setup()
    content_figures(args)
    if args.sampling:
        sampling_figures(args)


if __name__ == "__main__":
    main()
