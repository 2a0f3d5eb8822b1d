"""The fast-processing stage, played: slices cut from each sample, answered by workers that fail
and retry, every message one fastmon reads."""

from __future__ import annotations

import json
import threading
from typing import Any

from fastmon.inbound.schema import validate_message
from fastmon.testing.messages import example
from fastmon.testing.waiting import wait_until


def test_the_fast_processing_stage_played_cuts_answers_and_retries() -> None:
    from fastmon.simulator.downstream import DownstreamOptions, FastProcessing

    sent: list[tuple[str, dict[str, Any]]] = []
    options = DownstreamOptions(tf_per_slice=4, processing_s=0.01, failure_rate=1.0)
    play = FastProcessing(options, lambda destination, body: sent.append(
        (destination, json.loads(body))))  # fmt: skip
    player = threading.Thread(target=play.run)
    player.start()
    play.registered(example("tf_file_registered", tf_first=10, tf_last=19, run_id=7))
    wait_until(lambda: len(sent) == 12, 5, "3 slices, failed, queued again, done")
    play.stop()
    player.join(5)

    slices = [body for where, body in sent if where == options.slices_destination]
    results = [body for where, body in sent if where == options.results_destination]
    assert [(s["content"]["start"], s["content"]["end"]) for s in slices[:3]] == [
        (10, 13), (14, 17), (18, 19)]  # fmt: skip
    assert len({s["content"]["req_id"] for s in slices}) == 6  # each queueing a request
    states = [r["content"]["state"] for r in results]
    assert sorted(states) == ["done"] * 3 + ["failed"] * 3  # every first try fails, retries pass
    name = results[0]["content"]["result"]["result"]["tf_filename"]
    assert name.startswith("swf.101993.000001_tf_001_slice_") and name.endswith(".tf")
    for body in slices + results:  # what fastmon reads of them
        assert validate_message(body).msg_type in ("slice", "slice_result")
