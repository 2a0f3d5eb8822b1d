"""The ingest service against PostgreSQL: every spec example, idempotency, bad input, batches."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, connections
from django.forms.models import model_to_dict
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from fastmon.inbound.messages import InboundMessage, Outcome
from fastmon.ingest import pipeline
from fastmon.ingest.pipeline import ingest_batch, ingest_message
from fastmon.models import DeadLetter, LiveEvent, Run, StfFile
from fastmon.testing.messages import RUN_ORDER, example, example_body

pytestmark = pytest.mark.django_db

HEADERS = {"destination": "/topic/epictopic", "message-id": "ID:test-1"}


def send(name_or_body: str | dict[str, Any], **changes: Any):
    """Ingest an example by name (with changes) or a dict body."""
    body = name_or_body if isinstance(name_or_body, dict) else example(name_or_body, **changes)
    return ingest_message(json.dumps(body), HEADERS)


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every stored row, without the bookkeeping columns a repeat may touch."""
    volatile = {"updated_at", "occurrences", "last_received_at"}

    def rows(model):
        return [
            {k: v for k, v in model_to_dict(obj).items() if k not in volatile}
            for obj in model.objects.order_by("pk")
        ]

    return {"runs": rows(Run), "stfs": rows(StfFile), "dead": rows(DeadLetter)}


def test_a_whole_run_of_spec_examples_is_stored() -> None:
    batch = ingest_batch(InboundMessage(example_body(name), HEADERS) for name in RUN_ORDER)

    assert [r.outcome for r in batch.results] == [
        Outcome.STORED, Outcome.STORED, Outcome.STORED, Outcome.STORED, Outcome.STORED,
        Outcome.STORED, Outcome.DEAD_LETTERED, Outcome.IGNORED, Outcome.STORED,
    ]  # fmt: skip
    assert batch.ignored_types == {"tf_file_registered": 1}

    run = Run.objects.get()
    assert run.run_number == 101993
    assert run.execution_id == "stf_datataking-daq-0049"
    assert run.namespace == "epic-fastmon"
    # end_run carries no state: it ends the run, as swf-monitor's RunState records it.
    assert (run.state, run.substate) == ("ended", "")
    assert run.imminent_at == datetime(2026, 11, 20, 14, 3, 11, 402911, tzinfo=UTC)
    assert run.started_at == datetime(2026, 11, 20, 14, 3, 19, 518204, tzinfo=UTC)
    assert run.ended_at == datetime(2026, 11, 20, 14, 5, 40, 220187, tzinfo=UTC)
    assert run.total_stf_files == 42

    first = StfFile.objects.get(stf_filename="swf.101993.000001.stf")
    assert first.run == run
    assert first.status == StfFile.Status.READY
    assert first.sequence == 1
    assert first.size_bytes == 2147483648
    assert first.checksum == "ad:1587633204"
    assert first.file_url == "file:///data/daq/swf.101993.000001.stf"
    assert first.started_at == datetime(2026, 11, 20, 14, 3, 21, 630555, tzinfo=UTC)
    assert first.ended_at == datetime(2026, 11, 20, 14, 3, 22, 295912, tzinfo=UTC)
    assert first.metadata["stf_gen"]["sender"] == "workflow_runner-agent-daq-7"
    assert first.metadata["stf_gen"]["simulation_tick"] == 15.3
    assert first.metadata["stf_ready"]["processed_by"] == "data-agent-daq-3"

    daqsim = StfFile.objects.get(stf_filename="swf.101993.000002.stf")
    assert daqsim.run == run  # run_id "101993" (a string) is the same run
    assert daqsim.status == StfFile.Status.ANNOUNCED
    assert daqsim.checksum == "ad:3735928559"
    assert daqsim.size_bytes == 2147483648
    assert daqsim.metadata == {"stf_gen": {"req_id": 1}}

    letter = DeadLetter.objects.get()
    assert letter.reason_code == DeadLetter.Reason.NO_FILENAME
    assert letter.raw_body() == example_body("stf_ready_no_filename").encode()


@pytest.mark.parametrize("run_id", [101994, "101994"])
def test_run_id_as_integer_or_string(run_id: int | str) -> None:
    send("run_imminent", run_id=run_id)
    send("stf_gen", run_id=run_id, filename="swf.101994.000001.stf")
    stf = StfFile.objects.select_related("run").get()
    assert stf.run.run_number == 101994


def test_stf_ready_before_stf_gen_is_enriched_not_downgraded() -> None:
    send("stf_ready")
    send("stf_gen")
    stf = StfFile.objects.get()
    assert stf.status == StfFile.Status.READY
    assert stf.size_bytes == 2147483648  # stf_gen, which has no size, erased nothing
    assert set(stf.metadata) == {"stf_gen", "stf_ready"}


def test_the_same_messages_twice_leave_the_same_rows() -> None:
    bodies = [example_body(name) for name in RUN_ORDER]
    ingest_batch(InboundMessage(body, HEADERS) for body in bodies)
    before = snapshot()
    again = ingest_batch(InboundMessage(body, HEADERS) for body in bodies)
    after = snapshot()

    assert [r.outcome for r in again.results].count(Outcome.STORED) == 7
    assert after == before
    assert DeadLetter.objects.get().occurrences == 2


def test_a_redelivery_reads_two_rows_and_writes_nothing() -> None:
    send("stf_ready")
    with CaptureQueriesContext(connection) as captured:  # as ActiveMQ marks a redelivery
        ingest_message(json.dumps(example("stf_ready")), {**HEADERS, "redelivered": "true"})
    statements = [q["sql"].split()[0] for q in captured.captured_queries]
    assert statements.count("SELECT") == 2  # the run, the locked STF
    assert not {"UPDATE", "INSERT"} & set(statements)


def test_an_older_state_never_overwrites_a_newer_one() -> None:
    send("pause_run")  # 14:04:01, run/standby
    send("start_run")  # 14:03:19, redelivered late
    run = Run.objects.get()
    assert (run.state, run.substate) == ("run", "standby")
    assert run.started_at is not None
    send(
        example(
            "pause_run", msg_type="resume_run", substate="physics", timestamp="2026-11-20T14:04:30"
        )
    )
    run.refresh_from_db()
    assert (run.state, run.substate) == ("run", "physics")


def test_end_run_ends_the_run_and_a_late_pause_does_not_reopen_it() -> None:
    send("start_run")  # 14:03:19, run/physics
    send("end_run")  # 14:05:40, no state of its own
    run = Run.objects.get()
    assert (run.state, run.substate) == ("ended", "")
    assert LiveEvent.objects.filter(kind="run").last().payload["state"] == "ended"
    send("pause_run")  # 14:04:01, redelivered late
    run.refresh_from_db()
    assert (run.state, run.substate) == ("ended", "")


def test_run_conditions_from_the_daq_simulator_are_kept() -> None:
    send("run_imminent", run_conditions={"beam_energy_gev": 275, "magnet_t": 1.7})
    send("start_run", run_conditions={"magnet_t": 1.8})
    assert Run.objects.get().run_conditions == {"beam_energy_gev": 275, "magnet_t": 1.8}


@override_settings(FASTMON={"NAMESPACE": "epic-fastmon"})
def test_other_namespaces_are_filtered_and_unnamed_ones_processed() -> None:
    ours = send("stf_gen")
    theirs = send("stf_gen", namespace="other-ns", filename="swf.101993.000009.stf")
    unnamed = send("stf_gen", namespace=None, filename="swf.101993.000010.stf")
    # Another namespace's malformed traffic is not ours to dead-letter either.
    theirs_bad = send({"msg_type": "stf_ready", "namespace": "other-ns"})

    assert [ours.outcome, theirs.outcome, unnamed.outcome, theirs_bad.outcome] == [
        Outcome.STORED, Outcome.FILTERED, Outcome.STORED, Outcome.FILTERED,
    ]  # fmt: skip
    assert "other-ns" in theirs.detail
    assert set(StfFile.objects.values_list("stf_filename", flat=True)) == {
        "swf.101993.000001.stf", "swf.101993.000010.stf",
    }  # fmt: skip
    assert not DeadLetter.objects.exists()


def test_unknown_types_are_counted_and_ignored() -> None:
    batch = ingest_batch(
        InboundMessage(json.dumps({"msg_type": kind, "run_id": 1}), HEADERS)
        for kind in ["heartbeat", "heartbeat", "data_ready"]
    )
    assert batch.counts == {Outcome.IGNORED: 3}
    assert batch.ignored_types == {"heartbeat": 2, "data_ready": 1}
    assert not Run.objects.exists() and not DeadLetter.objects.exists()


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"not json at all", "not_json", "not JSON"),
        (b"[1, 2, 3]", "not_object", "not an object"),
        (b'{"filename": "swf.1.000001.stf"}', "no_msg_type", "msg_type"),
        (b'{"msg_type": "end_run"}', "invalid", "run_id: missing"),
        (b'{"msg_type": "stf_gen", "filename": "x.stf", "size": "big"}', "invalid", "size"),
        (b'{"msg_type": "stf_gen", "filename": "x.stf", "state": "' + b"s" * 150 + b'"}',
         "invalid", "state"),
        (example_body("stf_ready_no_filename").encode(), "no_filename", "no filename"),
        (b"[" * 100_000 + b"]" * 100_000, "not_json", "not JSON"),  # deeper than Python recurses
        (b'{"msg_type": "stf_gen", "filename": "x.stf", "start": "0001-01-01T00:00:00+05:00"}',
         "invalid", "out of range"),
        (b'{"msg_type": "stf_gen", "filename": "' + b"s" * 241 + b'"}', "invalid", "filename"),
    ],
)  # fmt: skip
def test_each_bad_input_class_becomes_a_dead_letter(body: bytes, code: str, words: str) -> None:
    result = ingest_message(body, HEADERS)
    assert result.outcome is Outcome.DEAD_LETTERED
    letter = DeadLetter.objects.get(pk=result.dead_letter_id)
    assert letter.reason_code == code
    assert words in letter.reason
    assert letter.raw_body() == body[: 64 * 1024]  # a huge body is kept in part
    assert (letter.body_size, letter.body_truncated) == (len(body), len(body) > 64 * 1024)
    assert letter.destination == "/topic/epictopic"
    assert letter.headers == HEADERS
    assert letter.status == DeadLetter.Status.PENDING


@override_settings(FASTMON={"MAX_BODY_BYTES": 2048})
def test_a_huge_body_is_dead_lettered_whole() -> None:
    body = json.dumps(example("stf_gen", padding="x" * 10_000)).encode()
    result = ingest_message(body, HEADERS)
    letter = DeadLetter.objects.get(pk=result.dead_letter_id)
    assert letter.reason_code == DeadLetter.Reason.TOO_LARGE
    assert letter.body_size == len(body)
    assert letter.raw_body() == body
    assert not StfFile.objects.exists()


def test_bodies_postgresql_cannot_hold_as_text_are_kept_in_base64() -> None:
    body = b'{"msg_type": "stf_gen"\x00, "x": "\xff"}'
    letter = DeadLetter.objects.get(pk=ingest_message(body, HEADERS).dead_letter_id)
    assert letter.body_encoding == DeadLetter.Encoding.BASE64
    assert base64.b64decode(letter.body) == body
    assert letter.raw_body() == body


def test_a_nul_in_what_a_letter_names_is_stored_as_a_replacement_character() -> None:
    """Found by benchmarks/reliability.py's fuzzer: the reason quotes the msg_type."""
    body = b'{"msg_type": "\\u0000", "sender": -1, "run_id": 101993}'
    result = ingest_message(body, {"destination": "/topic/a\x00b", "x\x00": "y\x00"})
    letter = DeadLetter.objects.get(pk=result.dead_letter_id)
    assert (letter.msg_type, letter.destination) == ("\ufffd", "/topic/a\ufffdb")
    assert letter.reason.startswith("\ufffd: sender") and letter.headers["x\ufffd"] == "y\ufffd"
    assert letter.raw_body() == body


def test_a_message_the_database_refuses_is_dead_lettered_alone() -> None:
    """jsonb cannot hold \\u0000: only the database finds out, and only that message fails."""
    bad = json.dumps(example("stf_gen", filename="swf.101993.000003.stf", note="a\u0000b"))
    batch = ingest_batch(
        [
            InboundMessage(example_body("run_imminent"), HEADERS),
            InboundMessage(bad, HEADERS),
            InboundMessage(example_body("stf_gen"), HEADERS),
        ]
    )
    assert [r.outcome for r in batch.results] == [
        Outcome.STORED, Outcome.DEAD_LETTERED, Outcome.STORED,
    ]  # fmt: skip
    letter = DeadLetter.objects.get()
    assert letter.reason_code == DeadLetter.Reason.REJECTED
    assert "database refused" in letter.reason
    assert list(StfFile.objects.values_list("stf_filename", flat=True)) == ["swf.101993.000001.stf"]


def test_a_mixed_batch_stores_the_good_and_dead_letters_the_bad_in_one_transaction(
    django_assert_num_queries,
) -> None:
    messages = [
        InboundMessage(example_body("run_imminent"), HEADERS),
        InboundMessage(b"{broken", HEADERS),
        InboundMessage(example_body("stf_gen"), HEADERS),
        InboundMessage(b'{"msg_type": "start_run", "run_id": "abc"}', HEADERS),
        InboundMessage(example_body("stf_ready"), HEADERS),
    ]
    batch = ingest_batch(messages)
    assert batch.counts == {Outcome.STORED: 3, Outcome.DEAD_LETTERED: 2}
    assert StfFile.objects.get().status == StfFile.Status.READY
    assert DeadLetter.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_batch_is_one_transaction(monkeypatch) -> None:
    """Rows become visible to other connections all at once, when the batch commits."""
    seen_mid_batch: list[tuple[int, int]] = []

    def count_from_another_connection() -> tuple[int, int]:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT (SELECT count(*) FROM fastmon_run),"
                               " (SELECT count(*) FROM fastmon_stffile)")  # fmt: skip
                return cursor.fetchone()
        finally:
            other.close()

    apply_announcements = pipeline._apply_announcements

    def then_look(announcements, seen):
        applied = apply_announcements(announcements, seen)
        seen_mid_batch.append(count_from_another_connection())
        return applied

    monkeypatch.setattr("fastmon.ingest.pipeline._apply_announcements", then_look)
    ingest_batch([InboundMessage(example_body(name), HEADERS)
                  for name in ("start_run", "stf_gen", "stf_ready")])  # fmt: skip
    assert seen_mid_batch == [(0, 0)]  # the run and the STF were written, not yet committed
    assert count_from_another_connection() == (1, 1)


def test_a_bug_on_one_message_dead_letters_it_and_the_batch_goes_on(monkeypatch) -> None:
    def broken(message):
        raise RuntimeError("a bug")

    monkeypatch.setattr("fastmon.ingest.pipeline.apply_run_message", broken)
    batch = ingest_batch(
        [InboundMessage(example_body("start_run"), HEADERS),
         InboundMessage(example_body("stf_gen"), HEADERS)]
    )  # fmt: skip
    assert [r.outcome for r in batch.results] == [Outcome.DEAD_LETTERED, Outcome.STORED]
    letter = DeadLetter.objects.get()
    assert letter.reason_code == DeadLetter.Reason.INTERNAL
    assert "RuntimeError('a bug')" in letter.reason
