// The status page: draws the fleet from the read-only API without reloading — again whenever the
// watch stream says something it shows changed (live.js), or every 5 seconds while the stream is
// down (refused, dropped, or no store behind the API).
//
// Two views, chosen by the URL's hash:
//   #/?kind=&namespace=&health=      the matrix: resources (rows) x clusters (columns)
//   #/resources/GROUP/KIND/NS/NAME   one resource: a row per cluster, and its recent events
// Data is put into the page with textContent only (never as HTML), so names cannot inject markup.
// With a token configured on the controller, the page takes it from ?token= or asks for it,
// keeps it in sessionStorage (this tab only) and sends it as a bearer header.
"use strict";

(function () {
  const API = "/api/v1";
  const REFRESH_MS = 5000;
  // While the stream is up: a refresh this long after the first change of a burst (the rest of
  // the burst comes with it), and a safety refresh this often.
  const COALESCE_MS = 500;
  const LIVE_REFRESH_MS = 60000;
  const { lineSplitter, watchQuery, classify, backoff } = window.FederationLive;
  const TOKEN_KEY = "federation-api-token";
  const SYMBOL = {
    healthy: "✓", progressing: "↻", degraded: "✗", unknown: "?", pending: "…",
    conflict: "conflict", failed: "failed", deleting: "deleting", orphaning: "orphaning",
    orphaned: "orphaned",
  };

  let timer = null;
  let generation = 0; // a render started for an older hash is dropped when it completes
  let live = null; // the watch stream of the current view: { key, abort, up, failures }

  // -- small helpers ------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function ago(iso) {
    if (!iso) return "—";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + "s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h ago";
    return Math.floor(seconds / 86400) + "d ago";
  }

  function time(iso) {
    return el("time", { datetime: iso || null, title: iso || null, text: ago(iso) });
  }

  function objectLabel(r) {
    const kind = r.api_group ? r.kind + "." + r.api_group : r.kind;
    return { kind, name: r.namespace ? r.namespace + "/" + r.name : r.name };
  }

  function detailHash(r) {
    // The API path is /api/v1/resources/GROUP/KIND/NS/NAME; the page's route mirrors it.
    return "#" + r.path.slice(API.length);
  }

  function healthBadge(health) {
    const h = (health || "none").toLowerCase();
    return el("span", { class: "badge h-" + h, text: health || "no clusters" });
  }

  function replicaText(ready, desired) {
    if (desired === null || desired === undefined) return null;
    return (ready || 0) + "/" + desired;
  }

  // -- the API -----------------------------------------------------------------------------

  function takeTokenFromUrl() {
    const params = new URLSearchParams(location.search);
    if (!params.has("token")) return;
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }

  class Unauthorized extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(API + path, { headers, cache: "no-store" });
    if (response.status === 401) throw new Unauthorized((await response.json()).error);
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return response.json();
  }

  // -- live updates ------------------------------------------------------------------------

  function follow(current) {
    const key = watchQuery(current);
    if (live && live.key === key) return;
    if (live) live.abort.abort();
    live = { key, abort: new AbortController(), up: false, failures: 0 };
    stream(live);
  }

  async function stream(state) {
    while (live === state) {
      try {
        const headers = { Accept: "application/x-ndjson" };
        const token = sessionStorage.getItem(TOKEN_KEY);
        if (token) headers.Authorization = "Bearer " + token;
        const response = await fetch(API + "/watch?" + state.key, { headers, signal: state.abort.signal });
        if (!response.ok) throw new Error("watch: " + response.status);
        state.up = true;
        state.failures = 0;
        showLive(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        const split = lineSplitter();
        let ended = false;
        while (!ended) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const line of split(value)) {
            const meaning = classify(line);
            if (meaning === "change") soon();
            if (meaning === "end") ended = true;
          }
        }
        reader.cancel().catch(() => {});
      } catch (err) {
        if (state.abort.signal.aborted) return;
        state.failures += 1;
      }
      state.up = false;
      showLive(false);
      soon(); // what changed while the stream was down
      await new Promise((resolve) => setTimeout(resolve, backoff(state.failures) * 1000));
    }
  }

  let soonPending = false;

  function soon() {
    if (soonPending) return;
    soonPending = true;
    clearTimeout(timer);
    timer = setTimeout(() => { soonPending = false; refresh(); }, COALESCE_MS);
  }

  function showLive(up) {
    document.getElementById("mode").textContent = up ? "live" : "refreshes every 5 s";
    document.body.dataset.live = up ? "up" : "down";
  }

  function showBanner(message) {
    const banner = document.getElementById("banner");
    banner.textContent = message;
    banner.hidden = !message;
  }

  function showLogin(message) {
    const form = document.getElementById("login");
    form.hidden = false;
    showBanner(message);
    document.getElementById("token").focus();
  }

  // -- routing -----------------------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    if (path.startsWith("/resources/")) {
      const parts = path.slice("/resources/".length).split("/");
      if (parts.length === 4) return { view: "detail", parts };
    }
    return { view: "matrix", query: new URLSearchParams(query || "") };
  }

  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    const current = route();
    try {
      const view = current.view === "detail"
        ? await renderDetail(current.parts)
        : await renderMatrix(current.query);
      if (mine !== generation) return;
      const main = document.getElementById("view");
      // Keep the focused filter input alive across refreshes: only swap the data part.
      const slot = main.querySelector("[data-slot=data]");
      if (slot && view.dataset.view === main.dataset.view && view.dataset.key === main.dataset.key) {
        slot.replaceWith(view.querySelector("[data-slot=data]"));
      } else {
        main.replaceChildren(...view.childNodes);
        main.dataset.view = view.dataset.view;
        main.dataset.key = view.dataset.key;
      }
      document.getElementById("login").hidden = true;
      showBanner("");
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.state = "ready";
    } catch (err) {
      if (mine !== generation) return;
      if (err instanceof Unauthorized) {
        showLogin(err.message);
        document.body.dataset.state = "unauthorized";
        return; // no polling until a token is given
      }
      showBanner("Cannot load the fleet: " + err.message + " (retrying)");
      document.body.dataset.state = "error";
    }
    follow(current);
    timer = setTimeout(refresh, live && live.up ? LIVE_REFRESH_MS : REFRESH_MS);
  }

  // -- the matrix --------------------------------------------------------------------------

  function filterBar(query) {
    const form = el("form", { class: "filters", "data-role": "filters" });
    const field = (name, label, placeholder) =>
      el("label", {}, label + " ", el("input", {
        name, placeholder, value: query.get(name) || "", size: 14, autocomplete: "off",
      }));
    const health = el("select", { name: "health" },
      ["", "Degraded", "Unknown", "Progressing", "Healthy", "Degraded,Unknown,Progressing"].map((v) =>
        el("option", { value: v, selected: (query.get("health") || "") === v },
          v === "" ? "any" : v === "Degraded,Unknown,Progressing" ? "not healthy" : v)));
    form.append(
      field("kind", "kind", "Deployment"),
      field("namespace", "namespace", "_ = cluster-scoped"),
      el("label", {}, "worst health ", health),
      el("button", { type: "submit" }, "filter"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      for (const [key, value] of new FormData(form)) if (value) params.set(key, value);
      location.hash = "#/" + (params.toString() ? "?" + params : "");
    });
    health.addEventListener("change", () => form.requestSubmit());
    return form;
  }

  async function renderMatrix(query) {
    const params = new URLSearchParams();
    for (const key of ["kind", "namespace", "health", "group"]) if (query.get(key)) params.set(key, query.get(key));
    params.set("limit", query.get("limit") || "50");
    const matrix = await api("/matrix?" + params);

    const ready = matrix.clusters.filter((c) => c.ready && c.registered).length;
    const registered = matrix.clusters.filter((c) => c.registered).length;
    const counts = {};
    for (const row of matrix.resources) for (const cell of Object.values(row.cells)) counts[cell.phase] = (counts[cell.phase] || 0) + 1;
    const problems = (counts.conflict || 0) + (counts.failed || 0) + (counts.degraded || 0);
    document.getElementById("summary").replaceChildren(
      el("span", { class: "stat" }, el("b", { text: matrix.total }), " resources"),
      el("span", { class: "stat" }, el("b", { text: ready + "/" + registered }), " clusters ready"),
      el("span", { class: "stat" + (problems ? " bad" : "") }, el("b", { text: problems }), " cells need attention"),
    );

    const head = el("tr", {},
      el("th", { class: "corner", scope: "col" }, "resource ", el("span", { class: "muted", text: "(worst health)" })),
      matrix.clusters.map((c) => el("th", {
        class: "cluster " + (c.ready ? "ready" : "notready") + (c.registered ? "" : " unregistered"),
        scope: "col", "data-cluster": c.name,
        title: c.name + ": " + (c.ready ? "Ready" : "NotReady") + (c.ready_reason ? " — " + c.ready_reason : "")
          + (c.owner ? " (replica " + c.owner + ")" : ""),
      }, el("span", { class: "dot" }), c.name)));

    const rows = matrix.resources.map((r) => {
      const label = objectLabel(r);
      const key = (r.api_group || "core") + "/" + r.kind + "/" + (r.namespace || "_") + "/" + r.name;
      return el("tr", { "data-resource": key },
        el("th", { scope: "row", class: "res" },
          el("a", { href: detailHash(r), title: "per-cluster detail of " + label.kind + " " + label.name },
            el("span", { class: "kind", text: label.kind }), " ", el("span", { class: "name", text: label.name })),
          " ", healthBadge(r.worst_health),
          r.unschedulable ? el("span", { class: "note", title: r.unschedulable, text: "unschedulable" }) : null,
          r.deleted_at ? el("span", { class: "note", text: "deleting" }) : null),
        matrix.clusters.map((c) => {
          const cell = r.cells[c.name];
          if (!cell) return el("td", { class: "cell p-absent", "data-cluster": c.name, "data-phase": "absent", title: c.name + ": not placed here" }, "·");
          const text = cell.state === "applied" ? (replicaText(cell.replicas_ready, cell.replicas_desired) || SYMBOL[cell.phase]) : SYMBOL[cell.phase];
          return el("td", {
            class: "cell p-" + cell.phase, "data-cluster": c.name, "data-phase": cell.phase,
            title: c.name + ": " + cell.reason,
          }, el("a", { href: detailHash(r), tabindex: -1, text }));
        }));
    });

    const table = matrix.resources.length
      ? el("table", { class: "matrix", id: "matrix" }, el("thead", {}, head), el("tbody", {}, rows))
      : el("p", { class: "empty", text: matrix.total ? "" : "No resources match. Templates appear here once a policy selects them." });
    const more = matrix.total > matrix.resources.length
      ? el("p", { class: "muted", text: "Showing the " + matrix.resources.length + " of " + matrix.total + " resources that need attention first; narrow with the filters." })
      : null;

    const key = "matrix?" + params;
    const wrapper = el("div", { "data-view": "matrix", "data-key": key },
      filterBar(query), el("div", { "data-slot": "data", class: "scroll" }, table, more));
    wrapper.dataset.view = "matrix";
    wrapper.dataset.key = key;
    return wrapper;
  }

  // -- one resource --------------------------------------------------------------------------

  async function renderDetail(parts) {
    const path = "/resources/" + parts.join("/");
    const detail = await api(path + "/clusters");
    const r = detail.resource;
    const label = objectLabel(r);
    const events = await api("/events?" + new URLSearchParams({
      kind: r.kind, namespace: r.namespace || "_", name: r.name, limit: "20",
    }));

    document.getElementById("summary").replaceChildren(
      el("span", { class: "stat" }, el("b", { text: r.clusters_applied + "/" + r.clusters_desired }), " clusters applied"),
      el("span", { class: "stat" }, el("b", { text: r.clusters_healthy }), " healthy"),
    );

    const facts = el("dl", { class: "facts" },
      el("dt", {}, "API version"), el("dd", { text: r.api_version }),
      el("dt", {}, "worst health"), el("dd", {}, healthBadge(r.worst_health)),
      el("dt", {}, "replicas ready"), el("dd", { text: replicaText(r.replicas_ready, r.replicas_desired) || "—" }),
      el("dt", {}, "conflicts / failures"), el("dd", { text: r.clusters_conflicted + " / " + r.clusters_failed }),
      el("dt", {}, "placement revision"), el("dd", { text: r.placement_revision === null ? "never placed" : r.placement_revision }),
      r.unschedulable ? [el("dt", {}, "unschedulable"), el("dd", { text: r.unschedulable })] : null,
      r.deleted_at ? [el("dt", {}, "deleted on the hub"), el("dd", {}, time(r.deleted_at))] : null,
      el("dt", {}, "last change"), el("dd", {}, time(r.last_change)),
    );

    const rows = detail.items.map((w) => el("tr", { "data-cluster": w.cluster },
      el("th", { scope: "row", text: w.cluster }),
      el("td", { class: "cell p-" + w.phase, "data-phase": w.phase, title: w.reason, text: w.phase }),
      el("td", { text: w.state }),
      el("td", { text: w.health }),
      el("td", { text: replicaText(w.replicas_ready, w.replicas_desired) || "—", title: w.replicas_desired === null ? null : "available " + w.replicas_available + ", updated " + w.replicas_updated }),
      el("td", { text: w.in_sync ? "yes" : "no" }),
      el("td", { text: w.attempts }),
      el("td", { class: "reason", text: w.reason }),
      el("td", {}, time(w.applied_at)),
      el("td", {}, time(w.status_collected_at)),
      el("td", {}, time(w.updated_at)),
    ));
    const table = detail.items.length
      ? el("table", { class: "works", id: "works" },
        el("thead", {}, el("tr", {}, ["cluster", "phase", "state", "health", "ready", "in sync", "attempts", "reason / last error", "applied", "status seen", "updated"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, rows))
      : el("p", { class: "empty", text: "Not placed on any cluster." + (r.unschedulable ? " " + r.unschedulable : "") });

    const eventRows = events.items.map((e) => el("tr", {},
      el("td", {}, time(e.time)),
      el("td", { class: "etype t-" + e.type.toLowerCase(), text: e.type }),
      el("td", { text: e.cluster || "—" }),
      el("td", { class: "reason", text: e.message })));
    const eventTable = events.items.length
      ? el("table", { class: "events" }, el("thead", {}, el("tr", {}, ["when", "type", "cluster", "message"].map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, eventRows))
      : el("p", { class: "muted", text: "No events recorded." });

    const key = "detail:" + path;
    const wrapper = el("div", {},
      el("div", { "data-slot": "data" },
        el("p", {}, el("a", { href: "#/", text: "← fleet matrix" })),
        el("h2", {}, el("span", { class: "kind", text: label.kind }), " ", el("span", { class: "name", text: label.name })),
        facts,
        el("h3", { text: "Per cluster" }), el("div", { class: "scroll" }, table),
        el("h3", { text: "Recent events" }), eventTable));
    wrapper.dataset.view = "detail";
    wrapper.dataset.key = key;
    return wrapper;
  }

  // -- start ---------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    takeTokenFromUrl();
    document.getElementById("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
      document.getElementById("token").value = "";
      refresh();
    });
    window.addEventListener("hashchange", refresh);
    refresh();
  });
})();
