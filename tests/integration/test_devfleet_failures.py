"""The local fleet fails clearly: a taken port, an apiserver that never gets ready, a busy state directory."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from federation.devfleet import ControlPlaneBackend, LocalFleet, ensure_binary
from federation.errors import PortInUseError, StartupError, StateDirBusyError


def test_port_already_in_use_names_cluster_and_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        backend = ControlPlaneBackend(tmp_path / "cp", ports={"hub": port})
        with pytest.raises(PortInUseError) as info:
            backend.start(["hub"], progress=lambda _m: None)
        backend.stop()
    assert f"cluster hub: port {port} is already in use" in str(info.value)


def test_apiserver_not_ready_in_time_names_cluster_and_shows_its_log(tmp_path: Path) -> None:
    # No apiserver reports ready within one second: the deadline is what is under test.
    backend = ControlPlaneBackend(tmp_path / "cp", ready_timeout=1)
    with pytest.raises(StartupError) as info:
        backend.start(["slowpoke"], progress=lambda _m: None)
    backend.stop()
    message = str(info.value)
    assert "cluster slowpoke: apiserver not ready within 1s" in message
    assert "last lines of" in message and "slowpoke.log" in message
    # The tail of the apiserver's own log is really there (klog lines: I1125 13:19:24.35 ...).
    assert re.search(r"^\s+[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ ", message, re.MULTILINE), message


def test_second_fleet_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    first = LocalFleet(members=0, state_dir=tmp_path, postgres=False)
    first.start()
    try:
        with pytest.raises(StateDirBusyError) as info:
            LocalFleet(members=0, state_dir=tmp_path, postgres=False).start()
        assert str(tmp_path) in str(info.value)
        assert info.value.hint is not None and "federation dev down" in info.value.hint

        # The binary guards its own directory too, for anyone who runs it by hand.
        proc = subprocess.run(
            [
                str(ensure_binary()),
                "fleet",
                "--dir",
                str(tmp_path / "controlplane"),
                "--clusters",
                "hub",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1
        assert "already in use by a running fleet" in proc.stderr
    finally:
        first.stop()
    # Once stopped, the directory is free again and nothing was left behind.
    again = LocalFleet(members=0, state_dir=tmp_path, postgres=False)
    again.start()
    again.stop()
