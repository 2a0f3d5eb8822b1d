"""Mount fastmon under a prefix of its own in the site, e.g.
``path("fastmon/", include("fastmon.urls"))``: every link it makes is reversed, so it honours
the prefix and the site's script name (``/swf-monitor``)."""

from django.urls import include, path

app_name = "fastmon"

urlpatterns = [
    path("api/", include("fastmon.api.urls")),
]
