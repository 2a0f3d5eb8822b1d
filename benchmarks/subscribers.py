"""What subscribers cost: TF samples recorded per second and outbox rows relayed to ActiveMQ per
second, with 0, 10 and 50 subscribers, beside the same with none (the baseline).

    .venv/bin/python benchmarks/subscribers.py [--stfs 300] [--subscribers 0,10,50]

Needs the services (`scripts/services.sh up`). Uses the benchmarks' database, fastmon_bench,
created afresh. Each round stores 7 samples for each of N STFs through ``record_tf_samples``
(samples, their tf_file_registered, one copy per subscriber that selects it: fractions 0.1 to
1, half of them filtering on the run), then drains the outbox to
the real broker with ``relay_outbox``. Subscribers' destinations are topics nobody reads, so the
broker keeps nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["FASTMON_DB_NAME"] = "fastmon_bench"

import django  # noqa: E402

from benchmarks.consume import recreate_database  # noqa: E402

RUN = 100500


def round_with(subscribers: int, stfs: int) -> tuple[float, float, int]:
    from fastmon.models import OutboxMessage, StfFile, Subscriber, TfSample
    from fastmon.outbox.relay import relay_outbox
    from fastmon.sampling.policy import TfRange
    from fastmon.sampling.samples import SamplePlan, record_tf_samples
    from fastmon.subscribers.rules import parse_subscription
    from fastmon.subscribers.service import save_subscriber
    from fastmon.transport.stomp import StompTransport

    TfSample.objects.all().delete()
    OutboxMessage.objects.all().delete()
    Subscriber.objects.all().delete()
    for n in range(subscribers):
        filters = {"run_numbers": [RUN]} if n % 2 else {}
        save_subscriber(parse_subscription({
            "name": f"bench-{n}", "destination": f"/topic/fastmon.bench.sub.{n}",
            "filters": filters, "fraction": 0.1 + 0.9 * n / max(subscribers - 1, 1),
        }), by="bench")  # fmt: skip
    ranges = [TfRange(100 * k, 100 * k + 20, file_size_bytes=45_000_000) for k in range(7)]
    plans = [SamplePlan(stf, ranges) for stf in StfFile.objects.select_related("run")]
    begin = time.perf_counter()
    for start in range(0, len(plans), 50):  # as the sampling task does, 50 STFs per call
        record_tf_samples(plans[start : start + 50])
    recorded = stfs * 7 / (time.perf_counter() - begin)

    rows = OutboxMessage.objects.pending(OutboxMessage.Transport.BROKER).count()
    transport = StompTransport()
    transport.connect()
    begin = time.perf_counter()
    while relay_outbox(transport):
        pass
    relayed = rows / (time.perf_counter() - begin)
    transport.disconnect()
    assert not OutboxMessage.objects.pending(OutboxMessage.Transport.BROKER).exists()
    return recorded, relayed, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stfs", type=int, default=300)
    parser.add_argument("--subscribers", default="0,10,50")
    args = parser.parse_args()
    recreate_database()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from fastmon.inbound.messages import InboundMessage
    from fastmon.ingest.pipeline import ingest_batch
    from fastmon.testing.messages import example

    settings.FASTMON["PUBLISH_DESTINATION"] = "/topic/fastmon.bench.published"
    call_command("migrate", verbosity=0)
    ingest_batch([
        InboundMessage(json.dumps(example("stf_gen", run_id=RUN, sequence=n,
                                          filename=f"swf.{RUN}.{n:06d}.stf")))
        for n in range(1, args.stfs + 1)
    ])  # fmt: skip

    baseline = None
    print(f"{args.stfs} STFs x 7 TF samples per round")
    for count in (int(n) for n in args.subscribers.split(",")):
        recorded, relayed, rows = round_with(count, args.stfs)
        baseline = baseline or (recorded, relayed)
        print(f"{count:3d} subscribers: recorded {recorded:7.0f} samples/s "
              f"({recorded / baseline[0]:.2f} of none), outbox {rows:6d} rows relayed "
              f"at {relayed:6.0f} msg/s ({relayed / baseline[1]:.2f} of none)",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
