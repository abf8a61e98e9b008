"""Which values of a manifest are sensitive, and how to speak of them without showing them.

One definition, used wherever a value could escape the member clusters it is meant for:

- the state store seals these values at rest (`federation.sealing`, at the store boundary);
- drift diffs and events show a keyed hash of them, never the value
  (`federation.propagate.drift.redact_diff`);
- the content hash stamped as ``federation.io/hash`` (and stored in ``works.desired_hash``) and
  the drift baseline (``works.baseline``) of a manifest holding one are keyed HMAC-SHA256 rather
  than plain SHA-256 (`Secrecy.key_for`): an unkeyed hash over a low-entropy secret lets anyone
  who reads the database try candidate values until the hash matches.

Sensitive are:

- every core ``v1`` Secret's ``data`` and ``stringData``, always;
- the fields a fleet admin marks with ``--sensitive-field GROUP/KIND:POINTER`` (``parse``):
  a kind (``ConfigMap`` for the core group, ``apps/Deployment`` otherwise) and a JSON pointer
  (RFC 6901) whose value — and everything under it — is sensitive; a token ``*`` matches any
  one key or list index (``apps/Deployment:/spec/template/spec/containers/*/env``);
- kubectl's ``kubectl.kubernetes.io/last-applied-configuration`` annotation of an object of a
  kind with sensitive fields, when the copy of the object it holds has a sensitive value (or
  cannot be read): a ConfigMap whose ``/data/password`` is marked but that has none is not
  sensitive, even when kubectl applied it.

Pure: no I/O, no key management (the key arrives in `Secrecy`, made by the caller).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from federation.errors import ConfigError

#: The one-key-or-index wildcard of a sensitive field's pointer.
ANY = "*"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
_LAST_APPLIED = ("metadata", "annotations", LAST_APPLIED_ANNOTATION)
#: Prefix of a keyed hash shown in place of a sensitive value.
DIGEST_PREFIX = "hmac-sha256:"
#: Shorter sensitive strings are not scrubbed from messages: replacing every "a" or "12" would
#: leave nothing readable, and such a value is no secret worth the name.
MIN_SCRUBBED = 4
_GROUP = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
#: What a sensitive field may not cover: the identity (the store, the API and the members need
#: it in the clear).
_IDENTITY = (("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"))

Path = tuple[str, ...]


def _tokens(pointer: str) -> Path:
    if not pointer.startswith("/"):
        raise ValueError("a JSON pointer starts with '/'")
    out = []
    for raw in pointer[1:].split("/"):
        if "~" in raw.replace("~0", "").replace("~1", ""):
            raise ValueError(f"{raw!r}: '~' must be followed by 0 or 1")
        out.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(out)


def pointer_of(path: Iterable[str | int]) -> str:
    """``("data", "a/b")`` → ``/data/a~1b`` (RFC 6901)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in path)


@dataclass(frozen=True)
class SensitiveField:
    """One kind's field whose value (and everything under it) is sensitive."""

    group: str
    """API group; ``""`` is the core group."""
    kind: str
    path: Path
    """Tokens of the JSON pointer; `ANY` matches any one key or index."""

    @property
    def pointer(self) -> str:
        return pointer_of(self.path)

    def __str__(self) -> str:
        return f"{self.group}/{self.kind}:{self.pointer}" if self.group else f"{self.kind}:{self.pointer}"


def parse(text: str, *, source: str = "--sensitive-field") -> SensitiveField:
    """A sensitive field from ``[GROUP/]KIND:POINTER``; `ConfigError` naming ``source`` otherwise.

    ``ConfigMap:/data/password``, ``apps/Deployment:/spec/template/spec/containers/*/env``.
    """
    where = f"{source} {text!r}"
    kind_part, sep, pointer = text.strip().partition(":")
    if not sep:
        raise ConfigError(
            f"{where}: expected [GROUP/]KIND:POINTER, e.g. ConfigMap:/data/password or "
            "apps/Deployment:/spec/template/spec/containers/*/env"
        )
    group, _, kind = kind_part.rpartition("/")
    if group in ("core", "v1"):
        group = ""
    if group and not _GROUP.match(group):
        raise ConfigError(f"{where}: {group!r} is not an API group (lower-case DNS name, e.g. apps)")
    if not _KIND.match(kind):
        raise ConfigError(f"{where}: {kind!r} is not a kind (e.g. ConfigMap, Deployment)")
    try:
        path = _tokens(pointer)
    except ValueError as exc:
        raise ConfigError(f"{where}: {pointer!r} is not a JSON pointer: {exc}") from None
    if any(not t for t in path):
        raise ConfigError(f"{where}: {pointer!r} has an empty token (a '//' or a trailing '/')")
    for identity in _IDENTITY:
        if _under(path, identity):
            raise ConfigError(
                f"{where}: {pointer!r} would cover {pointer_of(identity)}, which every copy must show in "
                "the clear (point at a field inside the object, e.g. /data/password)"
            )
    return SensitiveField(group=group, kind=kind, path=path)


def parse_all(texts: Iterable[str], *, source: str = "--sensitive-field") -> tuple[SensitiveField, ...]:
    """Each of ``texts`` parsed (a text may hold several, separated by spaces or commas)."""
    out: list[SensitiveField] = []
    for text in texts:
        for part in re.split(r"[\s,]+", text.strip()):
            if part:
                out.append(parse(part, source=source))
    return tuple(dict.fromkeys(out))


def _under(prefix: Path, path: Sequence[str | int]) -> bool:
    """Whether ``path`` is ``prefix`` or inside it (`ANY` in ``prefix`` matches one token)."""
    if len(path) < len(prefix):
        return False
    return all(p == ANY or p == str(t) for p, t in zip(prefix, path, strict=False))


def _above(path: Sequence[str | int], prefix: Path) -> bool:
    """Whether ``path`` is a strict ancestor of some path ``prefix`` matches."""
    return len(path) < len(prefix) and all(
        p == ANY or p == str(t) for p, t in zip(prefix, path, strict=False)
    )


SECRET_FIELDS = (
    SensitiveField(group="", kind="Secret", path=("data",)),
    SensitiveField(group="", kind="Secret", path=("stringData",)),
)


def group_kind(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """(API group, kind) of a manifest; ``""`` for the core group."""
    api_version = str(manifest.get("apiVersion") or "")
    return api_version.rpartition("/")[0], str(manifest.get("kind") or "")


@dataclass(frozen=True)
class SensitiveFields:
    """The sensitive fields of every kind: Secrets' always, plus the fleet admin's."""

    extra: tuple[SensitiveField, ...] = ()
    _by_kind: dict[tuple[str, str], tuple[Path, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kind: dict[tuple[str, str], list[Path]] = {}
        for f in (*SECRET_FIELDS, *self.extra):
            by_kind.setdefault((f.group, f.kind), []).append(f.path)
        object.__setattr__(self, "_by_kind", {k: tuple(v) for k, v in by_kind.items()})

    def prefixes(self, group: str, kind: str) -> tuple[Path, ...]:
        """The pointers (as tokens, `ANY` included) that are sensitive in objects of this kind,
        kubectl's last-applied copy of the object included (see `paths` for when it counts)."""
        fields = self._by_kind.get((group, kind), ())
        return (*fields, _LAST_APPLIED) if fields else ()

    def covers(self, group: str, kind: str, path: Sequence[str | int]) -> bool:
        """Whether the value at ``path`` of a ``group``/``kind`` object is (inside) a sensitive field."""
        return any(_under(p, path) for p in self.prefixes(group, kind))

    def paths(self, manifest: Mapping[str, Any]) -> list[Path]:
        """The concrete paths of ``manifest`` holding a sensitive value (the outermost of nested
        ones), in document order of the rules."""
        group, kind = group_kind(manifest)
        fields = self._by_kind.get((group, kind), ())
        if not fields:
            return []
        found = [path for prefix in fields for path in _expand(manifest, prefix, ())]
        outermost = [p for p in dict.fromkeys(found) if not any(q != p and _under(q, p) for q in found)]
        if self._last_applied_is_sensitive(manifest, fields):
            outermost.append(_LAST_APPLIED)
        return outermost

    @staticmethod
    def _last_applied_is_sensitive(manifest: Mapping[str, Any], fields: tuple[Path, ...]) -> bool:
        """Whether kubectl's copy of the object holds a sensitive value (unreadable: assume so)."""
        annotations = (manifest.get("metadata") or {}).get("annotations")
        copy = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, Mapping) else None
        if copy is None:
            return False
        try:
            parsed = orjson.loads(copy) if isinstance(copy, str | bytes) else copy
        except orjson.JSONDecodeError:
            return True
        if not isinstance(parsed, Mapping):
            return True
        return any(True for prefix in fields for _ in _expand(parsed, prefix, ()))

    def contains(self, manifest: Mapping[str, Any]) -> bool:
        """Whether ``manifest`` holds any sensitive value (its store row is then sealed)."""
        return bool(self.paths(manifest))

    def strings(self, manifest: Mapping[str, Any]) -> list[str]:
        """The sensitive strings of ``manifest`` (of at least `MIN_SCRUBBED` characters), longest
        first: each string value at a sensitive path, a Secret's ``data`` values decoded too, and
        those of kubectl's last-applied copy."""
        group, kind = group_kind(manifest)
        found: set[str] = set()
        for path in self.paths(manifest):
            value = _at(manifest, path)
            if path == _LAST_APPLIED and isinstance(value, str):
                try:
                    copy = orjson.loads(value)
                except orjson.JSONDecodeError:
                    found.add(value)
                    continue
                if isinstance(copy, Mapping):
                    found.update(self.strings({**copy, "metadata": {}}))
                continue
            decode = (group, kind, path[:1]) == ("", "Secret", ("data",))
            for leaf in _leaves(value):
                found.add(leaf)
                if decode:
                    with contextlib.suppress(ValueError, UnicodeDecodeError):
                        found.add(base64.b64decode(leaf, validate=True).decode())
        return sorted((v for v in found if len(v) >= MIN_SCRUBBED), key=len, reverse=True)

    def scrub(self, text: str, manifest: Mapping[str, Any]) -> str:
        """``text`` (an error message: an override's, a member apiserver's) with every sensitive
        string of ``manifest`` in it replaced by ``<sensitive value>``. Messages quote what they
        found; these end in `works.last_error`, events and the API."""
        if not text:
            return text
        for value in self.strings(manifest):
            for form in (value, repr(value)[1:-1], orjson.dumps(value).decode()[1:-1]):
                if form in text:
                    text = text.replace(form, "<sensitive value>")
        return text


def _at(node: Any, path: Path) -> Any:
    for token in path:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)


def _expand(node: Any, prefix: Path, at: Path) -> Iterator[Path]:
    if not prefix:
        if node is not None:
            yield at
        return
    token, rest = prefix[0], prefix[1:]
    if isinstance(node, dict | Mapping):  # a dict (parsed JSON) is decided without the ABC
        keys = list(node) if token == ANY else ([token] if token in node else [])
        for key in keys:
            yield from _expand(node[key], rest, (*at, str(key)))
    elif isinstance(node, list):
        if token == ANY:
            indexes = range(len(node))
        elif token.isdigit() and int(token) < len(node):
            indexes = range(int(token), int(token) + 1)
        else:
            indexes = range(0)
        for i in indexes:
            yield from _expand(node[i], rest, (*at, str(i)))


def keyed_digest(value: Any, key: bytes) -> str:
    """``hmac-sha256:<32 hex digits>`` of the canonical JSON of ``value`` under ``key``: equal
    values give equal digests (so a diff still says "changed back to what it was"), and nobody
    without the key can test a guess against it."""
    canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return DIGEST_PREFIX + hmac.new(key, canonical, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Secrecy:
    """What is sensitive, and the key its hashes are keyed with.

    The key is derived from the controller's encryption key (`federation.sealing`), so hashes
    are stable across restarts; without an encryption key it is random per process (nothing
    sensitive is stored then, so no stored hash depends on it).
    """

    fields: SensitiveFields
    hash_key: bytes = field(repr=False)

    def key_for(self, manifest: Mapping[str, Any]) -> bytes | None:
        """The key to hash ``manifest`` with: `hash_key` when it holds a sensitive value, else
        None (plain SHA-256, as before: copies of other objects are not re-applied)."""
        return self.hash_key if self.fields.contains(manifest) else None

    def digest(self, value: Any) -> str:
        return keyed_digest(value, self.hash_key)

    def redact(self, value: Any, *, group: str, kind: str, at: Sequence[str | int] = ()) -> Any:
        """``value`` (found at ``at`` in a ``group``/``kind`` object) with every sensitive value
        in it replaced by its keyed digest; the same object when nothing in it is sensitive."""
        prefixes = self.prefixes_near(group, kind, at)
        if not prefixes:
            return value
        return self._redact(value, tuple(str(t) for t in at), prefixes)

    def prefixes_near(self, group: str, kind: str, at: Sequence[str | int]) -> tuple[Path, ...]:
        return tuple(p for p in self.fields.prefixes(group, kind) if _under(p, at) or _above(at, p))

    def _redact(self, value: Any, at: Path, prefixes: tuple[Path, ...]) -> Any:
        if any(_under(p, at) for p in prefixes):
            return self.digest(value)
        if isinstance(value, Mapping):
            return {k: self._redact(v, (*at, str(k)), prefixes) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact(v, (*at, str(i)), prefixes) for i, v in enumerate(value)]
        return value


DEFAULT_FIELDS = SensitiveFields()
