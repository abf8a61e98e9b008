"""The clusters file: the fleet declared in YAML instead of MemberCluster objects.

Used by ``federation plan --clusters`` and by a controller run without a hub-side registry.
See ``clusters.example.yaml`` at the top of the repository for every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field

from federation.api.base import KubeModel
from federation.api.documents import parse_document
from federation.api.taints import Taint
from federation.api.yamlsource import read_yaml_file
from federation.errors import ConfigError, InvalidObjectError

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ClusterEntry(KubeModel):
    """One member cluster: how to reach it, and what placement sees of it."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    kubeconfig: Path | None = None
    context: str | None = None
    labels: Mapping[str, str] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


class ClustersFile(KubeModel):
    clusters: tuple[ClusterEntry, ...] = Field(min_length=1)


def load_clusters_file(path: Path) -> list[ClusterEntry]:
    """The clusters of ``path``; kubeconfig paths are resolved against the file's directory.

    Malformed YAML, unknown fields, bad values and duplicate names raise ConfigError (or
    InvalidObjectError) with ``file:line`` and the field.
    """
    docs = read_yaml_file(path)
    if len(docs) != 1:
        raise ConfigError(f"{path}: expected one YAML document with a `clusters:` list, found {len(docs)}")
    doc = docs[0]
    parsed = parse_document(ClustersFile, doc, what="clusters file")
    seen: dict[str, int] = {}
    out: list[ClusterEntry] = []
    for i, entry in enumerate(parsed.clusters):
        if entry.name in seen:
            raise InvalidObjectError(
                f"{doc.where(('clusters', i, 'name'))}: clusters file: clusters[{i}].name: "
                f"duplicate cluster name {entry.name!r} (also clusters[{seen[entry.name]}])"
            )
        seen[entry.name] = i
        kubeconfig = entry.kubeconfig
        if kubeconfig is not None:
            kubeconfig = kubeconfig.expanduser()
            if not kubeconfig.is_absolute():
                kubeconfig = path.parent / kubeconfig
            entry = entry.model_copy(update={"kubeconfig": kubeconfig})
        out.append(entry)
    return out
