"""The live pages in a real browser: Debian's headless Chromium driven by Playwright
(``chromium``), the test site served by uvicorn (``serve``), and screenshots for a human to
look at (``shot``, into ``test-artifacts/`` of the working directory: the checkout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connections

from fastmon.testing.network import free_port
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.waiting import fail

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path("test-artifacts")


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium (Playwright's sync API: set DJANGO_ALLOW_ASYNC_UNSAFE first, its
    event loop lives in the caller's thread)."""
    if not Path(CHROMIUM).exists():
        fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
        # Inside Playwright's event loop the ORM got a connection of its own context, which the
        # test database's teardown would not see: close it here, where it was opened.
        connections.close_all()


def serve(start_process: Callable[..., ServiceProcess],
          application: str = "tests.asgi:application") -> int:  # fmt: skip
    """A site under uvicorn (``start_process``: fastmon's tests' fixture); returns its port."""
    port = free_port()
    server = start_process({}, command="uvicorn", argv=[
        "-m", "uvicorn", application, "--host", "127.0.0.1", "--port", str(port),
    ])  # fmt: skip
    server.wait_for_log("Uvicorn running")
    return port


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
