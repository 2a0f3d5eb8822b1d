"""Lightweight stand-ins for shifter pages (``benchmarks/content_pages.py --clients N``): each
its own websocket and HTTP connection, making exactly the requests ``content.js`` makes, so
that the server's side of "50 pages within 1 s of the merge" is measured without 50 Chromiums
on the server's own cores."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from typing import Any

import httpx
import websockets

from fastmon.conf import fastmon_settings

SHOWN = ("occupancy", "adc", "bx")  # what a panel draws (content.js)


def shown_by(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What content.js asks for, from the summary: each detector's SHOWN histograms that the
    run lists, and the references' spectra."""
    listed = {h["name"] for h in summary["histograms"]}
    names = [f"{d}/{n}" for d in sorted(summary["detectors"]) for n in SHOWN
             if f"{d}/{n}" in listed]  # fmt: skip
    references = [f"{d}/{n}" for d, spectra in summary["references"].items() for n in spectra
                  if n != "occupancy" and n in SHOWN]  # fmt: skip
    return names, references


class Clients:
    """``count`` stand-ins for pages on other machines, in a thread of this process: each with
    its own websocket and HTTP connection does on each content or quality event what content.js
    does: the summary, then what it shows in one request (gzip accepted); one drawing at a time
    and one more after; a failure tried again 1 s later. Bodies are counted, not decoded: the
    server's side is measured, not a browser's."""

    def __init__(self, count: int, port: int, run: int, since: int) -> None:
        self.count, self.run, self.since = count, run, since
        self.summary = f"http://127.0.0.1:{port}/fastmon/api/runs/{run}/content/"
        self.socket = f"ws://127.0.0.1:{port}/{fastmon_settings.WEBSOCKET_PATH}"
        self.drawn: dict[int, dict[int, float]] = defaultdict(dict)  # cycle: client: when
        self.fetches: dict[int, list[dict[str, Any]]] = defaultdict(list)  # by cycle
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._all(),), daemon=True)
        self.thread.start()

    def cpu(self) -> float:
        """The clients' CPU so far (s): their thread's."""
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident or 0))

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)

    async def _all(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        tasks = [asyncio.create_task(self._client(n)) for n in range(self.count)]
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, n: int) -> None:
        url = f"{self.socket}?since={self.since}&run={self.run}"
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        async with httpx.AsyncClient(headers=headers, timeout=120) as http, \
                websockets.connect(url) as socket:  # fmt: skip
            asked = asyncio.Event()
            asked.set()  # a page draws once as it loads
            drawer = asyncio.create_task(self._drawer(n, http, asked))
            try:
                async for message in socket:
                    frame = json.loads(message)
                    if frame["type"] == "events" and any(
                        e["kind"] in ("content", "quality") for e in frame["events"]):  # fmt: skip
                        asked.set()
            finally:
                drawer.cancel()

    async def _drawer(self, n: int, http: httpx.AsyncClient, asked: asyncio.Event) -> None:
        while True:
            await asked.wait()
            asked.clear()  # an event during the drawing sets it again: one more after
            if not await self._draw(n, http):
                await asyncio.sleep(1)
                asked.set()

    async def _draw(self, n: int, http: httpx.AsyncClient) -> bool:
        """One drawing: whether both answers were 200."""
        try:
            answer = await http.get(self.summary)
            summary = answer.json() if answer.status_code == 200 else None
            cycle = summary["cycle"] if summary else 0
            self._count(cycle, "summary", answer, answer.num_bytes_downloaded)
            if summary is None:
                return False
            names, references = shown_by(summary)
            query = [("name", x) for x in names] + [("reference", x) for x in references]
            async with http.stream("GET", summary["histograms_url"], params=query) as answer:
                body = sum([len(chunk) async for chunk in answer.aiter_raw()])
            self._count(cycle, "histograms", answer, body)
        except httpx.HTTPError:
            return False
        if answer.status_code == 200:
            self.drawn[cycle].setdefault(n, time.time())
        return answer.status_code == 200

    def _count(self, cycle: int, kind: str, answer: httpx.Response, body: int) -> None:
        head = sum(len(k) + len(v) + 4 for k, v in answer.headers.raw) + 17  # + status line
        self.fetches[cycle].append({"kind": kind, "body": body, "transfer": body + head,
                                    "status": answer.status_code})  # fmt: skip
