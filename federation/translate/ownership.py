"""The labels and annotations that mark a member object as ours, and the content hash.

Everything propagation and the member informers need to recognise our objects lives here, in
one place:

- label ``federation.io/hub: <hub id>`` — which federation instance owns the object (member
  informers select on it; an object with another hub's id is a conflict, never adopted);
- label ``federation.io/managed-by: federation``;
- annotation ``federation.io/source`` — the hub template, as ``<group>/<version>/<kind>/<namespace>/<name>``
  with ``core`` for the core group and an empty namespace for cluster-scoped templates, e.g.
  ``apps/v1/Deployment/shop/web``, ``core/v1/ConfigMap/shop/cfg``,
  ``rbac.authorization.k8s.io/v1/ClusterRole//viewer`` (always exactly five ``/``-separated parts;
  no real API group is called ``core``, and group, version, kind and names never contain ``/``);
- annotation ``federation.io/source-uid`` — the template's uid (absent when it has none yet);
- annotation ``federation.io/policy`` — the governing policy, ``<kind>/<namespace>/<name>`` or
  ``<kind>/<name>`` for the cluster-scoped kinds;
- annotation ``federation.io/hash`` — ``content_hash`` of the final manifest: the first 32 hex
  digits (128 bits) of the SHA-256 of its canonical JSON (keys sorted, no whitespace, UTF-8),
  computed with the hash annotation itself left out. Equal hashes mean "nothing to apply".
  A manifest holding a sensitive value (a Secret's data, see `federation.translate.sensitive`)
  is hashed with HMAC-SHA256 under a key of the controller's instead: the hash is stored in
  Postgres, served by the API and stamped on the member copy, and a plain hash over a
  low-entropy secret can be brute-forced by whoever reads it. Switching a manifest between the
  two (the first start with this code, or a new encryption key) changes its hash, so its copies
  are applied once more — a server-side apply of identical content, which changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NewType

import orjson

from federation.errors import ConfigError

HubId = NewType("HubId", str)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
HASH_LENGTH = 32


@dataclass(frozen=True)
class OwnershipKeys:
    """The keys of our ownership stamp (one instance: ``OWNERSHIP``)."""

    prefix: str = "federation.io/"
    hub_label: str = "federation.io/hub"
    managed_by_label: str = "federation.io/managed-by"
    managed_by_value: str = "federation"
    source_annotation: str = "federation.io/source"
    source_uid_annotation: str = "federation.io/source-uid"
    policy_annotation: str = "federation.io/policy"
    hash_annotation: str = "federation.io/hash"


OWNERSHIP = OwnershipKeys()


def hub_id(value: str) -> HubId:
    """A hub id, checked to be a valid label value (it is stamped as one)."""
    if not value or len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ConfigError(
            f"hub id {value!r} is not a valid label value (1-63 characters: letters, digits, '-', '_', '.',"
            " starting and ending with a letter or digit)"
        )
    return HubId(value)


def format_policy(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def format_source(*, api_version: str, kind: str, namespace: str | None, name: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group or 'core'}/{version}/{kind}/{namespace or ''}/{name}"


@dataclass(frozen=True)
class SourceRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str


def parse_source(value: str) -> SourceRef:
    """The template named by a ``federation.io/source`` annotation; ValueError when malformed."""
    parts = value.split("/")
    if len(parts) != 5 or not all(parts[i] for i in (0, 1, 2, 4)):
        raise ValueError(f"{value!r} is not <group>/<version>/<kind>/<namespace>/<name>")
    group, version, kind, namespace, name = parts
    api_version = version if group == "core" else f"{group}/{version}"
    return SourceRef(api_version=api_version, kind=kind, namespace=namespace or None, name=name)


@dataclass(frozen=True)
class Ownership:
    """Who a propagated object belongs to: this hub, through this policy."""

    hub: HubId
    policy: str
    """``format_policy(...)`` of the governing policy."""

    def __post_init__(self) -> None:
        hub_id(self.hub)


def canonical_json(manifest: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace: the same manifest always gives the same bytes."""
    return orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)


def content_hash(manifest: Mapping[str, Any], *, key: bytes | None = None) -> str:
    """The hash of ``manifest`` as stamped in ``federation.io/hash`` (that annotation excluded):
    SHA-256, or HMAC-SHA256 under ``key`` when one is given (manifests with sensitive values)."""
    meta = manifest.get("metadata")
    if isinstance(meta, Mapping):
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping) and OWNERSHIP.hash_annotation in annotations:
            new_meta = dict(meta)
            rest = {k: v for k, v in annotations.items() if k != OWNERSHIP.hash_annotation}
            if rest:
                new_meta["annotations"] = rest
            else:
                del new_meta["annotations"]
            manifest = {**manifest, "metadata": new_meta}
    if key is not None:
        return hmac.new(key, canonical_json(manifest), hashlib.sha256).hexdigest()[:HASH_LENGTH]
    return hashlib.sha256(canonical_json(manifest)).hexdigest()[:HASH_LENGTH]
