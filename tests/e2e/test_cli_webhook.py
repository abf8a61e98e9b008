"""`federation webhook` and the TLS flags of `federation run`, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

FEDERATION = str(Path(sys.executable).parent / "federation")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_")}
    environment.update(env or {})
    return subprocess.run([FEDERATION, *args], capture_output=True, text=True, timeout=60, env=environment)


def test_help_explains_each_command_with_an_example() -> None:
    for args, words in (
        (("webhook", "--help"), ("certs", "config", "HTTPS")),
        (("webhook", "certs", "--help"), ("--dir", "--dns", "caBundle", "Example")),
        (("webhook", "config", "--help"), ("--ca-cert", "--url", "--service", "Ignore", "Example")),
        (("run", "--help"), ("--tls-cert", "--tls-key", "--webhook / --no-webhook")),
    ):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        for word in words:
            assert word in result.stdout, (args, word)


def test_certs_then_config(tmp_path: Path) -> None:
    made = run("webhook", "certs", "--dir", str(tmp_path / "certs"), "--dns", "federation.fed.svc")
    assert made.returncode == 0, made.stderr
    assert {p.name for p in (tmp_path / "certs").iterdir()} == {"ca.crt", "tls.crt", "tls.key"}
    config = run(
        "webhook", "config", "--ca-cert", str(tmp_path / "certs/ca.crt"), "--service", "fed/federation"
    )
    assert config.returncode == 0, config.stderr
    [hook] = yaml.safe_load(config.stdout)["webhooks"]
    assert hook["clientConfig"]["service"] == {
        "namespace": "fed",
        "name": "federation",
        "path": "/validate",
        "port": 443,
    }
    assert hook["failurePolicy"] == "Ignore"


def test_bad_tls_flags_are_one_line_and_exit_1(tmp_path: Path) -> None:
    run("webhook", "certs", "--dir", str(tmp_path), "--dns", "127.0.0.1")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    for args, words in (
        (("--tls-cert", str(tmp_path / "tls.crt")), "--tls-cert and --tls-key go together"),
        (
            ("--tls-cert", str(tmp_path / "ca.crt"), "--tls-key", str(tmp_path / "tls.key")),
            "cannot load the key pair",
        ),
    ):
        result = run(
            "run",
            "--hub-kubeconfig",
            str(kubeconfig),
            "--database-url",
            "postgresql://x@127.0.0.1:1/x",
            *args,
        )
        assert result.returncode == 1, result.stderr
        assert words in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[0].startswith("error: ")
    usage = run("webhook", "certs", "--dir", str(tmp_path))
    assert usage.returncode == 2 and "--dns" in usage.stderr
