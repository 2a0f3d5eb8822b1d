"""A run's content over the API: its summary, one histogram (UHI JSON, or ``?format=root``)
and all of them as one ROOT file; ``?window=last`` the moving window. Each view calls one
service of ``fastmon.content.served``."""

from __future__ import annotations

import json
from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from fastmon.api.views import FastmonAuth
from fastmon.content import served
from fastmon.content.histograms import Content
from fastmon.content.references import references
from fastmon.models import ContentReference, Run
from fastmon.quality.contentchecks import content_quality

_WINDOW = OpenApiParameter(
    "window",
    str,
    enum=[*served.WINDOWS, "reference"],
    description="run (default): the whole run; last: the moving window; reference: the "
    "detector's reference (any run's URL serves it)",
)
_FORMAT = OpenApiParameter(
    "format",
    str,
    enum=["json", "root"],
    description="json (default): UHI's serialization; root: a ROOT file",
)


class RootFileRenderer(BaseRenderer):
    """``?format=root``: a ROOT file, as written (an error's detail as JSON text)."""

    media_type = "application/octet-stream"
    format = "root"
    charset = None
    render_style = "binary"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class _ContentView(FastmonAuth):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, RootFileRenderer]

    def run(self, run_number: int) -> Run:
        return get_object_or_404(Run, run_number=run_number)

    def window(self) -> str:
        window = self.request.query_params.get("window", "run")
        if window not in (*served.WINDOWS, "reference"):
            raise ValidationError({"window": f"one of {', '.join(served.WINDOWS)}, reference"})
        return window


class RunContentView(_ContentView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, run_number: int) -> Response:
        """The run's cycle, when it was merged, TFs decoded, corrupt TFs, unmapped sources,
        hits and TFs per detector, its histograms with their URLs, and the content checks'
        results per detector (``quality``)."""
        run = self.run(run_number)
        found = served.summary(run)
        found["histograms"] = [
            {"name": name, "url": request.build_absolute_uri(reverse(
                "fastmon:run-histogram", args=[run_number, *name.split("/", 1)]))}
            for name in found["histograms"]
        ]  # fmt: skip
        found["root_url"] = request.build_absolute_uri(
            reverse("fastmon:run-histograms-root", args=[run_number])
        )
        found["quality"] = content_quality(run)
        found["references"] = {  # what pages overlay: each referenced detector's spectra
            detector: {h["name"].split("/", 1)[1]: f"{h['url']}?window=reference"
                       for h in found["histograms"] if h["name"].startswith(f"{detector}/")}
            for detector in ContentReference.objects.values_list("detector", flat=True)
        }  # fmt: skip
        return Response(found)


class HistogramView(_ContentView):
    @extend_schema(parameters=[_WINDOW, _FORMAT], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, run_number: int, group: str, name: str) -> Any:
        """One histogram: UHI JSON (the object at the top level), or ``?format=root`` a ROOT
        file holding it under its short name."""
        window = self.window()
        if window == "reference":
            self.run(run_number)
            content = references().get(group) or Content()
        else:
            content = served.run_content(self.run(run_number), window)
        histogram = content.histograms.get(f"{group}/{name}")
        if histogram is None:
            raise NotFound(f"run {run_number} has no histogram {group}/{name}")
        if request.accepted_renderer.format == "root":
            return _root(served.root_file({name: histogram}), f"{run_number}_{group}_{name}")
        return Response(served.uhi(histogram))


class RunHistogramsRootView(_ContentView):
    renderer_classes = [RootFileRenderer]

    @extend_schema(parameters=[_WINDOW], responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, run_number: int) -> Response:
        """All of the run's histograms as one ROOT file (a directory per detector)."""
        content = served.run_content(self.run(run_number), self.window())
        return _root(served.root_file(content.histograms), f"run_{run_number}")


def _root(data: bytes, stem: str) -> Response:
    return Response(data, headers={"Content-Disposition": f'attachment; filename="{stem}.root"'})
