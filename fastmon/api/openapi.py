"""fastmon's OpenAPI names, kept apart from its host's: every component is ``Fastmon``-prefixed,
and every choice set is a component of its own (``Fastmon<Model><Field>Enum``) instead of an
inline enum that drf-spectacular would name after the field alone, where a host's ``status``
field of other choices would collide with fastmon's."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent, build_choice_field
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

PREFIX = "Fastmon"


def component(name: str) -> Any:
    """Name a serializer's schema component ``Fastmon<name>`` (Patched and Paginated forms
    follow)."""
    return extend_schema_serializer(component_name=f"{PREFIX}{name}")


class NamedChoiceField(serializers.ChoiceField):
    """A model field's choices, as a schema component named after fastmon's model and field."""


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NamedChoiceField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        model = field.parent.Meta.model.__name__
        name = f"{PREFIX}{model}{field.field_name.title().replace('_', '')}Enum"
        schema = {k: v for k, v in build_choice_field(field).items() if k in ("type", "enum")}
        choices = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        auto_schema.registry.register_on_missing(choices)
        return choices.ref


class ModelSerializer(serializers.ModelSerializer):
    """fastmon's serializers: model choices as named components."""

    serializer_choice_field = NamedChoiceField
