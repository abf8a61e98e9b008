#!/usr/bin/env python3
"""The controller's OCI image, built without a container engine.

It follows ``deploy/Dockerfile`` step by step, from what a machine with Debian's packages and
PyPI can reach:

1. **base layer** — a Debian root filesystem from ``debootstrap --variant=minbase`` with
   ``python3`` and ``python3-venv`` (bookworm's CPython 3.11, like ``python:3.11-slim``).
   Expensive (a couple of minutes), so it is cached under ``~/.cache/federation/image/`` keyed
   by its inputs (suite, architecture, package list, mirror, builder version), together with
   its gzip'd layer blob.
2. **package layer** — on a fresh copy of the base: the group and user 10001, a virtualenv at
   ``/opt/federation/venv`` holding the package's wheel (``pip wheel`` of the source, as the
   Dockerfile's build stage) and its dependencies, installed by the root filesystem's own
   Python through ``chroot`` so compiled wheels match it (the wheel carries the schema
   migrations: nothing is copied beside it). The layer is the difference from the base: new
   and changed files, and a whiteout for each removed one.
3. **image** — an OCI image layout in ``--output``: ``oci-layout``, ``index.json`` and
   ``blobs/sha256/`` (the two layers, the config with the Dockerfile's Env, User, Entrypoint,
   ExposedPorts and WorkingDir, and the manifest).

Layers are written reproducibly: entries sorted, one fixed mtime (``SOURCE_DATE_EPOCH``),
numeric owners only, gzip without a name or timestamp, and byte-code compiled with hash-checked
``.pyc`` files. Given the same base and the same resolved dependency versions, a rebuild gives
the same digests. Only the standard library is used: run it with any Python >= 3.11, as root
(``debootstrap`` and ``chroot`` need it).

    python deploy/image/build.py --output build/image
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Bump when the base layer's recipe changes (what is installed, cleaned, or how it is tarred).
BUILDER_VERSION = "2"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv")
DEFAULT_EPOCH = 1704067200  # 2024-01-01T00:00:00Z, when SOURCE_DATE_EPOCH is not set

VENV = "/opt/federation/venv"
UID = GID = 10001
ENTRYPOINT = ["federation", "run"]
EXPOSED_PORTS = ["8080/tcp"]  # /metrics, /healthz, /readyz (--listen)
BUILD_DIR = "/tmp/federation-build"  # inside the root filesystem, removed before the diff

MEDIA_LAYOUT_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Left out of every layer: the runtime provides them (mounts), or they are build leftovers.
EXCLUDED_CONTENTS = ("dev", "proc", "sys", "run", "tmp", "var/tmp")
EXCLUDED_FILES = ("etc/resolv.conf", "etc/hostname", "etc/hosts")


class BuildError(Exception):
    """A step failed or a tool is missing; the message says what to do."""


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


# -- tools -----------------------------------------------------------------------------------


def check_tools() -> None:
    if os.geteuid() != 0:
        raise BuildError(
            "building the image needs root (debootstrap and chroot): run it as root, e.g. "
            "`sudo make image` (CI runs as root)"
        )
    for tool, package in (("debootstrap", "debootstrap"), ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            raise BuildError(
                f"{tool} is missing: `apt-get install {package}` (or `make debootstrap`, which "
                "installs it when running as root)"
            )


def run(argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise BuildError(f"`{' '.join(argv)}` exited {result.returncode}:\n{tail}")


def chroot(root: Path, *argv: str, env: dict[str, str]) -> None:
    run(["chroot", str(root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv])


def debian_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# -- the base layer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    digest: str  # sha256:... of the bytes stored (compressed)
    size: int
    diff_id: str  # sha256:... of the uncompressed tar (layers only)


def base_key(*, suite: str, mirror: str, arch: str) -> str:
    inputs = {
        "builder": BUILDER_VERSION,
        "suite": suite,
        "mirror": mirror,
        "arch": arch,
        "variant": "minbase",
        "packages": sorted(BASE_PACKAGES),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def ensure_base(cache: Path, *, suite: str, mirror: str, arch: str, epoch: int) -> tuple[Path, Blob]:
    """The cached base root filesystem and its layer blob, made first when missing."""
    key = base_key(suite=suite, mirror=mirror, arch=arch)
    base = cache / f"base-{suite}-{arch}-{key}"
    meta = base / "layer.json"
    if meta.is_file():
        log(f"base: cached {base}")
        blob = Blob(**json.loads(meta.read_text()))
        return base / "rootfs", blob
    staging = cache / f".base-{key}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rootfs = staging / "rootfs"
    started = time.monotonic()
    log(f"base: debootstrap --variant=minbase {suite} with {', '.join(BASE_PACKAGES)} (a few minutes)")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--arch={arch}",
            f"--include={','.join(BASE_PACKAGES)}",
            suite,
            str(rootfs),
            mirror,
        ],
        # Dates written by maintainer scripts (root's password change day in /etc/shadow) and
        # byte-code compiled then (hash-checked .pyc) come out the same on every day.
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    # What apt and debootstrap leave behind that an image does not need.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
        clear_dir(rootfs / leftover)
    for name in (*EXCLUDED_FILES, "var/cache/ldconfig/aux-cache"):  # aux-cache: inodes and ctimes
        (rootfs / name).unlink(missing_ok=True)
    log(f"base: root filesystem in {time.monotonic() - started:.0f} s; writing its layer")
    blob = write_layer(staging / "layer.tar.gz", layer_entries(rootfs), epoch=epoch)
    meta_text = json.dumps(blob.__dict__, indent=2)
    (staging / "layer.json").write_text(meta_text)
    os.replace(staging, base)
    log(f"base: done in {time.monotonic() - started:.0f} s ({blob.size / 2**20:.1f} MiB compressed)")
    return base / "rootfs", blob


def clear_dir(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            # Keep the directory tree apt expects (archives/partial, lists/partial), empty.
            clear_dir(child)
        else:
            child.unlink()


# -- walking a root filesystem -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    path: str  # relative, no leading slash
    st: os.stat_result
    whiteout: bool = False


def excluded(rel: str) -> bool:
    if rel in EXCLUDED_FILES:
        return True
    return any(rel.startswith(prefix + "/") for prefix in EXCLUDED_CONTENTS)


def walk(root: Path) -> Iterator[Entry]:
    """Every entry under `root`, sorted, without the excluded ones (their directories stay)."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        names = sorted(os.listdir(root / rel_dir) if rel_dir else os.listdir(root), reverse=True)
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if excluded(rel):
                continue
            st = os.lstat(root / rel)
            if stat.S_ISSOCK(st.st_mode):
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            yield Entry(rel, st)


def layer_entries(root: Path) -> list[tuple[Path, Entry]]:
    return sorted(((root, e) for e in walk(root)), key=lambda pair: pair[1].path)


def signature(st: os.stat_result) -> tuple[int, ...]:
    """What makes an entry 'changed' between the base and the package step."""
    size_and_time = (0, 0) if stat.S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime_ns)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_ino, *size_and_time)


def snapshot(root: Path) -> dict[str, tuple[int, ...]]:
    return {e.path: signature(e.st) for e in walk(root)}


def changes(root: Path, before: dict[str, tuple[int, ...]]) -> list[tuple[Path, Entry]]:
    now = {e.path: e for e in walk(root)}
    out: list[tuple[Path, Entry]] = []
    for path, entry in now.items():
        if before.get(path) != signature(entry.st):
            out.append((root, entry))
    removed = sorted(p for p in before if p not in now)
    for path in removed:
        parent = path.rpartition("/")[0]
        if parent and parent in before and parent not in now:
            continue  # its removed parent's whiteout covers it
        head, _, name = path.rpartition("/")
        wh = f"{head}/.wh.{name}" if head else f".wh.{name}"
        out.append((root, Entry(wh, os.lstat(root), whiteout=True)))
    # A changed directory's parents must be in the layer too (tar needs them before it).
    present = {e.path for _, e in out}
    for _, entry in list(out):
        parent = entry.path.rpartition("/")[0]
        while parent and parent not in present:
            present.add(parent)
            out.append((root, now[parent]))
            parent = parent.rpartition("/")[0]
    return sorted(out, key=lambda pair: pair[1].path)


# -- writing a layer -------------------------------------------------------------------------


class Sink(Protocol):
    def write(self, data: memoryview, /) -> int: ...


class HashingWriter(io.RawIOBase):
    """Counts and hashes what passes through to `target` (or nowhere)."""

    def __init__(self, target: Sink | None) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += len(view)
        if self.target is not None:
            self.target.write(view)
        return len(view)


def tar_info(
    root: Path, entry: Entry, *, epoch: int, hardlinks: dict[tuple[int, int], str]
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime = epoch
    info.uname = info.gname = ""
    if entry.whiteout:
        info.type, info.mode, info.uid, info.gid = tarfile.REGTYPE, 0o644, 0, 0
        return info
    st = entry.st
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(root / entry.path)
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in hardlinks:
            info.type = tarfile.LNKTYPE
            info.linkname = hardlinks[key]
        else:
            if st.st_nlink > 1:
                hardlinks[key] = entry.path
            info.type = tarfile.REGTYPE
            info.size = st.st_size
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        raise BuildError(f"cannot put {root / entry.path} in a layer (mode {oct(st.st_mode)})")
    return info


def write_layer(path: Path, entries: list[tuple[Path, Entry]], *, epoch: int) -> Blob:
    """A gzip'd tar of `entries` at `path`; its digest, size and diff_id."""
    hardlinks: dict[tuple[int, int], str] = {}
    with path.open("wb") as out:
        compressed = HashingWriter(out)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            raw = HashingWriter(gz)
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for root, entry in entries:
                    info = tar_info(root, entry, epoch=epoch, hardlinks=hardlinks)
                    if info.type == tarfile.REGTYPE and not entry.whiteout:
                        with (root / entry.path).open("rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
    return Blob(
        digest=f"sha256:{compressed.sha.hexdigest()}",
        size=compressed.size,
        diff_id=f"sha256:{raw.sha.hexdigest()}",
    )


# -- the package layer -------------------------------------------------------------------------


def fresh_copy(base: Path, work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", "--reflink=auto", str(base), str(work)])


def copy_source(source: Path, dest: Path) -> None:
    """What the Dockerfile's build stage copies: pyproject.toml, README.md, federation/."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(source / name, dest / name)
    shutil.copytree(
        source / "federation", dest / "federation", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


@contextlib.contextmanager
def borrowed(cache_dir: Path, inside: Path) -> Iterator[None]:
    """Lend pip's cache (kept beside the base) to the root filesystem for one step.

    Moved, not bind-mounted: a build killed half-way loses the cache, never deletes through a
    leftover mount when the working copy is removed.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    inside.parent.mkdir(parents=True, exist_ok=True)
    os.replace(cache_dir, inside)
    try:
        yield
    finally:
        os.replace(inside, cache_dir)


def package_step(work: Path, *, source: Path, cache: Path, epoch: int) -> list[tuple[Path, Entry]]:
    """The Dockerfile's runtime steps on `work`; returns the layer's entries."""
    before = snapshot(work)
    build = work / BUILD_DIR.lstrip("/")
    build.mkdir(parents=True)
    copy_source(source, build / "src")
    # The registries may sit behind a TLS proxy with its own CA: hand the host's bundle to pip.
    ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    chroot_env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        # Byte-code compiled at install time is hash-checked, not stamped with mtimes.
        "SOURCE_DATE_EPOCH": str(epoch),
        "PIP_CACHE_DIR": f"{BUILD_DIR}/pip-cache",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT"):
        if name in os.environ:
            chroot_env[name] = os.environ[name]
    if Path(ca).is_file():
        shutil.copy2(ca, build / "ca.crt")
        chroot_env["PIP_CERT"] = f"{BUILD_DIR}/ca.crt"
    shutil.copy2("/etc/resolv.conf", work / "etc/resolv.conf")
    try:
        with borrowed(cache / "pip", build / "pip-cache"):
            # RUN groupadd / useradd (a fixed, unprivileged uid/gid).
            chroot(work, "groupadd", "--system", "--gid", str(GID), "federation", env=chroot_env)
            chroot(
                work,
                *("useradd", "--system", "--uid", str(UID), "--gid", str(GID), "--no-create-home"),
                *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "federation"),
                env=chroot_env,
            )
            # python:3.11-slim has pip in /usr/local; Debian's python is the system's, so a venv.
            log(f"package: virtualenv {VENV}, pip wheel of the source, pip install")
            chroot(work, "python3", "-m", "venv", VENV, env=chroot_env)
            pip = f"{VENV}/bin/pip"
            # The build stage: a wheel of the package and of its dependencies.
            chroot(
                work, pip, "wheel", "--wheel-dir", f"{BUILD_DIR}/wheels", f"{BUILD_DIR}/src", env=chroot_env
            )
            chroot(
                work,
                *(pip, "install", "--no-index", "--find-links", f"{BUILD_DIR}/wheels", "federation"),
                env=chroot_env,
            )
    finally:
        shutil.rmtree(build, ignore_errors=True)
        (work / "etc/resolv.conf").unlink(missing_ok=True)
    # Nothing written where the runtime mounts its own (or where builds leave scratch files).
    for leftover in ("root/.cache",):
        shutil.rmtree(work / leftover, ignore_errors=True)
    return changes(work, before)


# -- the image ---------------------------------------------------------------------------------


def package_version(source: Path) -> str:
    """The version the wheel gets: pyproject's own, or (``dynamic``) ``federation.__version__``,
    read from the source rather than imported (the builder runs on any Python with the stdlib)."""
    import ast
    import tomllib

    with (source / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    if "version" in project:
        return str(project["version"])
    tree = ast.parse((source / "federation" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise SystemExit(f"no version in {source / 'pyproject.toml'} nor __version__ in federation/__init__.py")


def write_blob(blobs: Path, data: bytes) -> Blob:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return Blob(digest=f"sha256:{digest}", size=len(data), diff_id="")


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_config(
    *, layers: list[Blob], env: list[str], version: str, epoch: int, arch: str
) -> dict[str, Any]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": f"{UID}:{GID}",
            "Env": env,
            "Entrypoint": ENTRYPOINT,
            "WorkingDir": "/",
            "ExposedPorts": {port: {} for port in EXPOSED_PORTS},
            "Labels": {
                "org.opencontainers.image.title": "federation",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.description": "the federation controller (federation run)",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {
                "created": created,
                "created_by": f"debootstrap --variant=minbase {SUITE} + python3 python3-venv",
            },
            {
                "created": created,
                "created_by": "deploy/image/build.py: user 10001, venv + wheels, migrations",
            },
        ],
    }


def write_layout(
    output: Path, *, layer_files: list[tuple[Path, Blob]], config: dict[str, Any], ref: str, arch: str
) -> str:
    """The OCI image layout in `output`; returns the manifest's digest."""
    if output.exists():
        if any(output.iterdir()) and not (output / "oci-layout").is_file():
            raise BuildError(f"{output} exists and is not an OCI image layout: not overwriting it")
        shutil.rmtree(output)
    blobs = output / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for path, blob in layer_files:
        target = blobs / blob.digest.removeprefix("sha256:")
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    config_blob = write_blob(blobs, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_blob.digest, "size": config_blob.size},
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": blob.digest, "size": blob.size} for _, blob in layer_files
        ],
    }
    manifest_blob = write_blob(blobs, canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_LAYOUT_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_blob.digest,
                "size": manifest_blob.size,
                "platform": {"architecture": arch, "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    (output / "index.json").write_bytes(canonical(index))
    (output / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    return manifest_blob.digest


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (the base, pip's cache and the working copy are shared)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(*, source: Path, output: Path, cache: Path, suite: str, mirror: str, ref: str | None) -> str:
    check_tools()
    with locked(cache):
        return build_locked(source=source, output=output, cache=cache, suite=suite, mirror=mirror, ref=ref)


def build_locked(*, source: Path, output: Path, cache: Path, suite: str, mirror: str, ref: str | None) -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    arch = debian_arch()
    version = package_version(source)
    started = time.monotonic()
    base_rootfs, base_blob = ensure_base(cache, suite=suite, mirror=mirror, arch=arch, epoch=epoch)
    work = cache / "work" / "rootfs"
    log("package: a fresh copy of the base")
    fresh_copy(base_rootfs, work)
    env = [
        f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "FEDERATION_LOG_FORMAT=json",
    ]
    entries = package_step(work, source=source, cache=cache, epoch=epoch)
    log(f"package: {len(entries)} entries differ from the base; writing the layer")
    package_layer = cache / "work" / "layer.tar.gz"
    package_blob = write_layer(package_layer, entries, epoch=epoch)
    base_layer = base_rootfs.parent / "layer.tar.gz"
    layers = [(base_layer, base_blob), (package_layer, package_blob)]
    config = image_config(layers=[b for _, b in layers], env=env, version=version, epoch=epoch, arch=arch)
    digest = write_layout(output, layer_files=layers, config=config, ref=ref or version, arch=arch)
    shutil.rmtree(cache / "work", ignore_errors=True)
    size = sum(b.size for _, b in layers)
    log(
        f"done in {time.monotonic() - started:.0f} s: {output} (manifest {digest}, "
        f"layers {base_blob.size / 2**20:.1f} + {package_blob.size / 2**20:.1f} MiB compressed, "
        f"{size / 2**20:.1f} MiB)"
    )
    return digest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, required=True, help="the OCI image layout's directory")
    parser.add_argument(
        "--source", type=Path, default=Path(__file__).resolve().parents[2], help="the repository's root"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "federation" / "image",
        help="where the base root filesystem and pip's cache are kept (default: %(default)s)",
    )
    parser.add_argument("--suite", default=SUITE, help="the Debian suite (default: %(default)s)")
    parser.add_argument("--mirror", default=MIRROR, help="the Debian mirror (default: %(default)s)")
    parser.add_argument("--ref", help="the image's ref.name in index.json (default: the package version)")
    args = parser.parse_args(argv)
    try:
        digest = build(
            source=args.source.resolve(),
            output=args.output.resolve(),
            cache=args.cache.resolve(),
            suite=args.suite,
            mirror=args.mirror,
            ref=args.ref,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
