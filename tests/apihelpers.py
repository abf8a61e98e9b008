"""Clients of the dashboard API for tests: schemathesis from the document, headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import anyio

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"


async def run_schemathesis(
    base_url: str, *, headers: dict[str, str] | None = None, max_examples: int = 25, seed: int = 7
) -> tuple[int, str]:
    """Run schemathesis (every check, positive and negative data) against the live API from its
    OpenAPI document; returns (exit code, output). Bounded: `max_examples` per operation."""
    args = [
        SCHEMATHESIS,
        "run",
        f"{base_url}/api/v1/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        # Not "stateful": a read-only API has no state to walk through. No --max-time either:
        # it makes fuzzing repeat until the budget is spent; --max-examples is the bound.
        "--phases",
        "examples,coverage,fuzzing",
        # The watch route answers with a stream that ends only when the client goes: schemathesis
        # waits for a whole response (a network error after its timeout, per example). Its
        # parameters are tested by tests/integration/test_watch.py.
        "--exclude-path",
        "/api/v1/watch",
        "--no-color",
    ]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as tmp:
        # Its reports and hypothesis database go to a temporary directory, not the checkout.
        with anyio.fail_after(600):
            result = await anyio.run_process(
                args, check=False, cwd=tmp, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
            )
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")


def chromium() -> str:
    """Debian's chromium; a failure (not a skip) saying how to get it when it is missing."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        raise AssertionError(
            "the status page test needs Debian's chromium: run 'apt-get install chromium' "
            "(make test does it when running as root: the 'browser' target)"
        )
    return path


def _chromium_args(profile: str) -> list[str]:
    return [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]


def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran (and fetched the API) in headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run(
            [*_chromium_args(profile), "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
    if proc.returncode != 0:
        raise AssertionError(f"chromium --dump-dom failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(url: str, name: str, *, size: tuple[int, int] = (1280, 800)) -> Path:
    """A PNG of the page under artifacts/ (gitignored); returns its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run(
            [*_chromium_args(profile), f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if proc.returncode != 0 or not path.exists():
        raise AssertionError(f"chromium --screenshot failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return path


@dataclass
class Node:
    """An element of a parsed page (enough of a DOM to assert on what Chromium rendered)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(self.text_parts) + "".join(c.text for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, **attrs: str | bool) -> list[Node]:
        """Elements by tag and attributes (True: the attribute is present)."""
        return [
            n
            for n in self.iter()
            if n.tag == tag
            and all(
                (k.replace("_", "-") in n.attrs) if v is True else n.attrs.get(k.replace("_", "-")) == v
                for k, v in attrs.items()
            )
        ]

    def find(self, tag: str, **attrs: str | bool) -> Node | None:
        found = self.find_all(tag, **attrs)
        return found[0] if found else None


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text_parts.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root
