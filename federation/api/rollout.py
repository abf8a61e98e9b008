"""A policy's rollout: how a changed template reaches its clusters, in stages with gates.

Part of the policy (``spec.rollout``), not an object of its own that policies reference: the
stages pick among the clusters the policy itself chose, and the policy is the one object its
owner (a tenant in its namespace, or the fleet admin) already controls — a separate
``RolloutStrategy`` would need its own cross-namespace reference rules and could change under a
policy whose owner cannot see it. Policies that want the same stages repeat them (a few lines).

A stage names its clusters like an override target (``clusterNames`` or ``clusterSelector``);
one with neither is *the rest* (every chosen cluster no earlier stage took) and must be last.
Clusters no stage takes form an implicit last stage of their own, so a cluster is never left
out of a rollout because a selector missed it. Within a stage at most ``maxConcurrentClusters``
(a count or a percentage of the stage, rounded up) are updating at once; the stage's **gate**
passes once every copy in it runs the new revision and has been Healthy for ``waitAfter``
(the soak), and, with ``approval: true``, someone approved it (`federation rollout approve`).
A gate not passed within ``deadline`` fails the rollout: ``onFailure: Halt`` keeps every
cluster not yet reached on the previous revision; ``Rollback`` also puts the previous revision
back where the new one went.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final, Self

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from federation.api.base import KubeModel
from federation.api.selectors import LabelSelector

DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""A Go-style duration of ``ms``, ``s``, ``m`` and ``h`` parts: ``90s``, ``5m``, ``1h30m``."""

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
PERCENT_PATTERN: Final = r"^[0-9]{1,3}%$"
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: str) -> float:
    """``1h30m`` → 5400.0 (the pattern above is checked first)."""
    if not re.fullmatch(DURATION_PATTERN, duration):
        raise ValueError(f"{duration!r} is not a duration such as 30s, 5m or 1h30m")
    return sum(float(n) * _UNITS[u] for n, _, u in re.findall(r"([0-9]+(\.[0-9]+)?)(ms|s|m|h)", duration))


class OnFailure(StrEnum):
    HALT = "Halt"
    """Stop: clusters not reached yet keep the previous revision; reached ones keep the new."""
    ROLLBACK = "Rollback"
    """Stop, and put the previous revision back on the clusters that got the new one."""


class RolloutStage(KubeModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.clusterNames) && has(self.clusterSelector))",
                    "message": "give clusterNames or clusterSelector, or neither for the rest",
                },
                # Only the count here: a percentage's pattern on an int-or-string (no maxLength
                # possible) costs past the apiserver's CEL budget; the controller checks it.
                {
                    "rule": "!has(self.maxConcurrentClusters) || type(self.maxConcurrentClusters) != int"
                    " || self.maxConcurrentClusters >= 1",
                    "message": "maxConcurrentClusters: a count of at least 1 or a percentage such as 25%",
                    "fieldPath": ".maxConcurrentClusters",
                },
            ]
        }
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    cluster_names: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=1000)
    cluster_selector: LabelSelector | None = None
    max_concurrent_clusters: int | Annotated[str, StringConstraints(pattern=PERCENT_PATTERN)] | None = Field(
        default=None,
        description="How many clusters of the stage update at once: a count (at least 1) or a "
        "percentage of the stage's clusters, rounded up. Default: all of them.",
    )
    wait_after: Duration = Field(
        default="0s",
        description="The soak: every copy in the stage must have been Healthy on the new revision "
        "for this long before the next stage starts.",
    )
    approval: bool = Field(
        default=False,
        description="After the soak, wait for `federation rollout approve` before the next stage.",
    )
    deadline: Duration = Field(
        default="10m",
        description="The gate must pass within this long of the stage starting (approval excluded), "
        "or the rollout fails (see onFailure).",
    )

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.cluster_names is not None and self.cluster_selector is not None:
            raise ValueError("give clusterNames or clusterSelector, or neither for the rest")
        return self

    @field_validator("max_concurrent_clusters")
    @classmethod
    def _concurrency(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("a count of at least 1 or a percentage such as 25%")
        if isinstance(value, str) and not 1 <= int(value[:-1]) <= 100:
            raise ValueError("a percentage from 1% to 100%")
        return value

    @property
    def is_rest(self) -> bool:
        return self.cluster_names is None and self.cluster_selector is None

    def takes(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether this stage names the cluster (the rest takes every cluster)."""
        if self.cluster_names is not None:
            return name in self.cluster_names
        if self.cluster_selector is not None:
            return self.cluster_selector.matches(labels)
        return True

    def concurrency(self, size: int) -> int:
        """How many of a stage of `size` clusters may update at once."""
        limit = self.max_concurrent_clusters
        if limit is None:
            return max(size, 1)
        if isinstance(limit, int):
            return limit
        return max(1, math.ceil(size * int(limit[:-1]) / 100))


_REST_CEL: Final = "!has(s.clusterNames) && !has(s.clusterSelector)"


class RolloutStrategy(KubeModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.stages.all(a, self.stages.exists_one(b, b.name == a.name))",
                    "message": "every stage needs a name of its own",
                    "fieldPath": ".stages",
                },
                {
                    "rule": f"self.stages.filter(s, {_REST_CEL}).size() == 0 || "
                    f"(self.stages.filter(s, {_REST_CEL}).size() == 1 && "
                    "!has(self.stages[self.stages.size() - 1].clusterNames) && "
                    "!has(self.stages[self.stages.size() - 1].clusterSelector))",
                    "message": "only the last stage may take the rest of the clusters "
                    "(no clusterNames and no clusterSelector)",
                    "fieldPath": ".stages",
                },
            ]
        }
    )

    stages: tuple[RolloutStage, ...] = Field(min_length=1, max_length=20)
    on_failure: OnFailure = Field(
        default=OnFailure.HALT,
        description="What a failed gate does: Halt keeps the clusters not reached on the previous "
        "revision; Rollback also returns the reached ones to it.",
    )

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: tuple[RolloutStage, ...]) -> tuple[RolloutStage, ...]:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError("every stage needs a name of its own")
        for i, stage in enumerate(stages[:-1]):
            if stage.is_rest:
                raise ValueError(
                    f"stages[{i}] ({stage.name}) takes the rest of the clusters (no clusterNames and no "
                    "clusterSelector): only the last stage may"
                )
        return stages
