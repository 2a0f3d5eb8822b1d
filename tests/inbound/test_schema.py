"""Message parsing and validation: pure logic, no database."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from fastmon.inbound.schema import (
    MessageError,
    RunMessage,
    StfMessage,
    UnknownMessage,
    decode_body,
    validate_message,
)
from fastmon.testing.messages import example, example_body, example_names

LIMIT = 1024 * 1024


def parse(body: bytes | str):
    return validate_message(decode_body(body, LIMIT))


def reason_of(body: bytes | str) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse(body)
    return caught.value


@pytest.mark.parametrize("name", [n for n in example_names() if n != "stf_ready_no_filename"])
def test_every_spec_example_parses(name: str) -> None:
    message = parse(example_body(name))
    assert message.msg_type == example(name)["msg_type"]


def test_run_id_as_integer_and_as_digit_string_give_the_same_run() -> None:
    as_int = parse(json.dumps(example("start_run", run_id=101993)))
    as_str = parse(json.dumps(example("start_run", run_id="101993")))
    assert isinstance(as_int, RunMessage)
    assert as_int.run_id == as_str.run_id == 101993


def test_daqsim_stf_gen_reads_compact_times_size_and_adler_checksum() -> None:
    message = parse(example_body("stf_gen_daqsim"))
    assert isinstance(message, StfMessage)
    assert message.run_number == 101993
    assert message.start == datetime(2026, 11, 20, 14, 3, 23, 123456)
    assert message.end == datetime(2026, 11, 20, 14, 3, 23, 789012)
    assert message.checksum == "ad:3735928559"
    assert message.file_size == 2147483648
    assert message.extra_fields() == {"req_id": 1}


def test_run_and_sequence_come_from_the_file_name_when_not_announced() -> None:
    message = parse(json.dumps({"msg_type": "stf_gen", "filename": "swf.100012.000042.stf"}))
    assert (message.run_number, message.sequence_number) == (100012, 42)
    other = parse(json.dumps({"msg_type": "stf_gen", "filename": "daq-dump.bin"}))
    assert (other.run_number, other.sequence_number) == (None, None)


def test_unknown_type_is_kept_as_unknown() -> None:
    message = parse(example_body("tf_file_registered"))
    assert isinstance(message, UnknownMessage)
    assert message.msg_type == "tf_file_registered"


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"\xff\xfe not utf-8", "not_json", "not JSON"),
        ("{'msg_type': 'stf_gen'}", "not_json", "not JSON"),
        ("[1, 2]", "not_object", "JSON list"),
        ('"stf_gen"', "not_object", "JSON str"),
        ('{"run_id": 5}', "no_msg_type", "msg_type"),
        ('{"msg_type": 17}', "no_msg_type", "msg_type"),
        ('{"msg_type": "start_run"}', "invalid", "run_id: missing"),
        ('{"msg_type": "start_run", "run_id": "run-7"}', "invalid", "run-7"),
        ('{"msg_type": "start_run", "run_id": true}', "invalid", "boolean"),
        ('{"msg_type": "start_run", "run_id": -4}', "invalid", "run_id"),
        ('{"msg_type": "end_run", "run_id": 1, "total_stf_files": "many"}', "invalid",
         "total_stf_files"),
        ('{"msg_type": "stf_gen", "filename": "f.stf", "sequence": 1.5}', "invalid", "sequence"),
        ('{"msg_type": "stf_gen", "filename": "f.stf", "size": 2e30}', "invalid", "size"),
        ('{"msg_type": "stf_gen", "filename": "f.stf", "timestamp": "noon"}', "invalid",
         "timestamp"),
        ('{"msg_type": "stf_gen", "filename": 12}', "invalid", "filename"),
        ('{"msg_type": "stf_gen", "filename": "../../x_tf_007.tf"}', "invalid", "file name"),
        ('{"msg_type": "stf_gen", "filename": "a\\\\b.stf"}', "invalid", "file name"),
        ('{"msg_type": "stf_gen", "filename": ".."}', "invalid", "file name"),
        ('{"msg_type": "stf_gen", "filename": "fts.\\u202egnp.stf"}', "invalid", "formatting"),
        ('{"msg_type": "stf_gen", "filename": "a\\nb.stf"}', "invalid", "control"),
        (f'{{"msg_type": "stf_gen", "filename": "swf.{2**70}.1.stf"}}', "invalid", "run number"),
        (f'{{"msg_type": "stf_gen", "filename": "swf.1.{2**40}.stf"}}', "invalid",
         "sequence number"),
        ('{"msg_type": "stf_ready", "filename": null}', "no_filename", "no filename"),
        ('{"msg_type": "stf_ready", "filename": ""}', "no_filename", "no filename"),
        # Every time a body gives has the one window (fastmon.inbound.times), compact or not.
        ('{"msg_type": "stf_gen", "filename": "f.stf", "start": "19991231235959"}', "invalid",
         "start: Value error, out of range (years 2000 to 2099)"),
        ('{"msg_type": "start_run", "run_id": 1, "timestamp": "2100-01-01T00:00:00"}',
         "invalid", "timestamp: Value error, out of range"),
        ('{"msg_type": "slice", "run_id": 1, "created_at": 0, "content": '
         '{"tf_filename": "s.tf", "slice_id": 1}}', "invalid", "created_at: Value error, out"),
        # A path cut would name another file: a longer one is refused, not cut.
        (f'{{"msg_type": "stf_ready", "filename": "f.stf", "file_url": "/{"d" * 4096}"}}',
         "invalid", "file_url"),
        # The worker's outcome is required inside result (a KeyError once, an internal letter).
        ('{"msg_type": "slice_result", "run_id": 1, "content": {"result": {}}}', "invalid",
         "content.result.result: missing"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused_with_a_reason(body: str | bytes, code: str, words: str) -> None:
    error = reason_of(body)
    assert error.code == code
    assert words in error.reason


def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(MessageError) as caught:
        decode_body(b"{" + b" " * 100 + b"}", max_bytes=50)
    assert caught.value.code == "too_large"
    assert "102 bytes" in caught.value.reason


def test_null_fields_are_accepted_as_missing() -> None:
    body = example("stf_ready", size_bytes=None, checksum=None, sequence=None, start=None)
    message = parse(json.dumps(body))
    assert message.file_size is None
    assert message.sequence_number == 1  # from the file name
