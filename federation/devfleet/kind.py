"""A fleet backend on kind clusters, for machines with Docker.

Nothing in the test suite needs it (no container engine runs where our tests run); it is here
so that `LocalFleet(backend=KindBackend(...))` works for people who prefer real nodes, and so
the fleet API never assumes our own binary is the only way to get a cluster. The opt-in tests
marked ``kind`` use it when ``FEDERATION_KIND=1``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from federation.devfleet.backend import ClusterInfo, Progress, UnsupportedOperationError
from federation.errors import ToolchainMissingError


class KindBackend:
    """One kind cluster per fleet cluster, named ``<prefix>-<name>``."""

    name = "kind"

    def __init__(self, state_dir: Path, *, prefix: str = "federation", kind: str = "kind") -> None:
        self.state_dir = state_dir
        self.prefix = prefix
        self.kind = shutil.which(kind) or ""
        self._created: list[str] = []

    def _run(self, *args: str) -> str:
        if not self.kind:
            raise ToolchainMissingError(
                "kind is not installed",
                hint="install kind and Docker, or use the default controlplane backend",
            )
        return subprocess.run([self.kind, *args], check=True, capture_output=True, text=True).stdout

    def start(self, clusters: Sequence[str], *, progress: Progress) -> dict[str, ClusterInfo]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        out: dict[str, ClusterInfo] = {}
        for name in clusters:
            kind_name = f"{self.prefix}-{name}"
            kubeconfig = self.state_dir / f"{name}.yaml"
            progress(f"creating kind cluster {kind_name}")
            self._run(
                "create",
                "cluster",
                "--name",
                kind_name,
                "--kubeconfig",
                str(kubeconfig),
                "--wait",
                "120s",
            )
            self._created.append(kind_name)
            server = ""
            for line in kubeconfig.read_text().splitlines():
                if line.strip().startswith("server:"):
                    server = line.split("server:", 1)[1].strip()
            out[name] = ClusterInfo(
                name=name, server=server, kubeconfig=kubeconfig, context=f"kind-{kind_name}"
            )
        self._write_merged(out)
        return out

    def _write_merged(self, clusters: dict[str, ClusterInfo]) -> None:
        merged: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [],
            "users": [],
            "contexts": [],
        }
        for info in clusters.values():
            one = yaml.safe_load(info.kubeconfig.read_text())
            for key in ("clusters", "users", "contexts"):
                merged[key].extend(one.get(key) or [])
        merged["current-context"] = next(iter(clusters.values())).context if clusters else ""
        self.merged_kubeconfig().write_text(yaml.safe_dump(merged))

    def stop(self) -> None:
        for kind_name in self._created:
            subprocess.run([self.kind, "delete", "cluster", "--name", kind_name], capture_output=True)
        self._created.clear()

    def merged_kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def stop_cluster(self, name: str, *, kill: bool = False) -> None:
        raise UnsupportedOperationError(
            "the kind backend cannot stop one apiserver; use the controlplane backend"
        )

    def start_cluster(self, name: str) -> None:
        raise UnsupportedOperationError(
            "the kind backend cannot start one apiserver; use the controlplane backend"
        )

    def cluster_pid(self, name: str) -> int | None:
        raise UnsupportedOperationError("the kind backend has no apiserver process of its own")

    def compact(self) -> int:
        raise UnsupportedOperationError("the kind backend cannot compact etcd; use the controlplane backend")
