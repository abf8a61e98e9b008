"""The representative template of a selected kind: what every template a selector can select
holds, after the apiserver's defaulting and our pruning (`representative`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from federation.api import ResourceSelector, SelectorOperator
from federation.translate import HUB_ONLY_METADATA, OWNERSHIP
from federation.translate.identity import HUB_OWNED_METADATA
from federation.validation.partial import Arr, Node, Obj, Scalar, Unknown

_U = Unknown
#: ObjectMeta's fields: the identity, labels and annotations, and what the hub or the apiserver owns.
_OBJECT_META_FIELDS = {"name", "namespace", "labels", "annotations", *HUB_OWNED_METADATA}


def _o(**fields: Node) -> Obj:
    return Obj(dict(fields))


def _containers() -> Arr:
    return Arr([_o(name=_U())])


def _pod_spec() -> Obj:
    return _o(
        containers=_containers(),
        restartPolicy=_U(),
        dnsPolicy=_U(),
        schedulerName=_U(),
        terminationGracePeriodSeconds=_U(),
        securityContext=_U(),
    )


def _pod_template(*, labels: bool) -> Obj:
    return _o(metadata=_o(labels=_U()), spec=_pod_spec()) if labels else _o(spec=_pod_spec())


def _deployment() -> dict[str, Node]:
    return {
        "spec": _o(
            replicas=_U(),
            selector=_U(),
            template=_pod_template(labels=True),
            strategy=_U(),
            revisionHistoryLimit=_U(),
            progressDeadlineSeconds=_U(),
        )
    }


def _statefulset() -> dict[str, Node]:
    return {
        "spec": _o(
            replicas=_U(),
            selector=_U(),
            template=_pod_template(labels=True),
            podManagementPolicy=_U(),
            updateStrategy=_U(),
            revisionHistoryLimit=_U(),
        )
    }


def _daemonset() -> dict[str, Node]:
    return {
        "spec": _o(
            selector=_U(),
            template=_pod_template(labels=True),
            updateStrategy=_U(),
            revisionHistoryLimit=_U(),
        )
    }


def _replicaset() -> dict[str, Node]:
    return {"spec": _o(replicas=_U(), selector=_U(), template=_pod_template(labels=True))}


def _job_spec() -> Obj:
    # The selector and the controller-uid labels are dropped by pruning: not listed.
    return _o(template=_pod_template(labels=False), backoffLimit=_U(), completionMode=_U(), suspend=_U())


def _job() -> dict[str, Node]:
    return {"spec": _job_spec()}


def _cronjob() -> dict[str, Node]:
    return {
        "spec": _o(
            schedule=_U(),
            jobTemplate=_o(spec=_o(template=_pod_template(labels=False))),
            concurrencyPolicy=_U(),
            suspend=_U(),
            successfulJobsHistoryLimit=_U(),
            failedJobsHistoryLimit=_U(),
        )
    }


def _pod() -> dict[str, Node]:
    return {"spec": _pod_spec()}


def _service() -> dict[str, Node]:
    return {"spec": _o(type=_U(), sessionAffinity=_U())}


def _secret() -> dict[str, Node]:
    return {"type": _U()}


@dataclass(frozen=True)
class _KindShape:
    build: Callable[[], dict[str, Node]]
    maybe: frozenset[str] = frozenset()
    """Top-level fields a template of the kind may have besides the built ones: given for the
    built-in kinds, whose top level the apiserver prunes to their schema (closed)."""


KIND_SHAPES: Mapping[tuple[str, str], _KindShape] = {
    ("apps/v1", "Deployment"): _KindShape(_deployment),
    ("apps/v1", "StatefulSet"): _KindShape(_statefulset),
    ("apps/v1", "DaemonSet"): _KindShape(_daemonset),
    ("apps/v1", "ReplicaSet"): _KindShape(_replicaset),
    ("batch/v1", "Job"): _KindShape(_job),
    ("batch/v1", "CronJob"): _KindShape(_cronjob),
    ("v1", "Pod"): _KindShape(_pod),
    ("v1", "Service"): _KindShape(_service),
    ("v1", "ConfigMap"): _KindShape(dict, frozenset({"data", "binaryData", "immutable"})),
    ("v1", "Secret"): _KindShape(_secret, frozenset({"data", "stringData", "immutable"})),
    ("v1", "ServiceAccount"): _KindShape(
        dict, frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"})
    ),
}
"""The built-in kinds whose stored shape is known: what the apiserver requires or defaults,
after our pruning (``status`` never; a Job's selector not). Checked against a real apiserver by
``tests/integration/test_webhook.py``."""


def _known_labels(selector: ResourceSelector) -> dict[str, str | None]:
    """The labels every template the selector selects has: the value when it is pinned (None:
    present, any value), minus our own ownership labels (pruned)."""
    labels: dict[str, str | None] = {}
    if selector.label_selector is not None:
        for key, value in selector.label_selector.match_labels.items():
            labels[key] = value
        for req in selector.label_selector.match_expressions:
            if req.operator in (SelectorOperator.IN, SelectorOperator.EXISTS):
                labels.setdefault(
                    req.key,
                    req.values[0] if req.operator is SelectorOperator.IN and len(req.values) == 1 else None,
                )
    return {k: v for k, v in labels.items() if not k.startswith(OWNERSHIP.prefix)}


def representative_key(selector: ResourceSelector, *, namespace: str | None) -> Hashable:
    """Everything `representative` reads of its arguments: equal keys, equal templates."""
    labels = tuple(sorted(_known_labels(selector).items(), key=lambda kv: kv[0]))
    return (selector.api_version, selector.kind, selector.name, namespace, labels)


def representative(selector: ResourceSelector, *, namespace: str | None) -> Obj:
    """What every template ``selector`` can select holds, as the override sees it (pruned).

    ``namespace`` is the template's namespace when it is known (an OverridePolicy's own, or
    the selector's).
    """
    labels: dict[str, Node] = {
        k: Scalar(v) if v is not None else Unknown() for k, v in _known_labels(selector).items()
    }
    meta = Obj(
        {"name": Scalar(selector.name) if selector.name is not None else Unknown()},
        closed=True,
        maybe=_OBJECT_META_FIELDS - set(HUB_ONLY_METADATA) - {"name"},
    )
    if namespace is not None:
        meta.put("namespace", Scalar(namespace))
    if labels:
        meta.put("labels", Obj(labels))
    root = Obj({"apiVersion": Scalar(selector.api_version), "kind": Scalar(selector.kind), "metadata": meta})
    shape = KIND_SHAPES.get((selector.api_version, selector.kind))
    if shape is None:
        root.absent.add("status")  # pruned from every template
        return root
    root.fields.update(shape.build())
    root.closed = True
    root.maybe = set(shape.maybe)
    return root
