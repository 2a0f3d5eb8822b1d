"""How stored STFs reach sampling: who samples, a hand-off to Celery that never makes ingest
wait for its broker, and tasks of one lane each."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.sampling import dispatch
from fastmon.testing.announcing import announce
from fastmon.testing.messages import stf_name
from fastmon.testing.waiting import wait_until


@pytest.fixture
def sender(monkeypatch: pytest.MonkeyPatch):
    """A Celery broker that hangs until released: what the hand-off must not wait for."""
    released, sent = threading.Event(), []

    def hangs(names: list[str]) -> None:
        released.wait(30)
        sent.append(names)

    monkeypatch.setattr(dispatch, "_sender", hangs)
    monkeypatch.setattr(dispatch, "_eager", lambda: False)
    monkeypatch.setattr(dispatch, "_handoff", dispatch.Handoff())
    yield released, sent
    released.set()


def test_a_hanging_celery_broker_never_holds_up_the_enqueue(sender) -> None:
    released, sent = sender
    names = [stf_name(1, n) for n in range(120)]
    with override_settings(FASTMON={**settings.FASTMON, "SAMPLING_WORKERS": "celery"}):
        dispatch.enqueue_sampling(names)  # returns while the broker hangs
        assert sent == []
        released.set()
    wait_until(lambda: len(sent) == 3, 10, "three chunks sent", context=lambda: str(sent))
    assert [len(chunk) for chunk in sent] == [50, 50, 20]
    assert [name for chunk in sent for name in chunk] == names


def test_a_full_hand_off_leaves_the_rest_to_the_sweep(sender, caplog) -> None:
    changes = {"SAMPLING_WORKERS": "celery", "SAMPLING_HANDOFF_QUEUE": 1}
    with override_settings(FASTMON={**settings.FASTMON, **changes}):
        dispatch.enqueue_sampling([stf_name(1, n) for n in range(200)])
    assert "sampling hand-off full: 50 STFs left to the periodic sweep" in caplog.text


@pytest.mark.parametrize(
    ("workers", "broker_url", "expected"),
    [("auto", "redis://127.0.0.1:6379/1", "celery"), ("auto", None, "run_fastmon"),
     ("celery", None, "celery"), ("run_fastmon", "redis://x", "run_fastmon")],
)  # fmt: skip
def test_who_samples(workers: str, broker_url: str | None, expected: str) -> None:
    fastmon = {**settings.FASTMON, "SAMPLING_WORKERS": workers}
    with override_settings(FASTMON=fastmon, CELERY_BROKER_URL=broker_url):
        assert dispatch.workers() == expected


def test_a_wrong_choice_of_workers_is_refused() -> None:
    with (
        override_settings(FASTMON={**settings.FASTMON, "SAMPLING_WORKERS": "cron"}),
        pytest.raises(ValueError, match="auto, celery or run_fastmon"),
    ):
        dispatch.workers()


@pytest.mark.django_db
def test_a_celery_task_holds_the_stfs_of_one_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow host's STFs never share a task with local ones or another host's."""
    sent: list[list[str]] = []
    monkeypatch.setattr(dispatch, "_sender", sent.append)
    monkeypatch.setattr(dispatch, "_eager", lambda: True)
    roots = ["/data/daq", "http://door.example/stf/", "root://xrd.example//stf/"]
    urls = ["http://door.example/stf/", "/data/daq/", "root://xrd.example//stf/",
            "http://door.example:80/stf/", "http://elsewhere.example/stf/"]  # fmt: skip
    names = [announce("stf_ready", 100840, n, file_url=f"{url}{stf_name(100840, n)}")[0]
             for n, url in enumerate(urls, 1)]  # fmt: skip
    changes = {"SAMPLING_WORKERS": "celery", "DATA_ROOTS": roots}
    with override_settings(FASTMON={**settings.FASTMON, **changes}):
        dispatch.enqueue_sampling(names)
    assert sent == [[names[0], names[3]], [names[1], names[4]], [names[2]]]
