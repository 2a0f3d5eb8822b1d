"""The testbed's inbound message formats (``docs/wire-formats.md``), parsed and validated.

Pure Python (pydantic, no Django): ``decode_body`` and ``validate_message`` turn a raw STOMP
body into a typed message or raise ``MessageError`` with a reason code and a sentence an operator
can act on. The models are lenient where the testbed is (any field but ``msg_type`` may be
missing or null, ``run_id`` is an integer or a digit string, extra fields are kept) and strict
where a wrong type would store garbage.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from fastmon.inbound.times import sane_time

STF_FILENAME_RE = re.compile(r"^swf\.(?P<run>\d+)\.(?P<seq>\d+)\.stf$")
_COMPACT_TIME_RE = re.compile(r"^\d{14}(\d{1,6})?$")


class MessageError(Exception):
    """A message that can never be used; ``code`` is a ``DeadLetter.Reason`` value."""

    def __init__(self, code: str, reason: str, msg_type: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.msg_type = msg_type


def _run_number(value: Any) -> Any:
    """Run ids arrive as integers from the runner and as digit strings on other paths."""
    if isinstance(value, bool):
        raise ValueError("run_id must be an integer or a string of digits, not a boolean")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError(f"run_id must be an integer or a string of digits, got {value!r}")
        return int(value)
    return value


def _timestamp(value: Any) -> Any:
    """ISO 8601 (the runner) or ``%Y%m%d%H%M%S%f`` (the DAQ simulator and data agents)."""
    if isinstance(value, str) and _COMPACT_TIME_RE.match(value):
        return datetime.strptime(value, "%Y%m%d%H%M%S%f" if len(value) > 14 else "%Y%m%d%H%M%S")
    return value


# Bounds match the database columns, so a value the database would refuse is named here.
RunNumber = Annotated[int, BeforeValidator(_run_number), Field(ge=0, le=2**63 - 1)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), AfterValidator(sane_time)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Bytes = Annotated[int, Field(ge=0, le=2**63 - 1)]
Label = Annotated[str, Field(max_length=100)]


class Message(BaseModel):
    """Fields every agent message may carry. Unknown fields are kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    msg_type: str
    namespace: Label | None = None
    sender: str | None = None

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RunMessage(Message):
    """Run lifecycle messages, from ``run_imminent`` to ``end_run``."""

    TYPES: ClassVar[frozenset[str]] = frozenset(
        {"run_imminent", "start_run", "pause_run", "resume_run", "end_run"}
    )

    msg_type: Literal["run_imminent", "start_run", "pause_run", "resume_run", "end_run"]
    run_id: RunNumber
    execution_id: Annotated[str, Field(max_length=200)] | None = None
    timestamp: Timestamp | None = None
    simulation_tick: float | None = None
    state: Label | None = None
    substate: Label | None = None
    reason: str | None = None
    run_conditions: dict[str, Any] | None = None
    total_stf_files: Count | None = None
    workflow_params: dict[str, Any] | None = None


def _plain_filename(name: str) -> str:
    """A file name, not a path: TF sample names are made from it and published downstream, so
    no path separator, no ``..``, no control or bidirectional formatting characters (a
    right-to-left override would show another name than the one stored)."""
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError("must be a file name, without / or \\")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise ValueError("must not hold control or formatting characters")
    return name


class StfMessage(Message):
    """STF announcements: ``stf_gen`` (DAQ or runner) and ``stf_ready`` (data agent)."""

    TYPES: ClassVar[frozenset[str]] = frozenset({"stf_gen", "stf_ready"})

    msg_type: Literal["stf_gen", "stf_ready"]
    # TF sample names add "_tf_NNN.tf" to it and must fit in 255 characters too.
    filename: Annotated[str, Field(min_length=1, max_length=240), AfterValidator(_plain_filename)]
    run_id: RunNumber | None = None
    execution_id: Annotated[str, Field(max_length=200)] | None = None
    sequence: Count | None = None
    timestamp: Timestamp | None = None
    simulation_tick: float | None = None
    start: Timestamp | None = None
    end: Timestamp | None = None
    state: Label | None = None
    substate: Label | None = None
    checksum: str | None = Field(default=None, max_length=100)
    size: Bytes | None = None
    size_bytes: Bytes | None = None
    # A path or URL, kept whole (cut, it would name another file): a longer one is refused.
    file_url: str | None = Field(default=None, max_length=4096)
    tf_count: Count | None = None
    run_conditions: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _numbers_from_the_name_fit(self) -> StfMessage:
        """Run and sequence taken from the file name get the bounds the fields get (announced
        ones already have them)."""
        if (self.run_number or 0) > 2**63 - 1:
            raise ValueError("the run number in the file name is too large")
        if (self.sequence_number or 0) > 2**31 - 1:
            raise ValueError("the sequence number in the file name is too large")
        return self

    @property
    def file_size(self) -> int | None:
        """The DAQ simulator says ``size``, the data agent ``size_bytes``."""
        return self.size_bytes if self.size_bytes is not None else self.size

    @property
    def run_number(self) -> int | None:
        """The announced run, else the one the testbed's file name ``swf.<run>.<seq>.stf`` gives."""
        return self.run_id if self.run_id is not None else self._from_filename("run")

    @property
    def sequence_number(self) -> int | None:
        return self.sequence if self.sequence is not None else self._from_filename("seq")

    def _from_filename(self, part: str) -> int | None:
        match = STF_FILENAME_RE.match(self.filename)
        return int(match[part]) if match else None


class Content(BaseModel):
    """The fast-processing stage's ``content`` envelope: other fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


Name = Annotated[str, Field(min_length=1, max_length=255)]


class SliceContent(Content):
    tf_filename: Name  # the slice's name: <TF sample name without .tf>_slice_<NNN>.tf
    slice_id: Count
    filename: Name | None = None  # its STF
    start: Count | None = None
    end: Count | None = None
    tf_count: Count | None = None
    req_id: Annotated[str, Field(max_length=100)] | None = None


class SliceOutcome(Content):
    tf_filename: Name
    slice_id: Count | None = None
    processed: bool | None = None
    metrics: dict[str, Any] | None = None


class ResultEnvelope(Content):
    """``result: {result: {...}}``: the inner one is the worker's outcome, and required."""

    result: SliceOutcome


class ResultContent(Content):
    state: Label | None = None
    result: ResultEnvelope
    processed_at: Timestamp | None = None
    hostname: Annotated[str, Field(max_length=255)] | None = None
    panda_id: int | Annotated[str, Field(max_length=100)] | None = None


class WorkerContent(Content):
    target_worker_count: Count | None = None
    core_count: Count | None = None
    slice_processing_time: float | None = None


class ProcessingMessage(Message):
    """The fast-processing stage's messages: ``{msg_type, run_id, execution_id, created_at,
    namespace, content: {...}}``."""

    run_id: RunNumber
    execution_id: Annotated[str, Field(max_length=200)] | None = None
    created_at: Timestamp | None = None


class SliceMessage(ProcessingMessage):
    """A slice queued for the workers (``/topic/panda.slices``)."""

    TYPES: ClassVar[frozenset[str]] = frozenset({"slice"})
    msg_type: Literal["slice"]
    content: SliceContent


class SliceResultMessage(ProcessingMessage):
    """A worker's answer (a copy of ``/queue/panda.results.fastprocessing``)."""

    TYPES: ClassVar[frozenset[str]] = frozenset({"slice_result"})
    msg_type: Literal["slice_result"]
    content: ResultContent

    @property
    def outcome(self) -> SliceOutcome:
        return self.content.result.result

    @property
    def done(self) -> bool:
        """Done when the worker says so (its state, else its ``processed`` flag)."""
        if self.content.state:
            return self.content.state == "done"
        return bool(self.outcome.processed)

    @property
    def worker(self) -> str:
        return self.content.hostname or str(self.content.panda_id or "")


class WorkerMessage(ProcessingMessage):
    """The agent's broadcast to the workers of a run about to start (``/topic/panda.workers``)."""

    TYPES: ClassVar[frozenset[str]] = frozenset({"run_imminent_worker"})
    msg_type: Literal["run_imminent_worker"]
    content: WorkerContent


class UnknownMessage(Message):
    """A ``msg_type`` fastmon does not consume (including its own ``tf_file_registered``)."""


# Each parsed type by name (not ``type[Message]``), so that validating gives a ParsedMessage.
MessageType = (
    type[RunMessage]
    | type[StfMessage]
    | type[SliceMessage]
    | type[SliceResultMessage]
    | type[WorkerMessage]
    | type[UnknownMessage]
)
KNOWN_TYPES: dict[str, MessageType] = {
    **dict.fromkeys(RunMessage.TYPES, RunMessage),
    **dict.fromkeys(StfMessage.TYPES, StfMessage),
    **dict.fromkeys(SliceMessage.TYPES, SliceMessage),
    **dict.fromkeys(SliceResultMessage.TYPES, SliceResultMessage),
    **dict.fromkeys(WorkerMessage.TYPES, WorkerMessage),
}

ParsedMessage = (
    RunMessage | StfMessage | SliceMessage | SliceResultMessage | WorkerMessage | UnknownMessage
)
# What the fast-processing stage sends, applied by fastmon.processing.
ProcessingReading = SliceMessage | SliceResultMessage | WorkerMessage


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        message = "missing" if item["type"] == "missing" else item["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def decode_body(body: bytes | str, max_bytes: int) -> dict[str, Any]:
    """Decode a raw body into a JSON object with a ``msg_type``, or raise ``MessageError``."""
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
    if len(raw) > max_bytes:
        raise MessageError("too_large", f"body is {len(raw)} bytes, over the {max_bytes} limit")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's
        raise MessageError("not_json", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("not_object", f"body is a JSON {type(data).__name__}, not an object")
    msg_type = data.get("msg_type")
    if not isinstance(msg_type, str) or not msg_type:
        raise MessageError("no_msg_type", "body has no msg_type string")
    return data


def validate_message(data: dict[str, Any]) -> ParsedMessage:
    """Type a decoded body by its ``msg_type``, or raise ``MessageError`` naming each bad field."""
    msg_type = data["msg_type"]
    model = KNOWN_TYPES.get(msg_type, UnknownMessage)
    if model is StfMessage and not data.get("filename"):
        raise MessageError(
            "no_filename", f"{msg_type} has no filename, so its STF cannot be sampled", msg_type
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MessageError("invalid", f"{msg_type}: {_describe(exc)}", msg_type) from None
