"""References over the API: ``references/`` lists each detector's, ``POST`` makes a run's
histograms of a detector its reference (replacing the one it had; a login needed), ``DELETE
references/<detector>/`` removes one. The service is ``fastmon.content.references``."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from fastmon.api.openapi import ModelSerializer, component
from fastmon.api.views import FastmonViewSet
from fastmon.content import stored
from fastmon.content.references import Refused, choose_reference
from fastmon.models import ContentReference, Run


@component("ContentReference")
class ReferenceSerializer(ModelSerializer):
    """A reference as listed: its run and when and by whom it was chosen, and its histograms'
    names (the bins are served as the run's were, not here). ``replaced`` (in a POST's
    answer): the run whose reference this one replaced, or null."""

    run_number = serializers.IntegerField(source="run.run_number")
    histograms = serializers.SerializerMethodField()
    replaced = serializers.SerializerMethodField()

    class Meta:
        model = ContentReference
        fields = ["detector", "run_number", "chosen_at", "chosen_by", "histograms", "replaced"]
        read_only_fields = ["chosen_at", "chosen_by"]
        extra_kwargs: dict[str, Any] = {
            "detector": {"validators": []}
        }  # another POST replaces a reference

    def get_histograms(self, reference: ContentReference) -> list[str]:
        return sorted(set(stored.names(bytes(reference.data))))  # the bins not decoded

    def get_replaced(self, reference: ContentReference) -> int | None:
        return self.context.get("replaced")


class ReferenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       mixins.DestroyModelMixin, FastmonViewSet):  # fmt: skip
    """Each detector's reference: a copy of one run's histograms of it, as they were when
    chosen, which ReferenceComparison compares runs with."""

    queryset = ContentReference.objects.select_related("run")
    serializer_class = ReferenceSerializer
    pagination_class = None
    lookup_field = "detector"
    lookup_value_regex = "[^/]+"

    @extend_schema(request=ReferenceSerializer, responses={201: ReferenceSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Make ``run_number``'s histograms of ``detector`` its reference: 400 for a detector
        not in the map or a run without content yet, 404 for an unknown run."""
        found = ReferenceSerializer(data=request.data)
        found.is_valid(raise_exception=True)
        detector = found.validated_data["detector"]
        run = get_object_or_404(Run, run_number=found.validated_data["run"]["run_number"])
        before = self.queryset.filter(detector=detector).first()
        try:
            reference = choose_reference(detector, run, by=self.user_name())
        except Refused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        replaced = before.run.run_number if before else None
        answer = ReferenceSerializer(reference, context={"replaced": replaced})
        return Response(answer.data, status=status.HTTP_201_CREATED)
