"""`Sealer`: AES-256-GCM for the sensitive values of the store's rows.

Why encrypt rather than not store them. The design keeps desired state in Postgres: every
propagator applies from ``works.desired``, including after a restart while the hub is
unreachable, and every work survives any restart of the controller (DESIGN.md, "Restarting the
controller at any moment loses nothing"). Leaving Secrets' data out of the row would make a
Secret the one kind that cannot be (re)applied without the hub, and would need a second,
hub-reading apply path for it alone. Encrypting keeps one path and one source of truth; what a
reader of the database (a backup, a read replica, a dashboard's SQL datasource) sees is a
ciphertext, a key id and the field's path.

How. Each sensitive value (`federation.translate.sensitive`: Secrets' ``data`` and
``stringData``, the fields the fleet admin marks, kubectl's last-applied annotation of such
kinds) is serialised as JSON and sealed with AES-256-GCM under the active key of the key file,
with a fresh random 96-bit nonce. The associated data binds the ciphertext to its row and field
— table, API group, kind, namespace, name, member cluster and resource id of a work, and the
field's JSON pointer — so a value copied into another row, another cluster's work or another
field does not open: nobody with write access to the database can move one tenant's Secret into
a copy another cluster (or another tenant) receives without the key.

Limits worth knowing: a random nonce is safe for about 2**32 seals per key (NIST SP 800-38D);
every placement of a template holding a sensitive value seals once (a hub re-placing 10,000
such works a minute reaches that in about eight years) — rotate yearly. Integrity of the rest of
a row is not protected: whoever may write the database decides what the members run anyway.

Without a key the sealer is not `available`: it still says what is sensitive and hashes with a
per-process key, but `seal` refuses a document holding a sensitive value
(`SealingUnavailableError`): nothing sensitive is ever written in plaintext.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federation.errors import SealingError, SealingUnavailableError, UnsealError
from federation.sealing.keys import KeyRing
from federation.store.sealing import PLACEHOLDER, SEALED, SealedRow
from federation.translate.pointer import json_copy
from federation.translate.sensitive import DEFAULT_FIELDS, Secrecy, SensitiveFields, pointer_of

FORMAT_VERSION = 1
ALGORITHM = "A256GCM"
NONCE_BYTES = 12
_AAD_PREFIX = b"federation/sealed/v1"
_HASH_KEY_INFO = b"federation/v1 keyed hashes of sensitive values"
KEY_FLAG = "--encryption-key-file"


def derive_hash_key(material: bytes) -> bytes:
    """The HMAC key of keyed hashes (content hash, drift baseline, diff digests), derived with
    HKDF-SHA256 from an encryption key: one secret to manage, and a hash never reveals the key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HASH_KEY_INFO).derive(material)


def _aad(row: SealedRow, *, key_id: str, pointer: str) -> bytes:
    """The associated data of one sealed value: its row and field, NUL-separated (no part of
    a Kubernetes identity, cluster name, key id or pointer token can hold a NUL)."""
    parts = (
        row.table,
        key_id,
        row.api_group,
        row.kind,
        row.namespace,
        row.name,
        row.cluster,
        "" if row.resource_id is None else str(row.resource_id),
        pointer,
    )
    return _AAD_PREFIX + ("\x00" + "\x00".join(parts)).encode()


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")] if pointer else []


def _set(doc: Any, tokens: Sequence[str], value: Any, *, expect_placeholder: bool) -> None:
    """Put ``value`` at ``tokens`` in ``doc``; ValueError when the place is not there."""
    if not tokens:
        raise ValueError("the whole document is never sealed")
    node = doc
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    last = tokens[-1]
    if isinstance(node, list):
        index = int(last)
        if expect_placeholder and node[index] != PLACEHOLDER:
            raise ValueError("no placeholder there")
        node[index] = value
    elif isinstance(node, dict):
        if expect_placeholder and node.get(last) != PLACEHOLDER:
            raise ValueError("no placeholder there")
        node[last] = value
    else:
        raise ValueError("the parent is not an object or a list")


class Sealer:
    """Seals and opens the sensitive values of store rows; the store's `Sealer`."""

    def __init__(self, *, keys: KeyRing | None, fields: SensitiveFields = DEFAULT_FIELDS) -> None:
        self.keys = keys
        self.fields = fields
        hash_key = derive_hash_key(keys.active.material) if keys is not None else secrets.token_bytes(32)
        #: What is sensitive and the key hashes of it are made with, for translate and propagate.
        self.secrecy = Secrecy(fields=fields, hash_key=hash_key)
        self._ciphers = {} if keys is None else {k.id: AESGCM(k.material) for k in keys.keys}

    @property
    def available(self) -> bool:
        """Whether sensitive values can be stored (a key is configured). When not, the hub must
        not try to store templates or works that hold one: `seal` refuses them."""
        return self.keys is not None

    @property
    def readable_keys(self) -> Sequence[str]:
        return () if self.keys is None else self.keys.ids

    def sensitive(self, manifest: Mapping[str, Any]) -> bool:
        """Whether ``manifest`` holds a sensitive value."""
        return self.fields.contains(manifest)

    # -- sealing -----------------------------------------------------------------------

    def seal(self, document: Mapping[str, Any], row: SealedRow) -> Mapping[str, Any]:
        if SEALED in document:
            raise SealingError(
                f"{row}: the object has a top-level field {SEALED!r}, which the state store reserves "
                "for sealed values"
            )
        paths = self.fields.paths(document)
        if not paths:
            return document
        if self.keys is None:
            raise SealingUnavailableError(
                f"{row}: holds sensitive values ({', '.join(pointer_of(p) for p in paths)}) and the "
                "controller has no encryption key, so they would be stored in plaintext: refused",
                hint=f"give the controller a key: federation keys generate --out FILE; {KEY_FLAG} FILE",
            )
        key = self.keys.active
        cipher = self._ciphers[key.id]
        sealed = json_copy(dict(document))
        fields: dict[str, str] = {}
        for path in paths:
            pointer = pointer_of(path)
            node: Any = sealed
            for token in path[:-1]:
                node = node[int(token)] if isinstance(node, list) else node[token]
            value = node[int(path[-1])] if isinstance(node, list) else node[path[-1]]
            nonce = secrets.token_bytes(NONCE_BYTES)
            plaintext = orjson.dumps(value)
            ciphertext = cipher.encrypt(nonce, plaintext, _aad(row, key_id=key.id, pointer=pointer))
            fields[pointer] = base64.b64encode(nonce + ciphertext).decode()
            _set(sealed, path, PLACEHOLDER, expect_placeholder=False)
        sealed[SEALED] = {"v": FORMAT_VERSION, "alg": ALGORITHM, "kid": key.id, "fields": fields}
        return sealed

    # -- opening -----------------------------------------------------------------------

    def unseal(self, document: Mapping[str, Any], row: SealedRow) -> Mapping[str, Any]:
        meta = document.get(SEALED)
        if meta is None:
            return document
        if not isinstance(meta, Mapping) or meta.get("v") != FORMAT_VERSION or meta.get("alg") != ALGORITHM:
            raise UnsealError(
                f"{row}: its sealed values are in a format this controller does not read "
                f"({SEALED} = {_describe(meta)})",
                key_id=str(meta.get("kid", "")) if isinstance(meta, Mapping) else "",
            )
        kid = str(meta.get("kid", ""))
        cipher = self._ciphers.get(kid)
        if cipher is None:
            source = self.keys.source if self.keys is not None else "no key file"
            raise UnsealError(
                f"{row}: its sensitive values are sealed with encryption key {kid!r}, which "
                f"{KEY_FLAG} ({source}) does not hold",
                key_id=kid,
                hint="give the controller that key again (after the active one): a rotation keeps old keys "
                "until `federation keys usage` shows no row uses them",
            )
        opened = {k: v for k, v in document.items() if k != SEALED}
        opened = json_copy(opened)
        fields = meta.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            raise UnsealError(f"{row}: {SEALED} lists no sealed field", key_id=kid)
        for pointer, blob in fields.items():
            try:
                raw = base64.b64decode(str(blob), validate=True)
                value = orjson.loads(
                    cipher.decrypt(
                        raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(row, key_id=kid, pointer=pointer)
                    )
                )
                _set(opened, _tokens(str(pointer)), value, expect_placeholder=True)
            except (InvalidTag, binascii.Error, orjson.JSONDecodeError, ValueError, KeyError, IndexError,
                    TypeError):  # fmt: skip
                raise UnsealError(
                    f"{row}: the sealed value of {pointer} does not open with encryption key {kid!r}: the "
                    "key is not the one that sealed it, or the row was altered (a sealed value only opens "
                    "in the row and field it was sealed for)",
                    key_id=kid,
                ) from None
        return opened

    def strip(self, document: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = document.get(SEALED)
        out = json_copy({k: v for k, v in document.items() if k != SEALED})
        fields = meta.get("fields") if isinstance(meta, Mapping) else None
        for pointer in fields if isinstance(fields, Mapping) else ():
            tokens = _tokens(str(pointer))
            try:
                node: Any = out
                for token in tokens[:-1]:
                    node = node[int(token)] if isinstance(node, list) else node[token]
                if isinstance(node, dict) and node.get(tokens[-1]) == PLACEHOLDER:
                    del node[tokens[-1]]
            except (KeyError, IndexError, ValueError, TypeError):
                continue
        return out


def _describe(meta: Any) -> str:
    if isinstance(meta, Mapping):
        return "{" + ", ".join(f"{k}: {meta.get(k)!r}" for k in ("v", "alg", "kid") if k in meta) + "}"
    return type(meta).__name__
