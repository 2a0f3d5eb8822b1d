"""A run's content over the API: its summary, one histogram (UHI JSON, or ``?format=root``),
several in one answer (what a page shows, once a cycle) and all of them as one ROOT file;
``?window=last`` the moving window. The bins come from ``rendered``: decoded and rendered once
a cycle, whoever asks."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from fastmon.api import rendered
from fastmon.api.views import FastmonAuth
from fastmon.content import served
from fastmon.content.histograms import Content
from fastmon.models import ContentReference, Run
from fastmon.quality.contentchecks import content_quality

# The most histograms one request names, and the longest name: a bound on a hostile query.
MAX_NAMES, MAX_NAME = 64, 200
_ACCEPTS_GZIP = re.compile(r"\bgzip\b")
_WINDOW = OpenApiParameter(
    "window",
    str,
    enum=[*served.WINDOWS, "reference"],
    description="run (default): the whole run; last: the moving window; reference: the "
    "detector's reference (any run's URL serves it)",
)
_RUN_WINDOW = OpenApiParameter(
    "window", str, enum=list(served.WINDOWS),
    description="run (default): the whole run; last: the moving window",
)  # fmt: skip
_NAMES = OpenApiParameter(
    "name", str, many=True,
    description=f"a histogram of the run (``DETECTOR/name``), repeated; at most {MAX_NAMES} "
    "names in all",
)  # fmt: skip
_REFERENCES = OpenApiParameter(
    "reference", str, many=True,
    description="a histogram of a detector's reference (``DETECTOR/name``), repeated; one the "
    "detector's reference does not have (or no reference) is left out of the answer",
)  # fmt: skip
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

    def window(self, allowed: Sequence[str] = (*served.WINDOWS, "reference")) -> str:
        window = self.request.query_params.get("window", "run")
        if window not in allowed:
            raise ValidationError({"window": f"one of {', '.join(allowed)}"})
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
        found["histograms_url"] = request.build_absolute_uri(
            reverse("fastmon:run-histograms", args=[run_number])
        )
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
            source = rendered.references_of([group]).get(group) or rendered.Rendered(Content())
        else:
            source = rendered.run_histograms(run_number, window)[1]
        histogram = source.content.histograms.get(f"{group}/{name}")
        if histogram is None:
            raise NotFound(f"run {run_number} has no histogram {group}/{name}")
        if request.accepted_renderer.format == "root":
            return _root(served.root_file({name: histogram}), f"{run_number}_{group}_{name}")
        body = source.render([f"{group}/{name}"])[f"{group}/{name}"]
        if request.accepted_renderer.format == "json":
            return HttpResponse(body, content_type="application/json")
        return Response(json.loads(body))  # the browsable API


class RunHistogramsView(_ContentView):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="fastmon_api_runs_histograms_several",  # beside one histogram's
        parameters=[_NAMES, _REFERENCES, _RUN_WINDOW],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, run_number: int) -> HttpResponse:
        """Several histograms in one answer, as a page asks for what it shows each cycle:
        ``{"cycle", "histograms": {name: UHI}, "references": {name: UHI}}``; gzipped for a
        client that accepts it. 404 for a ``name`` the run does not have."""
        window = self.window(served.WINDOWS)
        names, referenced = self.names("name"), self.names("reference")
        if not 0 < len(names) + len(referenced) <= MAX_NAMES:
            raise ValidationError({"name": f"from 1 to {MAX_NAMES} histograms a request"})
        try:
            found = rendered.bundle(run_number, window, names, referenced)
        except rendered.Missing as exc:
            raise NotFound(f"run {run_number} has no histogram {exc}") from None
        zipped = _ACCEPTS_GZIP.search(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        body = found.gzipped if zipped else found.plain
        response = HttpResponse(body, content_type="application/json")
        response["Content-Length"] = str(len(body))
        if zipped:
            response["Content-Encoding"] = "gzip"
        patch_vary_headers(response, ["Accept-Encoding"])
        return response

    def names(self, parameter: str) -> list[str]:
        """The histograms named by ``parameter`` (``DETECTOR/name``, each once), bounded."""
        names = list(dict.fromkeys(self.request.query_params.getlist(parameter)))
        for name in names[: MAX_NAMES + 1]:  # more are refused whatever they are
            if len(name) > MAX_NAME or name.count("/") != 1 or not all(name.split("/")):
                raise ValidationError({parameter: f"not DETECTOR/name: {name[:MAX_NAME]!r}"})
        return names


class RunHistogramsRootView(_ContentView):
    renderer_classes = [RootFileRenderer]

    @extend_schema(parameters=[_RUN_WINDOW], responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, run_number: int) -> Response:
        """All of the run's histograms as one ROOT file (a directory per detector)."""
        content = rendered.run_histograms(run_number, self.window(served.WINDOWS))[1].content
        return _root(served.root_file(content.histograms), f"run_{run_number}")


def _root(data: bytes, stem: str) -> Response:
    return Response(data, headers={"Content-Disposition": f'attachment; filename="{stem}.root"'})
