"""Drift: has someone changed, in a member, a field the hub manages?

We compare *projections*: the part of the live object at exactly the paths our desired manifest
sets. Right after we apply, the projection of the apiserver's answer is the baseline (it already
contains whatever the apiserver normalises, such as "0.5" for "500m" or defaulted list-item
fields); later, a live object whose projection differs from that baseline has drifted. Fields we
do not set (status, fields other controllers own, retained fields stripped from the desired
manifest) are outside the projection, so their changes are never drift.

Comparing the live object directly with the desired manifest would instead report every
apiserver normalisation as drift, and re-apply in a loop.

What a diff may show (it ends in the `events` table and the API): a sensitive value (a Secret's
data, a field the fleet admin marked; `federation.translate.sensitive`) appears only as its keyed
hash, and a value from the member — someone else's input — is bounded in size (`redact_diff`).
The baseline of a manifest holding a sensitive value is a keyed hash too, for the reason the
content hash is (see `federation.translate.ownership`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from federation.translate.sensitive import DEFAULT_FIELDS, Secrecy, group_kind

ABSENT = "<absent>"
#: Longest string a diff shows from the member (a longer one is cut, its length said).
MAX_DIFF_STRING = 256
#: Largest object or list a diff shows from the member (its JSON, in bytes): past it, a summary.
MAX_DIFF_VALUE = 2048
_IGNORED_METADATA = frozenset({"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"})


def project(live: Any, desired: Any) -> Any:
    """The value of `live` at every path `desired` sets (ABSENT where live has nothing)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return ABSENT if live is None else live
        return {k: project(live.get(k), v) if k in live else ABSENT for k, v in desired.items()}
    if isinstance(desired, list):
        if not isinstance(live, list):
            return ABSENT if live is None else live
        out = [project(live[i], d) if i < len(live) else ABSENT for i, d in enumerate(desired)]
        if len(live) != len(desired):
            out.append({"$length": len(live)})
        return out
    return live


def project_object(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Project a whole manifest; server-set metadata is left out even if desired names it."""
    shape = dict(desired)
    if isinstance(shape.get("metadata"), Mapping):
        shape["metadata"] = {k: v for k, v in shape["metadata"].items() if k not in _IGNORED_METADATA}
    shape.pop("status", None)
    projected = project(live, shape)
    return projected if isinstance(projected, dict) else {}


def projection_hash(live: Mapping[str, Any], desired: Mapping[str, Any], *, key: bytes | None = None) -> str:
    """A short stable hash of the projection: what we store as the baseline after an apply.

    Keyed (HMAC-SHA256) when ``key`` is given: for manifests that hold a sensitive value."""
    canonical = orjson.dumps(project_object(live, desired), option=orjson.OPT_SORT_KEYS)
    if key is not None:
        return hmac.new(key, canonical, hashlib.sha256).hexdigest()[:32]
    return hashlib.sha256(canonical).hexdigest()[:32]


def differences(before: Any, after: Any, path: str = "", *, limit: int = 50) -> list[dict[str, Any]]:
    """Leaf-level differences between two projections, as [{path, hub, member}] (JSON pointers)."""
    out: list[dict[str, Any]] = []
    _diff(before, after, path, out, limit)
    return out


def _diff(a: Any, b: Any, path: str, out: list[dict[str, Any]], limit: int) -> None:
    if len(out) >= limit or a == b:
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key, ABSENT), b.get(key, ABSENT), f"{path}/{_escape(str(key))}", out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT, f"{path}/{i}", out, limit)
        return
    out.append({"path": path or "/", "hub": a, "member": b})


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def bound(value: Any) -> Any:
    """``value`` cut to what a diff may carry: strings past `MAX_DIFF_STRING` characters are
    cut (with their length said), objects and lists whose JSON passes `MAX_DIFF_VALUE` bytes
    are summarised. Member-side values are anyone's input; the hub's database and API are not
    their dumping ground."""
    if isinstance(value, str):
        if len(value) <= MAX_DIFF_STRING:
            return value
        return f"{value[:MAX_DIFF_STRING]}… ({len(value)} characters)"
    if isinstance(value, Mapping | list):
        size = len(orjson.dumps(value, default=str))
        if size <= MAX_DIFF_VALUE:
            return value
        what = (
            f"an object of {len(value)} keys"
            if isinstance(value, Mapping)
            else f"a list of {len(value)} items"
        )
        return f"<{what}, {size} bytes of JSON: too large to show>"
    return value


def redact_diff(
    entries: list[dict[str, Any]], *, desired: Mapping[str, Any], secrecy: Secrecy | None
) -> list[dict[str, Any]]:
    """`differences` as they may be recorded: each sensitive value (at, under or inside the
    entry's path) replaced by its keyed hash — ``{"path", "hub": "hmac-sha256:…", "member":
    "hmac-sha256:…", "sensitive": true}`` — and every other value `bound`-ed.

    The path still says which field drifted; the hashes say whether the two sides differ and,
    keyed with the controller's key, cannot be tested against guesses by whoever reads them.
    Without ``secrecy`` only Secrets' data counts as sensitive (and is hashed with a random key).
    """
    secrecy = secrecy or _fallback_secrecy()
    group, kind = group_kind(desired)
    out = []
    for entry in entries:
        path = _path_tokens(str(entry.get("path", "")))
        redacted = dict(entry)
        sensitive = False
        for side in ("hub", "member"):
            value = entry.get(side)
            shown = value if value == ABSENT else secrecy.redact(value, group=group, kind=kind, at=path)
            sensitive = sensitive or shown != value
            redacted[side] = bound(shown)
        if sensitive or secrecy.fields.covers(group, kind, path):
            redacted["sensitive"] = True
        out.append(redacted)
    return out


def _path_tokens(pointer: str) -> tuple[str, ...]:
    if pointer in ("", "/"):
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


@functools.cache
def _fallback_secrecy() -> Secrecy:
    """Secrets' data hashed under a key of this process (for callers that configure nothing)."""
    return Secrecy(fields=DEFAULT_FIELDS, hash_key=secrets.token_bytes(32))
