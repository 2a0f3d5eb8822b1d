"""Shifter pages following a run's content: how soon after a merge each page has drawn it, and
what a page fetches to draw it.

    .venv/bin/python benchmarks/content_pages.py [--pages 50] [--clients 0] [--cycles 5]
        [--timeout 60] [--pool N]

Needs the services (`scripts/services.sh up`) and Debian's Chromium (/usr/bin/chromium, driven
by Playwright). Serves the test site under uvicorn on its own database (fastmon_bench_pages,
created afresh) and opens ``--pages`` run pages in one Chromium, a browser context each (each
its own connections, as shifters on their own machines). Each cycle, this process writes an
ETF1 STF, announces and samples it and merges (as run_fastmon's loops do); the merge's live event
makes every page fetch the summary and the histograms it shows and redraw (``content.js`` sets
``#detectors[data-drawn-cycle]`` once every panel is drawn). Prints p50/p99/max of merge (its
commit) → drawn over pages and cycles beside the issue's target (p99 <= 1 s); a page that did
not draw a cycle within ``--timeout`` s, or drew it over a failed fetch (a stale panel), counts
as never. Then when the pages' fetches started and ended, the server's and Chromium's CPU a
cycle, PostgreSQL connections at the peak, and the bytes a page fetched per cycle by kind
(summary, histograms), checking that it fetched only the histograms it shows. BEMC has a
reference, so its spectra overlay one. ``--pool N``: the server takes its connections from
Django's pool of N (psycopg-pool) instead of opening one per request in flight.

``--clients N`` adds N lightweight clients beside the pages, standing in for pages on other
machines (Chromium costs 0.1-0.25 s of CPU a page a cycle: 50 of them on the server's own cores
measure the cores): each its own websocket and HTTP connection, making exactly a page's requests
on each event (``Clients``), timed from the merge to the last byte of its histograms.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "fastmon_bench_pages"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["FASTMON_DB_NAME"] = DB_NAME
# Playwright's sync API keeps an event loop in this thread; the ORM calls here are synchronous.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import django  # noqa: E402
import psycopg  # noqa: E402

from benchmarks.page_clients import SHOWN, Clients  # noqa: E402
from fastmon.testing.network import free_port  # noqa: E402

TARGET_S = 1.0
RUN = 100700
TFS = 40  # per STF, as the browser test writes them
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
REFERENCED = "BEMC"
# In every page before its scripts: the wall-clock time each cycle was drawn in full, and room
# for every fetch's timing (the default buffer keeps 250).
WATCH = """
window.fastmonDrawn = {};
new MutationObserver((records) => {
  for (const record of records) {
    const cycle = record.target.dataset.drawnCycle;
    if (!cycle || cycle in window.fastmonDrawn) continue;
    window.fastmonDrawn[cycle] = Date.now();
    window.fastmonReport(Number(cycle)); // tells the benchmark, which need not poll the pages
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-drawn-cycle"] });
performance.setResourceTimingBufferSize(100000);
"""
# A page's fetches since the last call, in wall-clock ms, and when it drew ``cycle``.
COLLECT = """(cycle) => {
  const fetches = performance.getEntriesByType("resource")
    .filter((e) => e.initiatorType === "fetch")
    .map((e) => ({ url: e.name, start: performance.timeOrigin + e.startTime,
                   end: performance.timeOrigin + e.responseEnd,
                   transfer: e.transferSize, body: e.encodedBodySize, decoded: e.decodedBodySize,
                   status: e.responseStatus }));
  performance.clearResourceTimings();
  return { drawn: window.fastmonDrawn[cycle] ?? null, fetches };
}"""


def server_params() -> dict[str, Any]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return {k.lower(): db[k] for k in ("HOST", "PORT", "USER", "PASSWORD")}


def recreate_database() -> None:
    """A database of this benchmark's own, so parallel tests and benchmarks keep theirs."""
    with psycopg.connect(**server_params(), dbname="postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def serve(log: Path, pool: int) -> tuple[subprocess.Popen, int]:
    """The test site under uvicorn (one process, as tests/test_views_browser.py serves it);
    ``pool``: its database connections from a pool of at most that many (Django's, which needs
    psycopg-pool) instead of one per request in flight."""
    port = free_port()
    argv = ["-m", "uvicorn", "tests.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    if pool:
        argv = ["-c", "import sys, tests.settings as s, uvicorn; "
                "s.DATABASES['default']['OPTIONS'] = {'pool': {'max_size': int(sys.argv[1])}}; "
                "uvicorn.run('tests.asgi:application', host='127.0.0.1', port=int(sys.argv[2]))",
                str(pool), str(port)]  # fmt: skip
    server = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=log.open("wb"),
                              stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    deadline = time.monotonic() + 30
    while "Uvicorn running" not in log.read_text(errors="replace"):
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"uvicorn did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return server, port


def produce(data: Path, sequence: int) -> None:
    """One STF's content, sampled as a worker samples it: a partial waiting for the merge."""
    from fastmon.sampling.service import sample_stfs
    from fastmon.testing.announcing import announce
    from fastmon.testing.content import write_etf1_stf
    from fastmon.testing.messages import stf_name

    written = write_etf1_stf(data / stf_name(RUN, sequence), TFS, seed=sequence)
    sample_stfs(announce("stf_ready", RUN, sequence, data_dir=data, tf_count=TFS,
                         tf_offsets=written.offsets))  # fmt: skip


def fetched(url: str) -> tuple[str, list[str]]:
    """A fetch's kind (summary, histograms, other) and the histograms it asks for (the
    references' as ``NAME (reference)``)."""
    parts = urlsplit(url)
    if parts.path.endswith("/content/"):
        return "summary", []
    if parts.path.endswith("/histograms/"):
        query = parse_qs(parts.query)
        references = [f"{n} (reference)" for n in query.get("reference", [])]
        return "histograms", [*query.get("name", []), *references]
    return "other", [parts.path]


def wait_drawn(pages: list[Any], done: Counter[int], cycle: int, timeout: float,
               clients: Clients | None) -> bool:  # fmt: skip
    """Wait until every page and client has ``cycle`` drawn (at most ``timeout`` s); whether
    all did. The times are their own: waiting here costs them nothing."""

    def all_drawn() -> bool:
        return done[cycle] == len(pages) and (
            clients is None or len(clients.drawn[cycle]) == clients.count
        )

    deadline = time.monotonic() + timeout
    while not all_drawn() and time.monotonic() < deadline:
        pages[0].wait_for_timeout(100)  # Playwright hands over the pages' reports meanwhile
    return all_drawn()


def count_connections(peak: list[int], stop: threading.Event) -> None:
    """The benchmark database's PostgreSQL connections (the server's and this process's one),
    every 50 ms, the most in ``peak[0]``: how many a burst of page requests holds at once."""
    count = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    with psycopg.connect(**server_params(), dbname="postgres", autocommit=True) as conn:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], (conn.execute(count, [DB_NAME]).fetchone() or (0,))[0])


def cpu_seconds(server: int, clients: Clients | None) -> Counter[str]:
    """CPU time so far (clock ticks) of this process's descendants: the server, Chromium's
    processes, the rest (Playwright's driver), and of the clients' thread: whom a cycle's work
    fell on."""
    parents: dict[int, tuple[int, str, int]] = {}
    found: Counter[str] = Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        name = text[text.index("(") + 1 : text.rindex(")")]
        parents[int(stat.parent.name)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]))
    mine = {os.getpid()}
    while grown := {p for p, (parent, _, _) in parents.items() if parent in mine} - mine:
        mine |= grown
    for pid in mine - {os.getpid()}:
        _, name, ticks = parents[pid]
        kind = "server" if pid == server else "browser" if "chrom" in name else "driver"
        found[kind] += ticks
    found["clients"] = round(clients.cpu() * os.sysconf("SC_CLK_TCK")) if clients else 0
    return found


def quantile(values: list[float], q: float) -> float:
    """Nearest rank: a page-cycle never drawn (inf) counts, as a shifter would count it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=50, help="Chromium pages (at least 1)")
    parser.add_argument("--clients", type=int, default=0, help="lightweight clients beside")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60, help="s a cycle waits for pages")
    parser.add_argument("--pool", type=int, default=0, help="serve with a connection pool")
    args = parser.parse_args()
    if args.pool and importlib.util.find_spec("psycopg_pool") is None:
        sys.exit("--pool needs psycopg-pool: .venv/bin/pip install psycopg-pool")
    if args.pages < 1:
        sys.exit("--pages: at least one Chromium page")
    data = Path(tempfile.mkdtemp(prefix="fastmon-bench-pages-"))
    os.environ["FASTMON_TEST_SETTINGS"] = json.dumps({"DATA_ROOTS": [str(data)]})
    recreate_database()
    django.setup()
    from django.core.management import call_command
    from playwright.sync_api import sync_playwright

    from fastmon.content.detectors import detector_map
    from fastmon.content.merging import merge_cycle
    from fastmon.content.references import choose_reference
    from fastmon.ingest.pipeline import ingest_message
    from fastmon.live.events import newest_event_sequence
    from fastmon.models import Run
    from fastmon.testing.messages import example

    call_command("migrate", verbosity=0)
    ingest_message(json.dumps(example("run_imminent", run_id=RUN)))
    produce(data, 1)
    merge_cycle()
    choose_reference(REFERENCED, Run.objects.get(run_number=RUN))
    shown = {f"{d.name}/{n}" for d in detector_map() for n in SHOWN}
    shown |= {f"{REFERENCED}/{n} (reference)" for n in SHOWN if n != "occupancy"}
    server, port = serve(data / "uvicorn.log", args.pool)
    peak, stop = [0], threading.Event()
    figures: dict[str, Any] = {k: [] for k in ("latency", "start", "end", "merge", "errors",
                                                "peaks", "client latency")}  # fmt: skip
    figures.update(kinds=Counter(), client_kinds=Counter(), names=Counter(), cpu=Counter(),
                   exact=0, stale=0)  # fmt: skip
    playwright, done, clients = None, Counter[int](), None
    try:
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(args.pages):
            page = browser.new_context().new_page()  # a context each: connections of its own
            page.add_init_script(WATCH)
            page.expose_function("fastmonReport", lambda cycle: done.update([cycle]))
            page.on("pageerror", lambda error: figures["errors"].append(str(error)))
            page.goto(f"http://127.0.0.1:{port}/fastmon/runs/{RUN}/")
            pages.append(page)
        if args.clients:
            clients = Clients(args.clients, port, RUN, newest_event_sequence())
        for page in pages:
            page.wait_for_selector("#fastmon-live-status[data-state='live']", timeout=60_000)
        if not wait_drawn(pages, done, 1, args.timeout, clients):
            sys.exit("the pages or clients did not draw the first cycle")
        for page in pages:
            page.evaluate(COLLECT, 1)  # the first drawing's fetches are not a cycle's
        threading.Thread(target=count_connections, args=(peak, stop), daemon=True).start()
        for cycle in range(2, args.cycles + 2):
            produce(data, cycle)
            time.sleep(1)  # the sampling's live events drawn: the merge alone moves the pages
            peak[0] = 0
            cpu = cpu_seconds(server.pid, clients)
            begin = time.time()
            merge_cycle()
            merged = time.time()
            figures["merge"].append(merged - begin)
            wait_drawn(pages, done, cycle, args.timeout, clients)
            figures["peaks"].append(peak[0])
            figures["cpu"].update(cpu_seconds(server.pid, clients))
            figures["cpu"].subtract(cpu)
            for page in pages:
                tally(figures, page.evaluate(COLLECT, cycle), merged, shown)
            if clients:
                tally_clients(figures, clients, cycle, merged)
            time.sleep(1)
    finally:
        stop.set()
        if clients is not None:
            clients.stop()
        if playwright is not None:
            playwright.stop()
        server.terminate()
        server.wait(30)
    report(args, figures, shown)


def count_fetch(kinds: Counter[str], kind: str, fetch: dict[str, Any]) -> None:
    for figure, value in (("requests", 1), ("transfer", fetch["transfer"]),
                          ("body", fetch["body"]), ("decoded", fetch.get("decoded", 0)),
                          ("failed", fetch["status"] != 200)):  # fmt: skip
        kinds[f"{kind} {figure}"] += value


def tally(figures: dict[str, Any], seen: dict[str, Any], merged: float, shown: set[str]) -> None:
    """One page's cycle: when it drew, what it fetched (kind, bytes, status, which histograms).
    A page whose fetch failed set data-drawn-cycle over a stale panel: not drawn, for us."""
    fetches, mine = seen["fetches"], []
    failed = any(f["status"] != 200 for f in fetches)
    figures["stale"] += failed and seen["drawn"] is not None
    drawn = seen["drawn"] is not None and not failed
    figures["latency"].append(seen["drawn"] / 1000 - merged if drawn else math.inf)
    if fetches:
        figures["start"].append(min(f["start"] for f in fetches) / 1000 - merged)
        figures["end"].append(max(f["end"] for f in fetches) / 1000 - merged)
    for f in fetches:
        kind, names = fetched(f["url"])
        count_fetch(figures["kinds"], kind, f)
        mine += names
        figures["names"].update(names)
    summaries = sum(fetched(f["url"])[0] == "summary" for f in fetches)
    figures["exact"] += sorted(mine) == sorted(shown) and len(fetches) == summaries + 1 == 2


def tally_clients(figures: dict[str, Any], clients: Clients, cycle: int, merged: float) -> None:
    """The clients' cycle: when each had its histograms (never: inf), what they fetched."""
    drawn = clients.drawn[cycle]
    figures["client latency"] += [drawn[n] - merged if n in drawn else math.inf
                                  for n in range(clients.count)]  # fmt: skip
    for f in clients.fetches[cycle]:
        count_fetch(figures["client_kinds"], f["kind"], f)


def report(args: argparse.Namespace, figures: dict[str, Any], shown: set[str]) -> None:
    """The figures, beside the target, as the other benchmarks print theirs."""
    latency, clients = figures["latency"], figures["client latency"]
    n, missed = len(latency), sum(1 for x in latency if x == math.inf) - figures["stale"]

    def ms(values: list[float]) -> str:
        return "  ".join(f"{label} {quantile(values, q) * 1000:6.0f} ms"
                         for label, q in (("p50", 50), ("p99", 99), ("max", 100)))  # fmt: skip

    def target(values: list[float]) -> str:
        return f"p99/1 s {quantile(values, 99) / TARGET_S:.2f}"

    served = f"a pool of {args.pool} connections" if args.pool else "a connection per request"
    beside = f" and {args.clients} lightweight clients" if args.clients else ""
    print(f"{args.pages} run pages (one Chromium, a context each){beside}, {args.cycles} merges; "
          f"the test site under uvicorn (one process, {served}); {n} page-cycles")  # fmt: skip
    print(
        f"merge → drawn in every page    {ms(latency)}  {target(latency)}; never drawn (in "
        f"{args.timeout:.0f} s) {missed}, drawn stale (a fetch failed) {figures['stale']}"
    )
    print(f"  merge → first fetch starts   {ms(figures['start'])}")
    print(f"  merge → last fetch answered  {ms(figures['end'])}")
    if clients:
        never = sum(1 for x in clients if x == math.inf)
        print(f"merge → answered, clients      {ms(clients)}  {target(clients)}; never {never}")
        print(f"every page and client          {ms(latency + clients)}  "
              f"{target(latency + clients)}")  # fmt: skip
    merge = statistics.median(figures["merge"]) * 1000
    print(f"  the merge itself             median {merge:.0f} ms; PostgreSQL connections at the "
          f"peak of a cycle: {max(figures['peaks'])}")  # fmt: skip
    tick = os.sysconf("SC_CLK_TCK") * args.cycles
    cpu = {k: v / tick for k, v in figures["cpu"].items()}
    line = (
        f"  CPU a cycle (merge to all drawn): server {cpu['server']:.2f} s, Chromium "
        f"{cpu['browser']:.2f} s ({cpu['browser'] / args.pages * 1000:.0f} ms a page), "
    )
    if clients:
        line += f"clients {cpu['clients']:.2f} s, "
    print(line + f"Playwright {cpu['driver']:.2f} s; {os.cpu_count()} cores")
    fetches(f"a page (Chromium), {n} page-cycles", figures["kinds"], n, args.cycles)
    if clients:
        fetches(f"a client, {len(clients)} client-cycles", figures["client_kinds"],
                len(clients), args.cycles)  # fmt: skip
    names = figures["names"]
    print("histograms a page asked for, times per page-cycle: " + ", ".join(
          f"{k} {names[k] / n:.2f}x" for k in sorted(names)))  # fmt: skip
    print(f"only the histograms shown, each once, in one request beside the summary: "
          f"{figures['exact']} of {n} page-cycles (not asked for: "
          f"{sorted(shown - set(names)) or 'none'}, asked for but not shown: "
          f"{sorted(set(names) - shown) or 'none'})")  # fmt: skip
    errors = figures["errors"]
    print(f"page errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))


def fetches(who: str, kinds: Counter[str], n: int, cycles: int) -> None:
    """Requests and bytes per page (or client) per cycle, by kind."""
    seen = [k for k in ("summary", "histograms", "other") if kinds[f"{k} requests"]]
    requests = sum(kinds[f"{k} requests"] for k in seen)
    total = sum(kinds[f"{k} transfer"] for k in seen)
    print(f"fetched per page per cycle, {who}: {requests / n:.1f} requests, "
          f"{total / n / 1000:.1f} kB transferred ({total / cycles / 1e6:.2f} MB a cycle for "
          f"all)")  # fmt: skip
    for kind in seen:
        decoded = kinds[f"{kind} decoded"]
        print(f"  {kind:10s} {kinds[f'{kind} requests'] / n:5.1f} requests  "
              f"{kinds[f'{kind} transfer'] / n / 1000:9.1f} kB transferred  "
              f"({kinds[f'{kind} body'] / n / 1000:9.1f} kB bodies"
              + (f", {decoded / n / 1000:.1f} kB decoded" if decoded else "")
              + f")  failed (not 200) {kinds[f'{kind} failed']}")  # fmt: skip


if __name__ == "__main__":
    main()
