"""Label selectors (Kubernetes semantics) and the resource selectors of our policies.

The selector is compiled into matching methods here, next to its definition, so that the
placement engine, the override resolver and the CLI all agree on what "matches" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from federation.api.base import KubeModel


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(KubeModel):
    """One ``matchExpressions`` entry: In/NotIn need values, Exists/DoesNotExist must have none."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.operator in ['In', 'NotIn'])"
                    " == (has(self.values) && size(self.values) > 0)",
                    "message": "values must be non-empty for In and NotIn,"
                    " and empty for Exists and DoesNotExist",
                }
            ]
        }
    )

    key: str = Field(min_length=1, max_length=317)
    operator: SelectorOperator
    values: tuple[str, ...] = Field(default=(), max_length=256)

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values != bool(self.values):
            raise ValueError(
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"
            )
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op is SelectorOperator.EXISTS:
            return self.key in labels
        if op is SelectorOperator.DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if op is SelectorOperator.IN:
            return value is not None and value in self.values
        return value is None or value not in self.values  # NotIn: absent keys match, as in Kubernetes

    def describe(self) -> str:
        op = self.operator
        if op is SelectorOperator.EXISTS:
            return self.key
        if op is SelectorOperator.DOES_NOT_EXIST:
            return f"!{self.key}"
        word = "in" if op is SelectorOperator.IN else "notin"
        return f"{self.key} {word} ({','.join(self.values)})"


class LabelSelector(KubeModel):
    """A Kubernetes label selector; the empty selector matches everything."""

    match_labels: Mapping[str, str] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(default=(), max_length=64)

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    def describe(self) -> str:
        """kubectl's ``-l`` syntax (``region=eu,gpu in (a,b)``); ``<everything>`` when empty."""
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        parts += [req.describe() for req in self.match_expressions]
        return ",".join(parts) or "<everything>"


class ResourceSelector(KubeModel):
    """Which hub templates a policy governs. Every field given must match.

    ``namespace`` only narrows a ClusterPropagationPolicy or ClusterOverridePolicy; a namespaced
    policy selects only in its own namespace.
    """

    api_version: str = Field(alias="apiVersion", min_length=1, max_length=317)
    kind: str = Field(min_length=1, max_length=63)
    namespace: str | None = Field(default=None, max_length=63)
    name: str | None = Field(default=None, max_length=253)
    label_selector: LabelSelector | None = None

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """Whether this selector picks the manifest (a plain dict with apiVersion, kind, metadata)."""
        if resource.get("apiVersion") != self.api_version or resource.get("kind") != self.kind:
            return False
        meta = resource.get("metadata") or {}
        if self.name is not None and meta.get("name") != self.name:
            return False
        if self.namespace is not None and (meta.get("namespace") or None) != self.namespace:
            return False
        return self.label_selector is None or self.label_selector.matches(meta.get("labels") or {})
