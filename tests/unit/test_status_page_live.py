"""The status page's live updates (federation/server/static/live.js), run under Node.js: lines
split across chunks come whole, each view follows the watch for what it shows, heartbeats are
ignored and a Dropped or End line ends the stream (the page reconnects with backoff)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

LIVE = Path(__file__).resolve().parents[2] / "federation" / "server" / "static" / "live.js"

SCRIPT = """
const live = require(process.argv[1]);
const split = live.lineSplitter();
const lines = [...split('{"type":"Heartbeat"}\\n{"type":"CopyAp'), ...split('plied"}\\n\\n'),
               ...split('{"a"')];
const matrix = { view: "matrix",
                 query: new URLSearchParams("kind=Deployment&namespace=shop&health=Degraded") };
const detail = { view: "detail", parts: ["apps", "Deployment", "shop", "web"] };
const cluster = { view: "detail", parts: ["rbac.authorization.k8s.io", "ClusterRole", "_", "view"] };
console.log(JSON.stringify({
  lines,
  meanings: lines.map(live.classify).concat([live.classify('{"type":"Dropped","position":7}'),
                                             live.classify('{"type":"End"}')]),
  queries: [live.watchQuery(matrix), live.watchQuery(detail), live.watchQuery(cluster),
            live.watchQuery({ view: "matrix", query: new URLSearchParams("") })],
  backoff: [1, 2, 3, 7, 30].map(live.backoff),
}));
"""


def test_the_live_page_parts() -> None:
    node = shutil.which("node")
    assert node, "the status page's script is tested with Node.js: apt-get install nodejs"
    out = subprocess.run([node, "-e", SCRIPT, str(LIVE)], check=True, capture_output=True, text=True)
    got = json.loads(out.stdout)
    assert got["lines"] == ['{"type":"Heartbeat"}', '{"type":"CopyApplied"}']  # the third is unfinished
    assert got["meanings"] == ["ignore", "change", "end", "end"]
    assert got["queries"] == [
        "kind=Deployment&namespace=shop",  # the health filter is the page's, not the stream's
        "kind=Deployment&namespace=shop",
        "kind=ClusterRole",
        "",
    ]
    assert got["backoff"] == [1, 2, 4, 60, 60]
