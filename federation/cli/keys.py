"""`federation keys`: the encryption keys that seal Secrets' data in Postgres.

``generate`` makes a key file (mode 0600) for ``federation run --encryption-key-file``;
``rotate`` puts a new active key first in one, keeping the old keys so what they sealed still
opens; ``usage`` counts the rows sealed with each key, which says when an old key may go.
"""

from __future__ import annotations

from pathlib import Path

import click

from federation.cli.common import (
    database_options,
    err_console,
    out_console,
    with_database,
)
from federation.cli.output import Listing, Output, emit, output_option
from federation.sealing import rotate_key_file, write_new_key_file


@click.group("keys")
def keys() -> None:
    """Encryption keys that seal Secrets' data (and fields marked sensitive) in Postgres.

    \b
    A key file holds one ID:BASE64 line per key (32 random bytes, standard base64); the first
    line seals, every line opens. Keep it secret: in Kubernetes, a Secret mounted read-only.

    \b
    Example:
      federation keys generate --out federation.keys
      federation run --encryption-key-file federation.keys ...
      kubectl -n federation-system create secret generic federation-encryption-key \\
          --from-file=keys=federation.keys
    """


@keys.command("generate")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key file to create (mode 0600; an existing file is never overwritten).",
)
@click.option("--id", "key_id", help="The key's id [default: k<date>-<4 hex digits>].")
def generate(out: Path, key_id: str | None) -> None:
    """Create a key file holding one new random AES-256 key."""
    key = write_new_key_file(out, key_id=key_id)
    out_console.print(f"wrote {out} (mode 0600) with key {key.id}")
    err_console.print(f"[yellow]next:[/] federation run --encryption-key-file {out} ...", soft_wrap=True)


@keys.command("rotate")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The key file to add a new active key to (replaced atomically).",
)
@click.option("--id", "key_id", help="The new key's id [default: k<date>-<4 hex digits>].")
def rotate(file: Path, key_id: str | None) -> None:
    """Put a new key first in a key file: it seals from now on; the old keys still open.

    \b
    Then: give the controller the new file (update its Secret) and restart it; works are
    re-sealed with the new key as it starts, templates when the hub object next changes. Keep
    the old keys until `federation keys usage` shows no row sealed with them.
    """
    key = rotate_key_file(file, key_id=key_id)
    out_console.print(f"{file}: {key.id} is the active key now; the older keys still open what they sealed")


KEY_USAGE = Listing(columns=("key", "works", "resources"), name=lambda r: f"key/{r['key']}")


@keys.command("usage")
@database_options
@output_option
def usage(database_url: str | None, state_dir: Path, output: Output) -> None:
    """How many rows hold values sealed with each key (a key used by none may be dropped)."""
    from federation.store import Store

    async def count(url: str) -> dict[str, dict[str, int]]:
        store = await Store.connect(url)
        try:
            return await store.sealed_key_usage()
        finally:
            await store.close()

    found = with_database(database_url, state_dir, count)
    rows = [
        {"key": kid, "works": tables.get("works", 0), "resources": tables.get("resources", 0)}
        for kid, tables in sorted(found.items())
    ]
    if not rows and output.tabular and output.headers:
        out_console.print("no row holds a sealed value")
        return
    emit(rows, KEY_USAGE, output)
