"""Taints and tolerations, with Kubernetes semantics.

A member cluster carries taints (set by an admin, or by the controller when the cluster goes
NotReady); a placement carries tolerations. Matching follows the kubelet/scheduler rules: an
empty toleration ``effect`` tolerates every effect, ``Exists`` ignores the value, and an empty
key with ``Exists`` tolerates every taint.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from federation.api.base import KubeModel


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    """New placements avoid the cluster; existing ones stay."""
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    """The cluster scores lower when clusters are ranked (maxClusters, spread)."""
    NO_EXECUTE = "NoExecute"
    """New placements avoid the cluster and existing ones are evicted."""


class TolerationOperator(StrEnum):
    EQUAL = "Equal"
    EXISTS = "Exists"


class Taint(KubeModel):
    key: str = Field(min_length=1, max_length=317)
    value: str = Field(default="", max_length=63)
    effect: TaintEffect
    time_added: str | None = None

    def describe(self) -> str:
        """``key=value:Effect`` as kubectl prints taints."""
        return (
            f"{self.key}={self.value}:{self.effect.value}"
            if self.value
            else f"{self.key}:{self.effect.value}"
        )


class Toleration(KubeModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "message": "value must be empty when operator is Exists",
                },
                {
                    "rule": "self.operator == 'Exists' || (has(self.key) && self.key != '')",
                    "message": "key is required unless operator is Exists",
                },
            ]
        }
    )

    key: str = Field(default="", max_length=317)
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str = Field(default="", max_length=63)
    effect: TaintEffect | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator is TolerationOperator.EXISTS and self.value:
            raise ValueError("value must be empty when operator is Exists")
        if self.operator is TolerationOperator.EQUAL and not self.key:
            raise ValueError("key is required unless operator is Exists")
        return self

    def tolerates(self, taint: Taint) -> bool:
        if self.effect is not None and self.effect is not taint.effect:
            return False
        if not self.key:
            return self.operator is TolerationOperator.EXISTS
        if self.key != taint.key:
            return False
        return self.operator is TolerationOperator.EXISTS or self.value == taint.value


def untolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> tuple[Taint, ...]:
    """The taints no toleration covers, in the cluster's order."""
    return tuple(t for t in taints if not any(tol.tolerates(t) for tol in tolerations))
