"""The live pages: server-rendered HTML that small JS modules keep up to date over the
websocket. Each view reads through one selector."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import get_script_prefix

from fastmon import overview
from fastmon.access import may_read
from fastmon.conf import fastmon_settings
from fastmon.live.events import newest_event_sequence
from fastmon.models import Run, StfFile, Subscriber

View = Callable[..., HttpResponse]


def readable(view: View) -> View:
    """PAGES_REQUIRE_LOGIN sends anonymous readers to the site's login (swf-monitor's SSO)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_read(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded


def _render(
    request: HttpRequest, template: str, read: Callable[[], dict[str, Any]]
) -> HttpResponse:
    # The sequence is read before the data: an event committed in between is then replayed by
    # the websocket (at worst shown twice), never missed.
    newest = newest_event_sequence()
    return render(request, f"fastmon/{template}", {
        **read(),
        "base_template": fastmon_settings.BASE_TEMPLATE,
        # The websocket is routed below the site's script prefix, like every link.
        "websocket_path": get_script_prefix() + fastmon_settings.WEBSOCKET_PATH,
        "newest_sequence": newest,
    })  # fmt: skip


@readable
def dashboard(request: HttpRequest) -> HttpResponse:
    return _render(request, "dashboard.html", overview.dashboard)


@readable
def run_detail(request: HttpRequest, run_number: int) -> HttpResponse:
    run = get_object_or_404(Run, run_number=run_number)
    return _render(request, "run.html", lambda: overview.run_page(run))


@readable
def stf_detail(request: HttpRequest, stf_filename: str) -> HttpResponse:
    stf = get_object_or_404(StfFile.objects.select_related("run"), stf_filename=stf_filename)
    return _render(
        request, "stf.html", lambda: {"stf": stf, "samples": stf.tf_samples.order_by("tf_first")}
    )


@readable
def dead_letters(request: HttpRequest) -> HttpResponse:
    letters = overview.pending_dead_letters_to_show()
    return _render(request, "dead_letters.html", lambda: {"letters": letters[:200]})


@readable
def subscribers(request: HttpRequest) -> HttpResponse:
    return _render(
        request, "subscribers.html", lambda: {"subscribers": Subscriber.objects.order_by("name")}
    )
