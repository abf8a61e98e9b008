"""The controller's encryption keys: a small text file, one key per line, the first one active.

Format (``--encryption-key-file``, ``FEDERATION_ENCRYPTION_KEY_FILE``)::

    # federation encryption keys: the first line seals, every line opens.
    k20260105-3f2a:6Vq3...base64 of 32 random bytes...=
    k20250601-91c0:Yx1T...=

Each key line is ``ID:BASE64``: an id (1-63 letters, digits, ``.``, ``_``, ``-``; stored beside
every value it seals, so a row tells which key it needs) and 32 bytes (AES-256) in standard
base64. Blank lines and lines starting with ``#`` are ignored. Rotation: put a new key first
(`rotate_key_file`, ``federation keys rotate``) and keep the old ones until no row uses them
any more (``federation keys usage``); works are re-sealed with the new key as soon as the
controller runs with it, templates when the hub object next changes.

Messages name the file and line, never key material.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from federation.errors import ConfigError

log = logging.getLogger(__name__)

KEY_BYTES = 32
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HEADER = "# federation encryption keys: the first line seals, every line opens. Keep this file secret.\n"


@dataclass(frozen=True)
class EncryptionKey:
    """One AES-256 key and the id stored with what it seals."""

    id: str
    material: bytes = field(repr=False)

    def line(self) -> str:
        return f"{self.id}:{base64.b64encode(self.material).decode()}"


@dataclass(frozen=True)
class KeyRing:
    """The keys of a key file: the first seals, all open."""

    keys: tuple[EncryptionKey, ...]
    source: str
    """Where they come from (the file), for messages."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError(f"{self.source}: holds no key", hint="federation keys generate --out FILE")

    @property
    def active(self) -> EncryptionKey:
        return self.keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.keys)

    def get(self, key_id: str) -> EncryptionKey | None:
        for key in self.keys:
            if key.id == key_id:
                return key
        return None


def new_key(key_id: str | None = None) -> EncryptionKey:
    """A fresh random key; its id defaults to ``k<date>-<4 hex>`` (sortable, unique enough)."""
    kid = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    _check_id(kid, where="the new key")
    return EncryptionKey(id=kid, material=secrets.token_bytes(KEY_BYTES))


def _check_id(kid: str, *, where: str) -> None:
    if not _ID.match(kid):
        raise ConfigError(
            f"{where}: key id {kid!r} is not 1-63 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )


def parse_key_file(text: str, *, source: str) -> KeyRing:
    """The keys of a key file's text; `ConfigError` naming ``source`` and the line otherwise."""
    keys: list[EncryptionKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source} line {number}"
        kid, sep, encoded = line.partition(":")
        if not sep:
            raise ConfigError(f"{where}: expected ID:BASE64 (one key per line)")
        _check_id(kid.strip(), where=where)
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: the key of {kid.strip()!r} is not base64") from None
        if len(material) != KEY_BYTES:
            raise ConfigError(
                f"{where}: the key of {kid.strip()!r} is {len(material)} bytes; AES-256 needs {KEY_BYTES}",
                hint="federation keys generate --out FILE",
            )
        if any(k.id == kid.strip() for k in keys):
            raise ConfigError(f"{where}: key id {kid.strip()!r} appears twice")
        keys.append(EncryptionKey(id=kid.strip(), material=material))
    return KeyRing(keys=tuple(keys), source=source)


def load_key_file(path: Path) -> KeyRing:
    """The keys in ``path``; `ConfigError` naming it when it is missing, unreadable or malformed.

    A file that others may read is used, with a warning (a Kubernetes Secret volume is mounted
    with the mode its ``defaultMode`` says, which the chart sets to 0440)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"--encryption-key-file {path}: file not found",
            hint=f"create one with `federation keys generate --out {path}`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--encryption-key-file {path}: cannot read it: {exc}") from None
    if mode & stat.S_IROTH:
        log.warning("encryption key file %s is readable by every user of this machine (chmod 600 it)", path)
    return parse_key_file(text, source=str(path))


def write_new_key_file(path: Path, *, key_id: str | None = None) -> EncryptionKey:
    """Create ``path`` (mode 0600, refused if it exists) holding one new key."""
    key = new_key(key_id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path}: exists already; not overwritten (its keys may be the only way to open what "
            "they sealed)",
            hint=f"to add a new active key to it: federation keys rotate --file {path}",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create it: {exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(HEADER + key.line() + "\n")
    return key


def rotate_key_file(path: Path, *, key_id: str | None = None) -> EncryptionKey:
    """Put a new key first in ``path`` (it seals from now on); the others stay (they still open).

    Written to a temporary file beside it and renamed over it, so a crash leaves the old file or
    the new one, never half of one."""
    ring = load_key_file(path)
    key = new_key(key_id)
    if ring.get(key.id) is not None:
        raise ConfigError(f"{path}: already holds a key with id {key.id!r}; give another --id")
    lines = [key.line(), *(k.line() for k in ring.keys)]
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(HEADER + "\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return key
