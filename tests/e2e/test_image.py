"""The controller's OCI image, built without Docker (deploy/image/build.py), starts.

The image layout itself is checked, not the builder's working directory: index.json → the
manifest → the config and the layers, every blob's sha256 digest and size verified, the layers
unpacked in order (whiteouts applied) into a root filesystem of the test's own. The entrypoint
then runs there under chroot with exactly the config's Env, as root and as the config's user,
and migrates a fresh database of the session's Postgres (loopback is shared with the chroot).

Needs root and debootstrap (`make debootstrap`); the base root filesystem is cached under
~/.cache/federation/image, so only the package layer is rebuilt once it exists.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from federation.devfleet import EmbeddedPostgres
from federation.store import head_revision
from federation.versions import KUBERNETES, POSTGRES
from tests.storehelpers import create_database, drop_database

# The first test's setup builds the image: from an empty cache ~3–4 min on 2 cores (debootstrap
# depends on the mirror), under a minute warm; the suite's 600 s default is too tight for a slow mirror.
pytestmark = pytest.mark.timeout(1200)

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "deploy" / "image" / "build.py"
UID = 10001


@dataclass(frozen=True)
class Image:
    layout: Path
    config: dict[str, Any]
    rootfs: Path

    @property
    def env(self) -> list[str]:
        return list(self.config["config"]["Env"])

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config["config"]["Entrypoint"])


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "building the image needs root (debootstrap and chroot): run the tests as root, as CI does"
    if shutil.which("debootstrap") is None:
        return "debootstrap is missing: `make debootstrap` (as root) or `apt-get install debootstrap`"
    return None


def _blob(layout: Path, descriptor: dict[str, Any]) -> bytes:
    """A blob of the layout, its digest and size checked against the descriptor naming it."""
    algorithm, _, digest = descriptor["digest"].partition(":")
    assert algorithm == "sha256", descriptor
    data = (layout / "blobs" / "sha256" / digest).read_bytes()
    assert len(data) == descriptor["size"], f"{descriptor['digest']}: size"
    assert hashlib.sha256(data).hexdigest() == digest, f"{descriptor['digest']}: digest"
    return bytes(data)


def _inside(root: Path, name: str, real_dirs: set[Path]) -> Path:
    """`name` of a layer under `root`, refusing names that climb out of it.

    No parent may be a symlink (a layer writes through real directories only); `real_dirs`
    remembers the parents already checked.
    """
    path = PurePosixPath(name)
    assert not path.is_absolute() and ".." not in path.parts, name
    target = root.joinpath(*path.parts)
    parent = target.parent
    while parent != root and parent not in real_dirs:
        assert not parent.is_symlink(), f"{name}: through the symlink {parent}"
        real_dirs.add(parent)
        parent = parent.parent
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _apply_layer(root: Path, data: bytes, scratch: Path) -> None:
    """Unpack one gzip'd tar layer onto `root` as a runtime does (OCI whiteouts applied)."""
    archive = scratch / "layer.tar.gz"
    archive.write_bytes(data)
    real_dirs: set[Path] = set()
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            target = _inside(root, member.name, real_dirs)
            head, name = target.parent, target.name
            if name == ".wh..wh..opq":
                for child in head.iterdir():
                    _remove(child)
                continue
            if name.startswith(".wh."):
                _remove(head / name.removeprefix(".wh."))
                continue
            if not member.isdir():
                _remove(target)
            elif target.is_symlink():
                _remove(target)
                real_dirs.discard(target)
            # Our own, digest-checked layer: owners, modes and links exactly as written.
            tar.extract(member, root, filter="fully_trusted")
    archive.unlink()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    missing = _missing_tools()
    if missing:
        pytest.fail(missing)
    layout = tmp_path_factory.mktemp("image") / "layout"
    built = subprocess.run(
        [sys.executable, str(BUILDER), "--output", str(layout)],
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]

    oci_layout = json.loads((layout / "oci-layout").read_text())
    assert oci_layout == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [descriptor] = index["manifests"]
    assert descriptor["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(_blob(layout, descriptor))
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(_blob(layout, manifest["config"]))
    layers = manifest["layers"]
    assert len(layers) == len(config["rootfs"]["diff_ids"]) >= 1

    rootfs = tmp_path_factory.mktemp("rootfs")
    rootfs.chmod(0o755)  # pytest makes its directories 0700: the image's user could not enter "/"
    scratch = tmp_path_factory.mktemp("scratch")
    for layer, diff_id in zip(layers, config["rootfs"]["diff_ids"], strict=True):
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        data = _blob(layout, layer)
        assert f"sha256:{hashlib.sha256(gzip.decompress(data)).hexdigest()}" == diff_id
        _apply_layer(rootfs, data, scratch)
    # What a container runtime provides: /dev/null (and friends) over the image's empty /dev.
    for name, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
        node = rootfs / "dev" / name
        if not node.exists():
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    yield Image(layout=layout, config=config, rootfs=rootfs)
    # ~0.5 GB: not left for pytest's retention of the last three sessions' temp directories.
    shutil.rmtree(rootfs)
    shutil.rmtree(layout)


def _run(
    image: Image, *args: str, user: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The entrypoint's program in the image's root filesystem, with only the config's Env."""
    chroot = ["chroot", f"--userspec={UID}:{UID}"] if user else ["chroot"]
    argv = [*chroot, str(image.rootfs), "/usr/bin/env", "-i", *image.env, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd="/")


def test_the_config_is_the_dockerfiles(image: Image) -> None:
    settings = image.config["config"]
    assert settings["Entrypoint"] == ["federation", "run"]
    assert settings["User"].split(":") == [str(UID), str(UID)]
    assert settings["ExposedPorts"] == {"8080/tcp": {}}
    assert settings["WorkingDir"] == "/"
    env = dict(item.split("=", 1) for item in settings["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["FEDERATION_LOG_FORMAT"] == "json"
    assert image.config["os"] == "linux"
    # The migrations come with the wheel: no directory beside it, no variable pointing at one.
    assert "FEDERATION_MIGRATIONS_DIR" not in env
    assert not (image.rootfs / "opt/federation/migrations").exists()


def test_the_entrypoint_prints_the_version(image: Image) -> None:
    program = image.entrypoint[0]
    result = _run(image, program, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        f"federation, version {version('federation')}",
        f"tested with Kubernetes {KUBERNETES} and PostgreSQL {POSTGRES}",
    ]
    listed = _run(image, program, "--help")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:1] == ["run"] for line in listed.stdout.splitlines()), listed.stdout


def test_the_user_exists_and_runs_the_entrypoint(image: Image) -> None:
    passwd = (image.rootfs / "etc/passwd").read_text().splitlines()
    assert any(line.split(":")[2:4] == [str(UID), str(UID)] for line in passwd)
    # `federation run --help` imports the whole controller (uvloop, asyncpg, kubernetes client).
    result = _run(image, *image.entrypoint, "--help", user=True)
    assert result.returncode == 0, result.stderr
    assert "Usage: federation run" in result.stdout
    whoami = _run(image, "id", "-u", user=True)
    assert whoami.stdout.strip() == str(UID)


@pytest.fixture
async def fresh_database(postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    name = "image_migrate_test"
    url = await create_database(postgres.url, name)
    yield url
    await drop_database(postgres.url, name)


async def test_the_image_migrates_a_database(image: Image, fresh_database: str) -> None:
    result = _run(image, image.entrypoint[0], "db", "upgrade", "--database-url", fresh_database, user=True)
    assert result.returncode == 0, result.stderr
    assert f"upgraded none (empty database) → {head_revision()} (head)" in result.stdout
