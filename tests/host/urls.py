"""swf-monitor's URL shape: its own pages and API at the root paths it owns, fastmon under a
prefix of its own, the site's schema at /api/schema/."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from tests.host.api import router


def owned(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"swf-monitor's own page {request.path}")


urlpatterns = [
    path("fastmon-files/", owned, name="host-fastmon-files"),
    path("tf-slices/", owned, name="host-tf-slices"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/", include(router.urls)),
    path("fastmon/", include("fastmon.urls")),
]
