"""The base of every CRD model: Kubernetes JSON field names, immutability, and our errors.

Models are parsed from the plain dicts the apiserver (or a YAML file) gives us, so field names
are the camelCase ones of the Kubernetes JSON (``populate_by_name`` lets Python code use the
snake_case names too). Unknown fields are refused: a typo in a policy must be a clear error,
not a silently ignored setting. ``model_validate`` of a top-level object raises our
``InvalidObjectError`` naming kind, namespace, name and field, so callers handle one error tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from federation.api.refs import object_ref
from federation.api.validation import describe_validation_error
from federation.errors import InvalidObjectError

GROUP: Final = "federation.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "federation.io/v1alpha1"


class KubeModel(BaseModel):
    """A part of a Kubernetes object: camelCase JSON names, frozen, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """The Kubernetes JSON form: camelCase names, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(BaseModel):
    """The parts of metadata we read; everything else the apiserver sets is kept but not typed."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="allow")

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: Mapping[str, str] = Field(default_factory=dict)
    annotations: Mapping[str, str] = Field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None


@dataclass(frozen=True)
class CrdInfo:
    """How a top-level model is served as a CRD (names, scope, printer columns)."""

    plural: str
    scope: str  # "Namespaced" | "Cluster"
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[Mapping[str, str], ...] = ()


class TopLevelObject(KubeModel):
    """A Kubernetes object of our API group (apiVersion, kind, metadata, spec, status)."""

    crd: ClassVar[CrdInfo]

    api_version: Literal["federation.io/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: str
    metadata: ObjectMeta

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Parse a plain dict; on failure raise InvalidObjectError naming the object and field."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise InvalidObjectError(
                describe_validation_error(exc, obj=obj, default_kind=cls.__name__)
            ) from None

    @property
    def ref(self) -> str:
        """``Kind namespace/name`` (or ``Kind name`` when cluster-scoped), as messages show it."""
        return object_ref(self.kind, self.metadata.namespace, self.metadata.name)
