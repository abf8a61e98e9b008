"""Sealing at rest: AES-256-GCM round trips, rotation, values bound to their row and field
(tampering and swapping detected), no key = nothing sensitive stored, and the key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from federation.cli import main
from federation.errors import ConfigError, SealingError, SealingUnavailableError, UnsealError
from federation.sealing import (
    KeyRing,
    Sealer,
    derive_hash_key,
    load_key_file,
    new_key,
    parse_key_file,
    rotate_key_file,
    write_new_key_file,
)
from federation.store.sealing import PLACEHOLDER, SEALED, SealedRow, sealed_with
from federation.translate import SensitiveFields
from federation.translate.sensitive import parse_all

PASSWORD = "correct-horse-battery-staple"
B64 = base64.b64encode(PASSWORD.encode()).decode()


def ring(*ids: str) -> KeyRing:
    return KeyRing(keys=tuple(new_key(i) for i in ids), source="test.keys")


def secret(name: str = "db", namespace: str = "shop", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": f'{{"data":{{"password":"{B64}"}}}}',
                "federation.io/hash": "abc",
            },
        },
        "type": "Opaque",
        "data": {"password": B64},
        "stringData": {"token": PASSWORD},
        **extra,
    }


def work_row(doc: dict[str, Any], *, cluster: str = "member-1", resource_id: int = 7) -> SealedRow:
    return SealedRow.of_work(doc, resource_id=resource_id, cluster=cluster)


def plaintext_free(doc: Any) -> bool:
    text = orjson.dumps(doc).decode()
    return PASSWORD not in text and B64 not in text


# -- round trip ------------------------------------------------------------------------------


def test_a_sealed_secret_holds_no_value_and_opens_to_what_was_sealed() -> None:
    sealer = Sealer(keys=ring("k1"))
    doc = secret()
    sealed = sealer.seal(doc, work_row(doc))
    assert plaintext_free(sealed)
    assert sealed["data"] == sealed["stringData"] == PLACEHOLDER
    assert (
        sealed["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == PLACEHOLDER
    )
    # Identity and the rest stay readable (the store and SQL views need them).
    assert sealed["metadata"]["name"] == "db" and sealed["type"] == "Opaque"
    assert sealed["metadata"]["annotations"]["federation.io/hash"] == "abc"
    assert sealed[SEALED]["kid"] == "k1" and sealed_with(sealed) == "k1"
    assert set(sealed[SEALED]["fields"]) == {
        "/data",
        "/stringData",
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    }
    assert sealer.unseal(sealed, work_row(doc)) == doc
    assert doc == secret(), "the input is not modified"


def test_sealing_twice_gives_different_ciphertexts() -> None:
    sealer = Sealer(keys=ring("k1"))
    doc = secret()
    a, b = sealer.seal(doc, work_row(doc)), sealer.seal(doc, work_row(doc))
    assert a[SEALED]["fields"]["/data"] != b[SEALED]["fields"]["/data"], "a fresh nonce each time"


def test_a_document_without_sensitive_values_is_stored_as_it_is() -> None:
    sealer = Sealer(keys=None)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"password": PASSWORD}}
    assert sealer.seal(cm, work_row(cm)) is cm
    assert sealer.unseal(cm, work_row(cm)) is cm


def test_a_marked_field_is_sealed_and_only_that_field() -> None:
    sealer = Sealer(keys=ring("k1"), fields=SensitiveFields(extra=parse_all(["ConfigMap:/data/password"])))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"password": PASSWORD, "u": "x"},
    }
    sealed = sealer.seal(cm, work_row(cm))
    assert sealed["data"] == {"password": PLACEHOLDER, "u": "x"} and plaintext_free(sealed)
    assert sealer.unseal(sealed, work_row(cm)) == cm


def test_wildcard_fields_in_lists_round_trip() -> None:
    sealer = Sealer(
        keys=ring("k1"), fields=SensitiveFields(extra=parse_all(["apps/Deployment:/spec/containers/*/env"]))
    )
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"containers": [{"env": [{"name": "P", "value": PASSWORD}]}, {"name": "b"}]},
    }
    sealed = sealer.seal(doc, work_row(doc))
    assert plaintext_free(sealed) and sealed["spec"]["containers"][1] == {"name": "b"}
    assert sealer.unseal(sealed, work_row(doc)) == doc


# -- rotation --------------------------------------------------------------------------------


def test_rotation_the_first_key_seals_and_every_key_opens() -> None:
    old = ring("k1")
    doc = secret()
    sealed_old = Sealer(keys=old).seal(doc, work_row(doc))
    rotated = KeyRing(keys=(new_key("k2"), *old.keys), source="test.keys")
    sealer = Sealer(keys=rotated)
    assert sealer.unseal(sealed_old, work_row(doc)) == doc, "the old key still opens"
    resealed = sealer.seal(doc, work_row(doc))
    assert sealed_with(resealed) == "k2"
    assert sealer.readable_keys == ("k2", "k1")
    # Once the old key is dropped, what it sealed no longer opens, with a clear error.
    with pytest.raises(
        UnsealError, match="sealed with encryption key 'k1', which --encryption-key-file"
    ) as err:
        Sealer(keys=KeyRing(keys=(rotated.keys[0],), source="new.keys")).unseal(sealed_old, work_row(doc))
    assert err.value.key_id == "k1" and "works resource_id=7 cluster=member-1 (Secret shop/db)" in str(
        err.value
    )


def test_the_hash_key_follows_the_active_key_and_is_not_it() -> None:
    keys = ring("k1", "k0")
    sealer = Sealer(keys=keys)
    assert sealer.secrecy.hash_key == derive_hash_key(keys.active.material) != keys.active.material
    assert Sealer(keys=keys).secrecy.hash_key == sealer.secrecy.hash_key, "stable across restarts"
    assert Sealer(keys=None).secrecy.hash_key != Sealer(keys=None).secrecy.hash_key, (
        "per process without a key"
    )


# -- bound to the row and the field ----------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        SealedRow.of_work(secret(), resource_id=7, cluster="member-2"),
        SealedRow.of_work(secret(), resource_id=8, cluster="member-1"),
        SealedRow.of_work(secret(name="other"), resource_id=7, cluster="member-1"),
        SealedRow.of_work(secret(namespace="team-b"), resource_id=7, cluster="member-1"),
        SealedRow(table="resources", api_group="", kind="Secret", namespace="shop", name="db"),
    ],
    ids=["another-cluster", "another-resource", "another-name", "another-namespace", "another-table"],
)
def test_a_sealed_document_moved_to_another_row_does_not_open(other: SealedRow) -> None:
    sealer = Sealer(keys=ring("k1"))
    doc = secret()
    sealed = sealer.seal(doc, work_row(doc))
    with pytest.raises(UnsealError, match="does not open with encryption key 'k1'"):
        sealer.unseal(sealed, other)


def test_a_ciphertext_moved_to_another_field_or_altered_does_not_open() -> None:
    sealer = Sealer(keys=ring("k1"))
    doc = secret()
    sealed = sealer.seal(doc, work_row(doc))
    fields = sealed[SEALED]["fields"]
    swapped = {**sealed, SEALED: {**sealed[SEALED], "fields": {**fields, "/data": fields["/stringData"]}}}
    with pytest.raises(UnsealError, match="/data does not open"):
        sealer.unseal(swapped, work_row(doc))
    raw = bytearray(base64.b64decode(fields["/data"]))
    raw[-1] ^= 1
    flipped = {
        **sealed,
        SEALED: {**sealed[SEALED], "fields": {**fields, "/data": base64.b64encode(raw).decode()}},
    }
    with pytest.raises(UnsealError, match="the row was altered"):
        sealer.unseal(flipped, work_row(doc))
    # A sealed value from another row (even of the same Secret, another cluster) does not open here.
    elsewhere = sealer.seal(doc, work_row(doc, cluster="member-2"))
    grafted = {
        **sealed,
        SEALED: {**sealed[SEALED], "fields": {**fields, "/data": elsewhere[SEALED]["fields"]["/data"]}},
    }
    with pytest.raises(UnsealError):
        sealer.unseal(grafted, work_row(doc))
    # Its placeholder replaced (the value moved elsewhere in the document): refused, not guessed.
    moved = {**sealed, "data": {"x": 1}}
    with pytest.raises(UnsealError):
        sealer.unseal(moved, work_row(doc))


def test_a_wrong_key_with_the_right_id_is_told_apart_from_a_missing_one() -> None:
    doc = secret()
    sealed = Sealer(keys=ring("k1")).seal(doc, work_row(doc))
    with pytest.raises(UnsealError, match="the key is not the one that sealed it"):
        Sealer(keys=ring("k1")).unseal(sealed, work_row(doc))  # same id, other bytes


def test_strip_leaves_the_identity_and_no_placeholder_maps() -> None:
    sealer = Sealer(keys=ring("k1"))
    doc = secret()
    stripped = sealer.strip(sealer.seal(doc, work_row(doc)))
    assert SEALED not in stripped and "data" not in stripped and "stringData" not in stripped
    assert stripped["metadata"]["name"] == "db" and stripped["kind"] == "Secret"


def test_an_object_carrying_the_reserved_field_is_refused() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, SEALED: {"kid": "x"}}
    with pytest.raises(SealingError, match="reserves"):
        Sealer(keys=ring("k1")).seal(doc, work_row(doc))


# -- without a key ---------------------------------------------------------------------------


def test_without_a_key_a_sensitive_row_is_refused_naming_the_row_and_the_flag() -> None:
    sealer = Sealer(keys=None)
    assert not sealer.available and sealer.readable_keys == ()
    doc = secret()
    with pytest.raises(SealingUnavailableError) as err:
        sealer.seal(doc, work_row(doc))
    message = str(err.value)
    assert "works resource_id=7 cluster=member-1 (Secret shop/db)" in message and "/data" in message
    assert "--encryption-key-file" in (err.value.hint or "") and plaintext_free(message)


def test_without_a_key_a_sealed_row_does_not_open() -> None:
    doc = secret()
    sealed = Sealer(keys=ring("k1")).seal(doc, work_row(doc))
    with pytest.raises(UnsealError, match="'k1'"):
        Sealer(keys=None).unseal(sealed, work_row(doc))


# -- the key file ------------------------------------------------------------------------------


def test_a_generated_key_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    key = write_new_key_file(path, key_id="k1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_file(path)
    assert loaded.ids == ("k1",) and loaded.active.material == key.material and len(key.material) == 32
    with pytest.raises(ConfigError, match="exists already; not overwritten"):
        write_new_key_file(path)
    assert load_key_file(path).active.material == key.material


def test_rotating_a_key_file_puts_a_new_key_first_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    old = write_new_key_file(path, key_id="k1")
    new = rotate_key_file(path, key_id="k2")
    loaded = load_key_file(path)
    assert loaded.ids == ("k2", "k1") and loaded.get("k1") == old and loaded.active == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name != "keys"], "no temporary file left"
    with pytest.raises(ConfigError, match="already holds a key with id 'k1'"):
        rotate_key_file(path, key_id="k1")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        ("k1\n", "line 1: expected ID:BASE64"),
        ("# c\nk1:not*base64\n", "line 2: the key of 'k1' is not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}\n", "is 5 bytes; AES-256 needs 32"),
        ("bad id:" + base64.b64encode(os.urandom(32)).decode(), "key id 'bad id' is not"),
        (
            "k1:{k}\nk1:{k}\n".format(k=base64.b64encode(os.urandom(32)).decode()),
            "line 2: key id 'k1' appears twice",
        ),
    ],
    # Fixed ids: the keys are random, and pytest-xdist's workers must collect the same names.
    ids=["empty", "comments-only", "no-colon", "not-base64", "short-key", "bad-id", "duplicate-id"],
)
def test_a_bad_key_file_names_the_file_and_line_never_the_key(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_key_file(text, source="/etc/keys")
    assert "/etc/keys" in str(err.value) and says in str(err.value)
    for line in text.splitlines():
        secret_part = line.partition(":")[2]
        if len(secret_part) > 8:
            assert secret_part not in str(err.value)


def test_a_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--encryption-key-file .*: file not found") as err:
        load_key_file(tmp_path / "nope")
    assert "federation keys generate --out" in (err.value.hint or "")


def test_a_world_readable_key_file_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    write_new_key_file(path)
    path.chmod(0o644)
    assert load_key_file(path).ids
    assert "readable by every user" in caplog.text


def test_the_keys_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "fed.keys"
    result = runner.invoke(main, ["keys", "generate", "--out", str(path), "--id", "k1"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and load_key_file(path).ids == ("k1",)
    result = runner.invoke(main, ["keys", "rotate", "--file", str(path), "--id", "k2"])
    assert result.exit_code == 0 and load_key_file(path).ids == ("k2", "k1")
    result = runner.invoke(main, ["keys", "generate", "--out", str(path)])
    assert result.exit_code == 1 and "not overwritten" in result.output
    result = runner.invoke(main, ["keys", "generate", "--help"])
    assert "0600" in result.output


def test_run_refuses_a_bad_sensitive_field_or_key_file_before_connecting(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    runner = CliRunner()
    base = ["run", "--hub-kubeconfig", str(kubeconfig), "--database-url", "postgresql://u@127.0.0.1:1/x"]
    result = runner.invoke(main, [*base, "--sensitive-field", "ConfigMap/data"])
    assert result.exit_code == 1 and "--sensitive-field 'ConfigMap/data'" in result.output
    result = runner.invoke(main, [*base, "--encryption-key-file", str(tmp_path / "missing")])
    assert (
        result.exit_code == 1
        and "--encryption-key-file" in result.output
        and "file not found" in result.output
    )
