"""Encryption at rest of sensitive values: the controller's keys and the store's `Sealer`.

`keys` reads and writes the key file (``--encryption-key-file``: one ``ID:BASE64`` per line, the
first seals, all open); `sealer` seals the sensitive values of templates and works with
AES-256-GCM at the store boundary, bound to their row, and derives the key of the keyed hashes
(`federation.translate.sensitive.Secrecy`) from the active key. Its module docstring says why
the values are encrypted rather than left out of the database.
"""

from federation.sealing.keys import (
    EncryptionKey,
    KeyRing,
    load_key_file,
    new_key,
    parse_key_file,
    rotate_key_file,
    write_new_key_file,
)
from federation.sealing.sealer import KEY_FLAG, Sealer, derive_hash_key

__all__ = [
    "KEY_FLAG",
    "EncryptionKey",
    "KeyRing",
    "Sealer",
    "derive_hash_key",
    "load_key_file",
    "new_key",
    "parse_key_file",
    "rotate_key_file",
    "write_new_key_file",
]
