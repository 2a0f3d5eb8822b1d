"""A run's statistics: counters kept as samples are written agree with the rows they count, two
writers never deadlock, and a recount repairs what was changed behind fastmon's back."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count, Sum

from fastmon.models import Run, RunCounter, StfFile, TfSample
from fastmon.sampling.samples import change_sample
from fastmon.sampling.service import sample_stfs
from fastmon.statistics import counters
from fastmon.statistics.read import run_statistics
from fastmon.testing.announcing import announce

RUN = 102100


def sampled(run: int, stfs: int, state: str = "physics") -> None:
    """STFs 1 to ``stfs`` of ``run`` announced ready in ``state`` (every third in standby), then
    sampled."""
    names = [announce("stf_ready", run, n, substate=state if n % 3 else "standby")[0]
             for n in range(1, stfs + 1)]  # fmt: skip
    sample_stfs(names)


@pytest.mark.django_db
def test_statistics_agree_with_the_rows_they_summarise(client, assert_counters_agree) -> None:
    sampled(RUN, 9)
    sampled(RUN + 1, 2)  # another run's samples count elsewhere
    samples = TfSample.objects.filter(run__run_number=RUN).order_by("id")
    first, second, third = samples[:3]
    change_sample(first, {"status": "processing"})
    change_sample(first, {"status": "done"})
    change_sample(second, {"metadata": {"note": "seen"}})  # no status move
    client.force_login(User.objects.create_superuser("crew", "crew@example.org", "pw"))
    admin = f"/admin/fastmon/tfsample/{third.pk}/change/"
    assert client.post(admin, {"status": "failed", "metadata": "{}"}).status_code == 302
    deleting = client.post(f"/admin/fastmon/tfsample/{third.pk}/delete/", {"post": "yes"})
    assert deleting.status_code == 403  # a sample is a record
    stats = run_statistics(Run.objects.get(run_number=RUN))
    assert stats["tf_samples"] == samples.count() == 63
    stored = dict(samples.order_by().values_list("status").annotate(n=Count("id")))
    assert stats["tf_sample_status_counts"] == stored == {"registered": 61, "done": 1, "failed": 1}
    by_state = samples.order_by().values_list("stf__state", "stf__substate").annotate(n=Count("id"))
    assert {(r["state"], r["substate"]): r["tf_samples"] for r in stats["tf_samples_by_state"]} == {
        (state, substate): n for state, substate, n in by_state
    }
    tfs = samples.aggregate(n=Sum("tf_count"))["n"]
    stfs = StfFile.objects.filter(run__run_number=RUN, status="sampled")
    assert not stfs.exclude(tf_count=None).exists()  # so each has DEFAULT_TF_COUNT TFs
    assert stats["achieved_fraction"] == pytest.approx(tfs / (stfs.count() * 1000))
    assert stats["latency_seconds"]["sampled_to_published"]["count"] == 0  # none went out
    assert_counters_agree()


@pytest.mark.django_db
def test_a_recount_repairs_counters_changed_behind_fastmons_back(capsys) -> None:
    sampled(RUN, 3)
    run = Run.objects.get(run_number=RUN)
    RunCounter.objects.filter(run=run, name=counters.SAMPLES).update(value=5)
    TfSample.objects.filter(run=run, tf_first=0).delete()  # by hand, as in SQL
    assert run_statistics(run)["tf_samples"] == 5

    call_command("fastmon_recount", str(RUN))
    assert run_statistics(run)["tf_samples"] == TfSample.objects.filter(run=run).count()
    assert "counters written for 1 runs" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no such run: 999"):
        call_command("fastmon_recount", "999")


@pytest.mark.django_db(transaction=True)
def test_writers_counting_the_same_run_at_once_never_deadlock_nor_lose_counts() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    run = Run.objects.create(run_number=RUN)
    names = [f"status:{n}" for n in range(20)]
    failures: list[BaseException] = []

    def writer(order: list[str]) -> None:
        try:
            for _ in range(40):
                with transaction.atomic():
                    counters.add(counters.Deltas({(run.pk, name): 1 for name in order}))
        except BaseException as exc:  # a deadlock PostgreSQL broke
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(order,))
               for order in (names, names[::-1], names[5:] + names[:5])]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert set(counters.counters_of(run.pk).values()) == {3 * 40}
