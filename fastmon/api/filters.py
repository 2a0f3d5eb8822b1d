"""Filters of the API's lists (django-filter); each one is backed by an index."""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters as filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Subquery
from django_filters.fields import IsoDateTimeField

from fastmon.models import Alarm, DeadLetter, Run, Slice, StfFile, TfSample


class UtcDateTimeField(IsoDateTimeField):
    """ISO 8601, turned into UTC: PostgreSQL refuses UTC offsets past 15:59 that a client
    may well send (found by the schema-driven test)."""

    def to_python(self, value: str | None) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("date-time out of range") from None


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class TfSampleFilter(filters.FilterSet):
    """swf-monitor's filters (tf_filename, stf_filename, status), then fastmon's."""

    stf_filename = filters.CharFilter(field_name="stf__stf_filename")
    run_number = filters.NumberFilter(method="filter_run_number")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = TfSample
        fields = ["tf_filename", "stf_filename", "status", "run_number", "size_estimated",
                  "tf_boundaries"]  # fmt: skip

    def filter_run_number(self, samples: QuerySet, name: str, value: int) -> QuerySet:
        # The run's id looked up first: the page's count then scans one index, no join.
        run = Run.objects.filter(run_number=value).values("id")[:1]
        return samples.filter(run_id=Subquery(run))


class RunFilter(filters.FilterSet):
    class Meta:
        model = Run
        fields = ["run_number", "state", "substate", "namespace"]


class StfFileFilter(filters.FilterSet):
    run_number = filters.NumberFilter(field_name="run__run_number")
    sequence_min = filters.NumberFilter(field_name="sequence", lookup_expr="gte")
    sequence_max = filters.NumberFilter(field_name="sequence", lookup_expr="lte")
    received_after = UtcDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = UtcDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = StfFile
        fields = ["stf_filename", "run_number", "status", "state", "substate"]


class SliceFilter(filters.FilterSet):
    run_number = filters.NumberFilter(field_name="run__run_number")
    sample = filters.CharFilter(field_name="sample__tf_filename")

    class Meta:
        model = Slice
        fields = ["tf_filename", "run_number", "sample", "status", "worker"]


class DeadLetterFilter(filters.FilterSet):
    received_after = UtcDateTimeFilter(field_name="received_at", lookup_expr="gte")

    class Meta:
        model = DeadLetter
        fields = ["status", "reason_code", "msg_type", "destination"]


class AlarmFilter(filters.FilterSet):
    run_number = filters.NumberFilter(field_name="run__run_number")
    check = filters.CharFilter(field_name="check_name")
    active = filters.BooleanFilter(field_name="cleared_at", lookup_expr="isnull")
    unacknowledged = filters.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull")

    class Meta:
        model = Alarm
        fields = ["run_number", "check", "quality", "active", "unacknowledged"]
