"""Mount fastmon under a prefix of its own in the site, e.g.
``path("fastmon/", include("fastmon.urls"))``: every link it makes is reversed, so it honours
the prefix and the site's script name (``/swf-monitor``)."""

from django.urls import include, path

from fastmon import health, metrics, views
from fastmon.processing.figures import ProcessingCollector
from fastmon.quality.alarms import ActiveAlarms

app_name = "fastmon"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("runs/<int:run_number>/", views.run_detail, name="run"),
    path("stf/<path:stf_filename>/", views.stf_detail, name="stf"),
    path("dead-letters/", views.dead_letters, name="dead-letters"),
    path("subscribers/", views.subscribers, name="subscribers"),
    path("api/", include("fastmon.api.urls")),
    path("health/live/", health.live, name="health-live"),
    path("health/ready/", health.ready, name="health-ready"),
    path(
        "metrics/",
        metrics.metrics_view,
        {"collectors": [ProcessingCollector(), ActiveAlarms()]},
        name="metrics",
    ),
]
