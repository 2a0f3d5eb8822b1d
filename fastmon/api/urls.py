from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from fastmon.api import content, references, views


class OptionalSlashRouter(DefaultRouter):
    """Every route with or without its trailing slash: ``api/events?since=0`` answers (a 301
    would drop a POST's body and costs a client a round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("fastmon-files", views.FastMonFileViewSet, basename="fastmon-file")
router.register("runs", views.RunViewSet, basename="run")
router.register("stf-files", views.StfFileViewSet, basename="stf-file")
router.register("sampling-policies", views.SamplingPolicyViewSet, basename="sampling-policy")
router.register("subscribers", views.SubscriberViewSet, basename="subscriber")
router.register("dead-letters", views.DeadLetterViewSet, basename="dead-letter")
router.register("slices", views.SliceViewSet, basename="slice")
router.register("alarms", views.AlarmViewSet, basename="alarm")
router.register("events", views.EventViewSet, basename="event")
router.register("references", references.ReferenceViewSet, basename="reference")

# A run's content first: the router's runs/<run_number>/ routes do not take these paths.
urlpatterns = [
    path("runs/<int:run_number>/content/", content.RunContentView.as_view(), name="run-content"),
    path(
        "runs/<int:run_number>/histograms.root",
        content.RunHistogramsRootView.as_view(),
        name="run-histograms-root",
    ),
    path(
        "runs/<int:run_number>/histograms/",
        content.RunHistogramsView.as_view(),
        name="run-histograms",
    ),
    path(
        "runs/<int:run_number>/histograms/<str:group>/<str:name>/",
        content.HistogramView.as_view(),
        name="run-histogram",
    ),
    path("schema/", views.SchemaView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="fastmon:api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
