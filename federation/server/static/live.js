// The status page's live updates: the pure parts, loaded by the page before app.js (and by
// tests/unit/test_status_page_live.py under node).
//
// The page follows GET /api/v1/watch (JSON lines) instead of refreshing on a timer: a change in
// what it shows triggers one refresh, coalesced with the changes that follow it closely. fetch,
// not EventSource: EventSource cannot send the bearer token the API may need.
"use strict";

(function (root) {
  // A splitter of a stream's text chunks into whole lines: a line may arrive in pieces.
  function lineSplitter() {
    let rest = "";
    return function (chunk) {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop();
      return lines.filter((line) => line.trim() !== "");
    };
  }

  // The watch query for what a view shows: the matrix's kind and namespace filters, or the one
  // resource's kind and namespace (the watch has no name filter; a sibling's change costs a
  // refresh of the detail, nothing more).
  function watchQuery(current) {
    const query = new URLSearchParams();
    if (current.view === "detail") {
      const [, kind, namespace] = current.parts;
      query.set("kind", decodeURIComponent(kind));
      if (namespace && namespace !== "_") query.set("namespace", decodeURIComponent(namespace));
    } else {
      for (const name of ["kind", "namespace"]) {
        const value = current.query.get(name);
        if (value) query.set(name, value);
      }
    }
    return query.toString();
  }

  // What a stream's line means for the page: "change" (refresh soon), "ignore" (a heartbeat),
  // or "end" (Dropped, End: the server closes; reconnect).
  function classify(line) {
    const item = JSON.parse(line);
    if (item.type === "Heartbeat") return "ignore";
    if (item.type === "Dropped" || item.type === "End") return "end";
    return "change";
  }

  // Seconds before reconnecting after the n-th failure in a row: 1, 2, 4 … at most 60.
  function backoff(failures) {
    return Math.min(60, 2 ** Math.max(0, failures - 1));
  }

  const live = { lineSplitter, watchQuery, classify, backoff };
  root.FederationLive = live;
  if (typeof module !== "undefined") module.exports = live;
})(typeof window !== "undefined" ? window : globalThis);
