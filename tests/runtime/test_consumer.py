"""run_fastmon against the real ActiveMQ and PostgreSQL: nothing acknowledged is ever lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from django.db import connection as database
from django.db import transaction

from fastmon.models import DeadLetter, Run, StfFile
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import RUN_ORDER, example_body, stf_body, stf_name
from fastmon.testing.network import TcpProxy
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
RUN = 100100
StartProcess = Callable[..., ServiceProcess]
Publish = Callable[[str, Iterable[str]], None]


def leftover_on_durable_subscription(
    address: tuple[str, int], client_id: str, topic: str
) -> list[bytes]:
    """What the broker still holds for a durable subscription (each frame acked here)."""
    name = f"fastmon.{topic.removeprefix('/topic/')}"
    durable = {"activemq.subscriptionName": name}
    with subscribed(
        address,
        broker_login(),
        topic,
        client_id=client_id,
        ack="client-individual",
        headers=durable,
    ) as (connection, collector):
        frames = collector.frames_received(0, settle=2.0)
        for frame in frames:
            connection.ack(frame.headers["message-id"], frame.headers["subscription"])
    return [frame.body for frame in frames]


def stored_stf_names() -> set[str]:
    return set(StfFile.objects.values_list("stf_filename", flat=True))


def expected_names(count: int) -> set[str]:
    return {stf_name(RUN, n) for n in range(1, count + 1)}


def test_announcements_become_rows_then_acks_and_sigterm_stops_cleanly(
    start_process: StartProcess, stomp_address: tuple[str, int], publish: Publish, unique_topic: str
) -> None:
    settings = consumer_settings(unique_topic)
    consumer = start_process(settings)
    consumer.wait_for_log(f"subscribed to {unique_topic}")

    publish(unique_topic, (example_body(name) for name in RUN_ORDER))
    wait_until(lambda: Run.objects.filter(total_stf_files=42).exists(), 20, "end_run stored")
    wait_until(lambda: DeadLetter.objects.exists(), 5, "the nameless stf_ready dead-lettered")
    stf = StfFile.objects.get(stf_filename="swf.101993.000001.stf")
    # Latency stamps: the broker took it, fastmon received it, then committed it.
    assert stf.broker_at <= stf.received_at <= stf.committed_at
    consumer.wait_for_log("msg/s")  # the periodic summary line

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
    log = consumer.output()
    assert f"subscribing to {unique_topic} (durable 'fastmon." in log.splitlines()[0]
    assert "run_fastmon: stopped" in log
    # Everything was acked: the durable subscription holds nothing more.
    assert leftover_on_durable_subscription(stomp_address, settings["AGENT_NAME"],
                                            unique_topic) == []  # fmt: skip


def test_sigkill_mid_stream_then_restart_stores_every_announcement_once_durable(
    start_process: StartProcess, publish: Publish, unique_topic: str
) -> None:
    # Enough that the kill lands mid-stream even when ingest outruns this test's polling.
    count = 12000
    settings = consumer_settings(unique_topic, BATCH_SIZE=100)
    first = start_process(settings)
    first.wait_for_log(f"subscribed to {unique_topic}")

    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, count + 1)))
    wait_until(lambda: StfFile.objects.count() >= 300, 30, "the first announcements stored")
    first.process.kill()
    first.wait()
    assert StfFile.objects.count() < count, "killed too late to prove anything"

    second = start_process(settings)  # same client-id: the same durable subscription
    wait_until(lambda: StfFile.objects.count() >= count, 90, "every announcement stored",
               context=lambda: second.output()[-3000:])  # fmt: skip
    assert stored_stf_names() == expected_names(count)
    assert not DeadLetter.objects.exists()
    second.signal(signal.SIGINT)
    assert second.wait(timeout=15) == 0


def test_competing_consumers_on_a_virtual_topic_queue_share_the_stream_and_survive_a_kill(
    start_process: StartProcess, publish: Publish, unique_topic: str
) -> None:
    count = 3000
    shared_queue = f"/queue/Consumer.fastmon.{unique_topic.removeprefix('/topic/')}"
    settings = consumer_settings(shared_queue, BATCH_SIZE=50, PREFETCH=200)
    workers = [start_process(settings | {"AGENT_NAME": f"fastmon-agent-test-{n}"})
               for n in (1, 2)]  # fmt: skip
    for worker in workers:
        worker.wait_for_log(f"subscribed to {shared_queue}")
    assert "(shared)" in workers[0].output()

    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, count + 1)))
    wait_until(lambda: StfFile.objects.count() >= 300, 30, "the first announcements stored")
    workers[0].process.kill()
    workers[0].wait()

    wait_until(lambda: StfFile.objects.count() >= count, 90, "every announcement stored",
               context=lambda: workers[1].output()[-3000:])  # fmt: skip
    assert stored_stf_names() == expected_names(count)
    workers[1].signal(signal.SIGTERM)
    assert workers[1].wait(timeout=15) == 0


def ingest_process_of(consumer: ServiceProcess) -> int:
    """The pid of run_fastmon's one child, its ingest process (INGEST_PROCESS)."""
    pid = consumer.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_ingest_process_stops_with_the_consumer_and_ends_when_it_is_killed(
    start_process: StartProcess, stomp_address: tuple[str, int], publish: Publish, unique_topic: str
) -> None:
    settings = consumer_settings(unique_topic)
    for stop in (signal.SIGKILL, signal.SIGTERM):  # the second one acks what the first left
        consumer = start_process(settings)
        consumer.wait_for_log(f"subscribed to {unique_topic}")
        ingest = ingest_process_of(consumer)
        first = StfFile.objects.count() + 1
        publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(first, first + 100)))
        wait_until(lambda f=first: StfFile.objects.count() >= f + 99, 20, "stored")
        consumer.signal(stop)
        assert consumer.wait(timeout=15) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        # Killed, the consumer leaves its child a closed pipe: it exits by itself.
        wait_until(lambda i=ingest: not is_running(i), 10, "the ingest process to exit")
    assert stored_stf_names() == expected_names(200)
    assert leftover_on_durable_subscription(stomp_address, settings["AGENT_NAME"],
                                            unique_topic) == []  # fmt: skip


def test_if_the_ingest_process_dies_ingest_goes_on_in_the_consumer_and_nothing_is_lost(
    start_process: StartProcess, publish: Publish, unique_topic: str
) -> None:
    consumer = start_process(consumer_settings(unique_topic))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, 101)))
    wait_until(lambda: StfFile.objects.count() >= 100, 20, "the first hundred stored")

    os.kill(ingest_process_of(consumer), signal.SIGKILL)  # the OOM killer, say
    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(101, 301)))
    wait_until(lambda: StfFile.objects.count() >= 300, 30, "the rest stored",
               context=consumer.output)  # fmt: skip
    assert "the ingest process died" in consumer.output()
    assert stored_stf_names() == expected_names(300)
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0


def test_sigterm_stops_in_bounded_time_while_ingest_hangs_on_the_database(
    start_process: StartProcess, stomp_address: tuple[str, int], publish: Publish, unique_topic: str
) -> None:
    settings = consumer_settings(unique_topic, STOP_TIMEOUT_S=2.0)
    consumer = start_process(settings)
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, [stf_body("stf_gen", RUN, 1)])
    wait_until(lambda: StfFile.objects.count() == 1, 20, "the STF stored")

    with transaction.atomic():  # another session holds the STF's row: ingest waits on it
        StfFile.objects.select_for_update().get()
        publish(unique_topic, [stf_body("stf_gen", RUN, 1)])
        wait_until(ingest_waits_on_a_lock, 10, "ingest blocked on the locked row")
        started = time.monotonic()
        consumer.signal(signal.SIGTERM)
        assert consumer.wait(timeout=15) == 0
        assert time.monotonic() - started < 6
    assert "stopping with 1 frames uncommitted" in consumer.output()
    # Not acked: the broker still holds it for the durable subscription.
    assert len(leftover_on_durable_subscription(stomp_address, settings["AGENT_NAME"],
                                                unique_topic)) == 1  # fmt: skip


def ingest_waits_on_a_lock() -> bool:
    """Another session waits on a row lock (the activity view is a snapshot per transaction:
    it is taken afresh each time)."""
    with database.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                       " AND datname = current_database()")  # fmt: skip
        return cursor.fetchone()[0] > 0


def restart_broker() -> None:
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "restart-broker"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip


def test_the_consumer_reconnects_by_itself_after_a_broker_restart(
    start_process: StartProcess, publish: Publish, unique_topic: str
) -> None:
    consumer = start_process(consumer_settings(unique_topic))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, 501)))

    restart_broker()
    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(501, 1001)))

    wait_until(lambda: StfFile.objects.count() >= 1000, 90, "every announcement stored",
               context=lambda: consumer.output()[-3000:])  # fmt: skip
    assert stored_stf_names() == expected_names(1000)
    consumer.wait_for_log("reconnected to the broker")
    assert consumer.process.poll() is None
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0


def test_nothing_is_acked_while_the_database_is_away_and_all_is_stored_when_it_returns(
    start_process: StartProcess,
    publish: Publish,
    unique_topic: str,
    db_proxy: TcpProxy,
) -> None:
    consumer = start_process(consumer_settings(unique_topic), db_port=db_proxy.port)
    consumer.wait_for_log(f"subscribed to {unique_topic}")

    db_proxy.cut()
    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, 201)))
    consumer.wait_for_log("database unavailable", count=2)
    assert StfFile.objects.count() == 0
    assert consumer.process.poll() is None

    db_proxy.restore()
    wait_until(lambda: StfFile.objects.count() >= 200, 30, "every announcement stored")
    assert stored_stf_names() == expected_names(200)
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0


def test_a_flood_of_malformed_bodies_is_dead_lettered_while_good_ones_flow(
    start_process: StartProcess, publish: Publish, unique_topic: str
) -> None:
    consumer = start_process(consumer_settings(unique_topic))
    consumer.wait_for_log(f"subscribed to {unique_topic}")

    def stream() -> Iterable[str]:
        for n in range(1, 201):
            yield stf_body("stf_gen", RUN, n)
            for k in range(5):
                yield (
                    f"<garbage {n}.{k}>"
                    if k % 2
                    else json.dumps({"msg_type": "stf_ready", "req_id": f"{n}.{k}"})
                )

    publish(unique_topic, stream())
    wait_until(lambda: StfFile.objects.count() >= 200 and DeadLetter.objects.count() >= 1000,
               60, "good ones stored and bad ones dead-lettered")  # fmt: skip
    assert stored_stf_names() == expected_names(200)
    reasons = set(DeadLetter.objects.values_list("reason_code", flat=True))
    assert reasons == {DeadLetter.Reason.NOT_JSON, DeadLetter.Reason.NO_FILENAME}
    assert consumer.process.poll() is None
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"BROKER_PASSWORD": "wrong"}, 3, "refused the login"),
        ({"BROKER_HOSTS": [["127.0.0.1", 9]], "STARTUP_CONNECT_TIMEOUT_S": 1}, 4, "giving up"),
        # A host that may drop packets silently: the wait is bounded all the same.
        (
            {"BROKER_HOSTS": [["10.255.255.1", 61613]], "STARTUP_CONNECT_TIMEOUT_S": 1},
            4,
            "giving up",
        ),
        ({"SUBSCRIBE_DESTINATIONS": ["epictopic"]}, 2, "must be /topic/<name> or /queue/<name>"),
    ],
)
def test_startup_failures_say_what_is_wrong_in_words_and_exit_code(
    start_process: StartProcess, changes: dict, code: int, words: str
) -> None:
    consumer = start_process(consumer_settings("/topic/unused") | changes)
    assert consumer.wait(timeout=60) == code
    assert words in consumer.output()


def test_the_summary_backlog_counts_the_frames_in_ingest_as_well(caplog) -> None:
    from fastmon.runtime.consumer import Consumer
    from fastmon.transport.base import Delivery

    consumer = Consumer(destinations=["/queue/fastmon.summary"], relay=False)
    frame = Delivery(stf_body("stf_gen", RUN, 1).encode(), {}, consumer.transport.generation)
    for _ in range(3):
        consumer.intake.put(frame)
    consumer.in_flight.append([frame, frame])  # handed to ingest, not yet committed
    with caplog.at_level("INFO", logger="fastmon.consumer"):
        consumer._summary()
    assert "backlog 5," in caplog.text
