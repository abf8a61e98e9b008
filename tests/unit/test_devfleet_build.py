"""How the control-plane build finds its tools and caches its result (no compiling here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.devfleet import build
from federation.errors import BuildError, ToolchainMissingError


def test_missing_go_names_the_tool_and_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # empty cache: a build is needed
    monkeypatch.delenv(build.BINARY_ENV, raising=False)
    monkeypatch.delenv(build.GO_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ToolchainMissingError) as info:
        build.ensure_binary()
    assert "Go toolchain" in str(info.value)
    assert info.value.hint is not None
    assert "install Go 1.26" in info.value.hint


def test_too_old_go_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho go1.21.0\n")
    fake_go.chmod(0o755)
    monkeypatch.setenv(build.GO_ENV, str(fake_go))
    with pytest.raises(ToolchainMissingError, match=r"Go 1\.21\.0 is too old"):
        build.find_go()


def test_cache_key_changes_with_any_source_file(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module x\n\nrequire k8s.io/kubernetes v1.36.3\n")
    (tmp_path / "go.sum").write_text("")
    (tmp_path / "main.go").write_text("package main\n")
    (tmp_path / "README").write_text("not an input")
    first = build.source_hash(tmp_path, "-s -w")
    (tmp_path / "README").write_text("still not an input")
    assert build.source_hash(tmp_path, "-s -w") == first
    (tmp_path / "main.go").write_text("package main // changed\n")
    assert build.source_hash(tmp_path, "-s -w") != first
    assert build.source_hash(tmp_path, "-s") != build.source_hash(tmp_path, "-s -w"), (
        "link flags are part of the key"
    )


def test_prebuilt_binary_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    not_exe = tmp_path / "controlplane"
    not_exe.write_text("")
    monkeypatch.setenv(build.BINARY_ENV, str(not_exe))
    with pytest.raises(BuildError, match="not an executable"):
        build.ensure_binary()
    not_exe.chmod(0o755)
    assert build.ensure_binary() == not_exe
