"""The image builder's layers (deploy/image/build.py): reproducible tars and the package diff."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import sys
import tarfile
from pathlib import Path
from types import ModuleType

BUILDER = Path(__file__).resolve().parents[2] / "deploy" / "image" / "build.py"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("federation_image_build", BUILDER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = _builder()


def _tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool2")
    (root / "bin").symlink_to("usr/bin")
    (root / "tmp").mkdir()
    (root / "tmp" / "scratch").write_text("left out")
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.1\n")


def _names(path: Path) -> list[str]:
    with tarfile.open(path, "r:gz") as tar:
        return tar.getnames()


def test_a_layer_is_reproducible_and_its_digests_are_right(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    first = build.write_layer(tmp_path / "a.tar.gz", build.layer_entries(root), epoch=1000)
    os.utime(root / "etc" / "passwd", (5, 5))  # mtimes never reach the layer
    second = build.write_layer(tmp_path / "b.tar.gz", build.layer_entries(root), epoch=1000)
    assert first == second
    data = (tmp_path / "a.tar.gz").read_bytes()
    assert first.digest == f"sha256:{hashlib.sha256(data).hexdigest()}" and first.size == len(data)
    assert first.diff_id == f"sha256:{hashlib.sha256(gzip.decompress(data)).hexdigest()}"
    names = _names(tmp_path / "a.tar.gz")
    assert names == sorted(names)
    # The runtime's own (/tmp's contents, resolv.conf) stay out; the directory itself stays in.
    assert "tmp" in names and "tmp/scratch" not in names and "etc/resolv.conf" not in names
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: m for m in tar}
    assert {m.mtime for m in members.values()} == {1000}
    assert {(m.uname, m.gname) for m in members.values()} == {("", "")}
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["usr/bin/tool2"].islnk() and members["usr/bin/tool2"].linkname == "usr/bin/tool"


def test_the_package_layer_is_the_difference_with_whiteouts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    before = build.snapshot(root)
    (root / "opt" / "federation" / "venv").mkdir(parents=True)
    (root / "opt" / "federation" / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    # A rewritten file (useradd replaces /etc/passwd) and a removed one.
    (root / "etc" / "passwd.new").write_text("root:x:0:0::/root:/bin/sh\nfederation:x:10001:10001::\n")
    os.replace(root / "etc" / "passwd.new", root / "etc" / "passwd")
    (root / "usr" / "bin" / "tool2").unlink()
    entries = build.changes(root, before)
    paths = [entry.path for _, entry in entries]
    assert paths == [
        "etc",
        "etc/passwd",
        "opt",
        "opt/federation",
        "opt/federation/venv",
        "opt/federation/venv/pyvenv.cfg",
        "usr",
        "usr/bin",
        "usr/bin/.wh.tool2",
    ]
    layer = build.write_layer(tmp_path / "pkg.tar.gz", entries, epoch=0)
    assert layer.size > 0
    with tarfile.open(tmp_path / "pkg.tar.gz", "r:gz") as tar:
        whiteout = tar.getmember("usr/bin/.wh.tool2")
        assert whiteout.isfile() and whiteout.size == 0
