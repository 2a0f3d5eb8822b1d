from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from fastmon.content.detectors import detector_map
from fastmon.content.histograms import Content
from fastmon.content.references import Refused, choose_reference, reference_content
from fastmon.models import (
    Alarm,
    ContentReference,
    DeadLetter,
    QualityFlag,
    Run,
    SamplingPolicy,
    StfFile,
    Subscriber,
    TfSample,
)
from fastmon.sampling.ledger import check_params, save_policy_version
from fastmon.sampling.samples import change_sample
from fastmon.subscribers.rules import RequestError, Subscription, parse_subscription
from fastmon.subscribers.service import save_subscriber

SUBSCRIPTION_FIELDS = ["name", "destination", "filters", "fraction", "active", "idle_expiry_s"]
TF_SAMPLE_FIELDS = ["tf_filename", "stf", "run", "tf_first", "tf_last", "tf_count",
                    "file_size_bytes", "checksum", "size_estimated", "policy", "seed", "status",
                    "metadata", "published_at", "monitor_state", "tf_boundaries"]  # fmt: skip


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["run_number", "state", "substate", "started_at", "ended_at", "total_stf_files"]
    list_filter = ["state", "substate", "namespace"]
    search_fields = ["=run_number", "execution_id"]


@admin.register(StfFile)
class StfFileAdmin(admin.ModelAdmin):
    list_display = ["stf_filename", "run", "sequence", "size_bytes", "tf_count", "status"]
    list_filter = ["status", "state", "substate"]
    list_select_related = ["run"]
    search_fields = ["stf_filename"]
    raw_id_fields = ["run"]
    date_hierarchy = "received_at"


@admin.register(TfSample)
class TfSampleAdmin(admin.ModelAdmin):
    list_display = ["tf_filename", "tf_first", "tf_last", "tf_count", "file_size_bytes", "status"]
    list_filter = ["status"]
    search_fields = ["tf_filename", "=tf_file_id"]
    date_hierarchy = "created_at"
    # A sample is a record: status and metadata change as the API's PATCH changes them (counted,
    # and sent to swf-monitor); the rest is what was sampled, and samples are never deleted.
    fields = [*TF_SAMPLE_FIELDS]  # a list of its own, of ModelAdmin's type for fields
    readonly_fields = [name for name in TF_SAMPLE_FIELDS if name not in ("status", "metadata")]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: TfSample, form: Any, change: bool) -> None:
        stored = TfSample.objects.get(pk=obj.pk)
        change_sample(stored, {name: form.cleaned_data[name] for name in form.changed_data})


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["id", "received_at", "reason_code", "msg_type", "destination", "status"]
    list_filter = ["status", "reason_code", "msg_type"]
    search_fields = ["reason", "body"]
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    date_hierarchy = "received_at"


class SamplingPolicyForm(forms.ModelForm):
    """Parameters a policy can be made of (``fastmon.sampling.ledger.check_params``)."""

    class Meta:
        model = SamplingPolicy
        fields = ["name", "description", "params", "namespace", "run_type", "active"]

    def clean_params(self) -> Any:
        params = self.cleaned_data.get("params")
        try:
            check_params(params)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["params"]) from None
        return params


class SubscriberForm(forms.ModelForm):
    """The rules the API and the control destination apply (``fastmon.subscribers.rules``)."""

    subscription: Subscription

    class Meta:
        model = Subscriber
        fields = SUBSCRIPTION_FIELDS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data is None:  # ModelForm returns cleaned_data; the stubs allow any form's None
            data = self.cleaned_data
        try:
            self.subscription = parse_subscription({k: data.get(k) for k in SUBSCRIPTION_FIELDS})
        except RequestError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["name", "destination", "fraction", "active", "expires_at", "delivered_count",
                    "dropped_count", "last_delivery_at"]  # fmt: skip
    list_filter = ["active"]
    search_fields = ["name", "destination"]
    readonly_fields = ["expires_at", "delivered_count", "dropped_count", "last_delivery_at",
                       "last_error"]  # fmt: skip
    form = SubscriberForm

    def save_model(self, request: HttpRequest, obj: Subscriber, form: Any, change: bool) -> None:
        """Through the service, so the lease is renewed as a subscribe request would."""
        saved = save_subscriber(
            form.subscription, by=request.user.get_username(), subscriber_id=obj.pk
        )
        obj.pk, obj.expires_at = saved.pk, saved.expires_at


@admin.register(SamplingPolicy)
class SamplingPolicyAdmin(admin.ModelAdmin):
    """Saving a policy, new or changed, stores a new version; versions are never edited."""

    form = SamplingPolicyForm

    list_display = ["name", "version", "namespace", "run_type", "active", "created_at",
                    "created_by"]  # fmt: skip
    list_filter = ["active", "namespace", "run_type"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created_at", "created_by"]

    def save_model(
        self, request: HttpRequest, obj: SamplingPolicy, form: Any, change: bool
    ) -> None:
        save_policy_version(obj, created_by=request.user.get_username())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # TF samples point at their versions: the ledger must stay whole


class ReadOnlyAdmin(admin.ModelAdmin):
    """What the checks wrote: to read, never to edit (the checks own it)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alarm)
class AlarmAdmin(ReadOnlyAdmin):
    list_display = ["raised_at", "run", "check_name", "quality", "reason", "cleared_at"]
    list_filter = ["check_name", "quality"]
    list_select_related = ["run"]
    date_hierarchy = "raised_at"


@admin.register(QualityFlag)
class QualityFlagAdmin(ReadOnlyAdmin):
    list_display = ["run", "check_name", "quality", "start", "end", "reason"]
    list_filter = ["check_name", "quality"]
    list_select_related = ["run"]


class ContentReferenceForm(forms.ModelForm):
    """A detector and a run: the run's histograms of the detector, as they are now, become its
    reference (replacing the one it had)."""

    detector = forms.ChoiceField(choices=())

    class Meta:
        model = ContentReference
        fields = ["detector", "run"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("detector")  # none on the read-only page
        if isinstance(field, forms.ChoiceField):
            field.choices = [(d.name, d.name) for d in detector_map()]

    def validate_unique(self) -> None:
        """Another reference of the same detector replaces it: no uniqueness error."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if data.get("detector") and data.get("run"):
            try:
                reference_content(data["detector"], data["run"])
            except Refused as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(ContentReference)
class ContentReferenceAdmin(admin.ModelAdmin):
    """Made by choosing a run and a detector; then read-only (a copy of the run's histograms
    as they were: choose again to move it)."""

    form = ContentReferenceForm
    list_display = ["detector", "run", "chosen_at", "chosen_by"]
    list_select_related = ["run"]
    raw_id_fields = ["run"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["detector", "run", "chosen_at", "chosen_by", "histograms"] if obj else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_readonly_fields(request, obj) or ["detector", "run"]

    @admin.display(description="histograms")
    def histograms(self, obj: ContentReference) -> str:
        return ", ".join(sorted(Content.loads(bytes(obj.data)).histograms))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: ContentReference, form: Any, change: bool
    ) -> None:
        saved = choose_reference(form.cleaned_data["detector"], form.cleaned_data["run"],
                                 by=request.user.get_username())  # fmt: skip
        obj.pk = saved.pk
