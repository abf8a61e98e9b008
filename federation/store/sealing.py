"""What the store asks of whoever seals sensitive values: its side of encryption at rest.

Two columns hold whole manifests: ``resources.template`` and ``works.desired``. A Secret's data
(or a field the fleet admin marks sensitive) in them is sealed at the store boundary — on the
way in, in `Store` — and opened on the way out, so nothing above the store sees a difference.
The store cannot know which fields are sensitive or hold keys (it imports nothing of ours but
`federation.errors`), so the controller gives it a `Sealer` at `Store.connect(url, sealer=...)`
(`federation.sealing.Sealer` is the implementation). Without one, documents are stored as
given: for tools and tests that write no sensitive rows (the controller always passes one).

A sealed document keeps its shape: each sensitive value is replaced by `PLACEHOLDER`, and the
top-level field `SEALED` (which no Kubernetes object has) holds the ciphertexts by JSON pointer
and the id of the key they were sealed with::

    {"apiVersion": "v1", "kind": "Secret", "metadata": {...}, "data": "<sealed>",
     "$sealed": {"v": 1, "alg": "A256GCM", "kid": "k1", "fields": {"/data": "<base64>"}}}

so SQL can tell which key a row needs (``desired->'$sealed'->>'kid'``) without opening it: the
store never overwrites a work whose values are sealed with a key the sealer does not hold
(`Sealer.readable_keys`), and `Store.sealed_key_usage` tells when an old key is no longer used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: The top-level field of a stored document that holds its sealed values.
SEALED = "$sealed"
#: What stands in a stored document where a sensitive value was.
PLACEHOLDER = "<sealed>"


@dataclass(frozen=True, slots=True)
class SealedRow:
    """The row a document belongs to. Every ciphertext is bound to it (AES-GCM associated
    data), so a sealed value moved to another row, cluster or field no longer opens."""

    table: str
    """``works`` or ``resources``."""
    api_group: str
    kind: str
    namespace: str
    name: str
    cluster: str = ""
    """The member cluster of a work (``""`` for a template)."""
    resource_id: int | None = None
    """The resource a work belongs to (None for a template, whose row is keyed by identity)."""

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.api_group}" if self.api_group else self.kind
        obj = f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"
        if self.table == "works":
            return f"works resource_id={self.resource_id} cluster={self.cluster} ({obj})"
        return f"{self.table} {obj}"

    @classmethod
    def of_work(cls, manifest: Mapping[str, Any], *, resource_id: int, cluster: str) -> SealedRow:
        """The row of a work, its identity read from the manifest (never sealed)."""
        meta = manifest.get("metadata") or {}
        return cls(
            table="works",
            api_group=str(manifest.get("apiVersion") or "").rpartition("/")[0],
            kind=str(manifest.get("kind") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            cluster=cluster,
            resource_id=resource_id,
        )


class Sealer(Protocol):
    """Seals and opens the sensitive values of the documents the store keeps."""

    @property
    def readable_keys(self) -> Sequence[str]:
        """Ids of the keys it can open values with. A work sealed with any other key is never
        overwritten (it is reported instead): the right key may still come back."""
        ...

    def seal(self, document: Mapping[str, Any], row: SealedRow) -> Mapping[str, Any]:
        """``document`` as it may be stored: its sensitive values sealed (unchanged when it has
        none). Raises `SealingUnavailableError` when it has some and no key is configured."""
        ...

    def unseal(self, document: Mapping[str, Any], row: SealedRow) -> Mapping[str, Any]:
        """``document`` as it was given to `seal`; `UnsealError` naming the row if it does not
        open (unknown or wrong key, or a sealed value that is not this row's)."""
        ...

    def strip(self, document: Mapping[str, Any]) -> Mapping[str, Any]:
        """``document`` without its sealed values and their placeholders: what is left readable
        of a row that does not open (its identity, always)."""
        ...


def sealed_with(document: Mapping[str, Any]) -> str | None:
    """The id of the key a stored document's values are sealed with (None: nothing sealed)."""
    meta = document.get(SEALED)
    if isinstance(meta, Mapping):
        kid = meta.get("kid")
        return str(kid) if kid is not None else None
    return None
