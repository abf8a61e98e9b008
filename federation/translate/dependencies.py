"""The objects a workload's pods cannot start without, for ``propagateDependencies``.

A Deployment copied to a member is useless if the ConfigMap it mounts, the Secret it reads a
password from or the ServiceAccount it runs as stays on the hub. With ``propagateDependencies``
those objects follow the workload to its clusters; this module only finds them, from the
manifest alone (no I/O: whether they exist on the hub is the caller's business).

What counts as a reference, in the pod spec of a built-in workload (``podspec.pod_spec``):

- volumes: ``configMap.name``, ``secret.secretName``, ``persistentVolumeClaim.claimName``, and
  ``projected.sources[]`` ``configMap.name`` / ``secret.name``;
- in ``containers``, ``initContainers`` and ``ephemeralContainers``:
  ``env[].valueFrom.configMapKeyRef.name`` / ``secretKeyRef.name`` and
  ``envFrom[].configMapRef.name`` / ``secretRef.name``;
- ``imagePullSecrets[].name``;
- ``serviceAccountName`` (or the deprecated ``serviceAccount``), except ``default``, which
  every namespace of every cluster has already.

Not references: a StatefulSet's ``volumeClaimTemplates`` and ``ephemeral`` volumes (the
cluster creates those claims itself), and the Secrets of storage plugins (``csi``, ``rbd``...),
which belong to the member's storage setup rather than to the workload.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from federation.api import object_ref
from federation.translate.podspec import pod_spec

CONFIG_MAP: Final = "ConfigMap"
SECRET: Final = "Secret"
SERVICE_ACCOUNT: Final = "ServiceAccount"
PERSISTENT_VOLUME_CLAIM: Final = "PersistentVolumeClaim"

_CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True, slots=True)
class DependencyRef:
    """One object a workload references (always a core ``v1`` kind in the workload's namespace)."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def ref(self) -> str:
        """``Kind namespace/name``, as every message of ours names an object."""
        return object_ref(self.kind, self.namespace, self.name)


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    """The mappings of a list (anything else in it, or a non-list, is skipped: templates are
    user input and a malformed one must not crash the controller)."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _at(node: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _references(spec: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(kind, name) of every reference in a pod spec; names are not checked here."""
    for volume in _dicts(spec.get("volumes")):
        yield CONFIG_MAP, _at(volume, "configMap", "name")
        yield SECRET, _at(volume, "secret", "secretName")
        yield PERSISTENT_VOLUME_CLAIM, _at(volume, "persistentVolumeClaim", "claimName")
        for source in _dicts(_at(volume, "projected", "sources")):
            yield CONFIG_MAP, _at(source, "configMap", "name")
            yield SECRET, _at(source, "secret", "name")
    for group in _CONTAINER_GROUPS:
        for container in _dicts(spec.get(group)):
            for env in _dicts(container.get("env")):
                yield CONFIG_MAP, _at(env, "valueFrom", "configMapKeyRef", "name")
                yield SECRET, _at(env, "valueFrom", "secretKeyRef", "name")
            for source in _dicts(container.get("envFrom")):
                yield CONFIG_MAP, _at(source, "configMapRef", "name")
                yield SECRET, _at(source, "secretRef", "name")
    for pull_secret in _dicts(spec.get("imagePullSecrets")):
        yield SECRET, pull_secret.get("name")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account != "default":
        yield SERVICE_ACCOUNT, account


def dependencies_of(manifest: Mapping[str, Any]) -> tuple[DependencyRef, ...]:
    """The objects the pod template of ``manifest`` references, each once, sorted by kind then
    name (so the answer does not depend on the order of containers, volumes or env entries).

    Empty for anything that is not a built-in workload (Pod, Deployment, StatefulSet,
    DaemonSet, ReplicaSet, Job, CronJob) or has no pod template.
    """
    spec = pod_spec(manifest)
    if spec is None:
        return ()
    namespace = _at(manifest, "metadata", "namespace")
    namespace = namespace if isinstance(namespace, str) and namespace else None
    found = {(kind, name) for kind, name in _references(spec) if isinstance(name, str) and name}
    return tuple(
        DependencyRef(api_version="v1", kind=kind, namespace=namespace, name=name)
        for kind, name in sorted(found)
    )
