"""Build (once per machine) the `controlplane` binary from `tools/controlplane/`.

The binary embeds kube-apiserver and etcd, compiled from the Kubernetes Go modules, because no
container engine or prebuilt Kubernetes binary is available where the tests run. A cold build
takes minutes, so the result is cached under ``~/.cache/federation/controlplane/<hash>/``,
keyed by the hash of the module's go.mod, go.sum and sources: any change rebuilds, nothing
else does. Go's own build cache (``~/.cache/go-build``) makes a rebuild after a small source
change fast too.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from federation.errors import BuildError, ToolchainMissingError

#: Called with one line of human-readable progress.
Progress = Callable[[str], None]

#: Set to a prebuilt binary to skip the build (e.g. a CI cache or a packaged install).
BINARY_ENV = "FEDERATION_CONTROLPLANE_BIN"
#: The Go toolchain to use, if `go` on PATH is not the right one.
GO_ENV = "FEDERATION_GO"
MIN_GO = (1, 26)


def source_dir() -> Path:
    """The Go module's directory in this checkout."""
    here = Path(__file__).resolve()
    candidate = here.parents[2] / "tools" / "controlplane"
    if not (candidate / "go.mod").is_file():
        raise BuildError(
            f"cannot find the control-plane sources at {candidate}",
            hint=f"run from a checkout of the federation repository, or set {BINARY_ENV} "
            "to a built controlplane binary",
        )
    return candidate


def cache_root() -> Path:
    """~/.cache/federation: one directory per built tool, one subdirectory per source hash."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "federation"


def kubernetes_version(src: Path) -> str:
    """The k8s.io/kubernetes release go.mod pins, e.g. v1.36.3."""
    for line in (src / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["require"]:
            parts = parts[1:]
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and parts[1].startswith("v"):
            return parts[1]
    raise BuildError(f"{src / 'go.mod'} does not require k8s.io/kubernetes")


def ldflags(src: Path) -> str:
    """Link flags: strip symbols, and stamp the release into the binary the way Kubernetes'
    own build does, so /version and kubectl report v1.36.3 rather than v0.0.0-master."""
    version = kubernetes_version(src)
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def source_hash(src: Path, link_flags: str = "") -> str:
    """Hash of everything that goes into the binary (go.mod, go.sum, *.go, link flags)."""
    h = hashlib.sha256(link_flags.encode())
    files = sorted(
        p for p in src.iterdir() if p.is_file() and (p.suffix == ".go" or p.name in ("go.mod", "go.sum"))
    )
    for p in files:
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def find_go() -> str:
    """Path of a Go toolchain new enough to build the module, or a clear error."""
    go = os.environ.get(GO_ENV) or shutil.which("go")
    if not go:
        raise ToolchainMissingError(
            "the Go toolchain is needed to build the local control planes, and `go` is not on PATH",
            hint=f"install Go {MIN_GO[0]}.{MIN_GO[1]} or newer (Debian/Ubuntu: a golang package of that "
            f"version, or https://go.dev/dl), or set {GO_ENV}=/path/to/go",
        )
    try:
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolchainMissingError(f"`{go} env GOVERSION` failed: {exc}") from exc
    version = out.stdout.strip().removeprefix("go")
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return go  # a development toolchain: let the build decide
    if (major, minor) < MIN_GO:
        raise ToolchainMissingError(
            f"Go {version} is too old to build the control planes (need {MIN_GO[0]}.{MIN_GO[1]}+)",
            hint=f"install a newer Go or point {GO_ENV} at one",
        )
    return go


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Serialise builds across processes (parallel test sessions share one cache)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_binary(progress: Progress | None = None) -> Path:
    """Return the path of a built controlplane binary, building it first if needed."""
    say = progress or (lambda _msg: None)
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise BuildError(f"{BINARY_ENV}={override} is not an executable file")
        return path
    src = source_dir()
    return ensure_go_binary(
        src,
        "controlplane",
        ldflags=ldflags(src),
        progress=say,
        intro=[
            f"building the local control planes (kube-apiserver + etcd) from {src}",
            "this happens once per machine and takes several minutes on 2 cores; later runs use the cache",
        ],
    )


def ensure_go_binary(
    src: Path,
    name: str,
    *,
    ldflags: str = "-s -w",
    progress: Progress | None = None,
    intro: list[str] | None = None,
) -> Path:
    """Build the Go module in `src` into the cache (keyed by its sources), unless already there."""
    say = progress or (lambda _msg: None)
    root = cache_root() / name
    target = root / source_hash(src, ldflags) / name
    if target.is_file():
        return target
    with build_lock(root):
        if target.is_file():  # another process built it while we waited
            return target
        _build(src, target, say, ldflags=ldflags, intro=intro or [f"building {name} from {src}"])
    return target


def _build(src: Path, target: Path, say: Progress, *, ldflags: str, intro: list[str]) -> None:
    go = find_go()
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
    started = time.monotonic()
    for line in intro:
        say(line)

    say("downloading Go modules")
    dl = subprocess.run([go, "mod", "download"], cwd=src, env=env, capture_output=True, text=True)
    if dl.returncode != 0:
        raise BuildError(
            f"`go mod download` failed in {src}:\n{_tail(dl.stderr)}",
            hint="check that the Go module proxy is reachable (GOPROXY)",
        )
    listed = subprocess.run(
        [go, "list", "-deps", "-f", "{{.ImportPath}}", "."],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
    )
    total = (
        len([line for line in listed.stdout.splitlines() if line.strip()]) if listed.returncode == 0 else 0
    )

    tmp = target.with_name(f".controlplane.{os.getpid()}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    # -v prints each package as it is compiled: that is our progress counter.
    proc = subprocess.Popen(
        [go, "build", "-v", "-trimpath", f"-ldflags={ldflags}", "-o", str(tmp), "."],
        cwd=src,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    compiled = 0
    last_report = 0.0
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.strip() and not line.startswith(("#", " ", "\t")):
            compiled += 1
        now = time.monotonic()
        if now - last_report >= 15:
            last_report = now
            of = f"/{total}" if total else ""
            say(f"  compiled {compiled}{of} packages ({now - started:.0f}s)")
    rc = proc.wait()
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise BuildError(f"building {target.name} failed (go build exit {rc}):\n{_tail(chr(10).join(lines))}")
    tmp.replace(target)
    say(f"built {target} in {time.monotonic() - started:.0f}s")


def _tail(text: str, n: int = 30) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-n:])
