// jobfleet dashboard: live updates over SSE (the sign-in cookie authenticates; no token in URLs).
// The jobs table updates state badges of rows on the page and counts new jobs; the job page
// refreshes its panel on each event of its job, adds the event to the list and follows the log.
(function () {
  "use strict";
  const KEEP_LOG = 2 * 1024 * 1024; // characters of log kept in the page while following

  function badge(state, cancelling) {
    const span = document.createElement("span");
    span.className = "badge s-" + state.toLowerCase();
    span.dataset.state = state;
    span.textContent = state + (cancelling ? " · cancelling" : "");
    return span;
  }

  function stream(url, handlers) {
    const source = new EventSource(url);
    for (const [name, fn] of Object.entries(handlers)) {
      source.addEventListener(name, (e) => fn(JSON.parse(e.data), e));
    }
    return source;
  }

  const EVENT_TYPES = ["submitted", "waiting", "queued", "scheduled", "leased", "running",
    "succeeded", "failed", "cancel_requested", "cancelled", "preempted", "requeued", "reprioritized"];

  function jobsTable(table) {
    if (!table.dataset.live) return;
    const params = new URLSearchParams({ after: table.dataset.after });
    if (table.dataset.queue) params.set("queue", table.dataset.queue);
    let fresh = 0;
    const handlers = {};
    for (const type of EVENT_TYPES) {
      handlers[type] = (ev) => {
        const row = table.querySelector(`tr[data-job-id="${CSS.escape(ev.job_id)}"]`);
        if (row) {
          const cell = row.querySelector("td.state");
          cell.replaceChildren(badge(ev.state, type === "cancel_requested"));
          if (ev.worker) row.querySelector("td.worker").textContent = ev.worker;
        } else if (type === "submitted" && (!table.dataset.jobSet || ev.job_set === table.dataset.jobSet)) {
          fresh += 1;
          document.getElementById("new-count").textContent = String(fresh);
          document.getElementById("new-jobs").hidden = false;
        }
      };
    }
    stream("/ui/stream?" + params, handlers);
  }

  const SECONDS = new Set(["delay", "timeout", "duration", "grace", "backoff", "ttl"]);
  function detailValue(k, v) {  // as format.py's detail_value
    if (v === null || v === undefined) return "—";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v === "number") return SECONDS.has(k) ? human(v) : String(Math.round(v * 100) / 100);
    if (typeof v === "string") return v;
    if (Array.isArray(v)) return v.map((x) => detailValue(k, x)).join(", ");
    if (k === "failure" && v.condition) {
      const head = v.condition + (v.exit_code !== null && v.exit_code !== undefined ? ` (exit code ${v.exit_code})` : "");
      return v.message ? `${head}: ${v.message}` : head;
    }
    return Object.entries(v).map(([a, b]) => `${a} ${detailValue(a, b)}`).join(", ");
  }

  function eventRow(ev) {
    const tr = document.createElement("tr");
    const skip = new Set(["id", "type", "job_id", "run_id", "queue", "job_set", "time", "state", "attempt"]);
    const details = Object.entries(ev).filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k.replace(/_/g, " ")} ${detailValue(k, v)}`).join("  ");
    const cells = [ev.id, ev.type, ev.state, ev.run_id || "—", (ev.time || "").slice(11, 19), details];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = String(text);
      if (i === 0) td.className = "num";
      tr.appendChild(td);
    });
    return tr;
  }

  function jobPage(panel) {
    const id = panel.dataset.jobId;
    let pending = null;
    const refresh = () => {
      if (pending) return;
      pending = setTimeout(() => {
        pending = null;
        htmx.ajax("GET", `/ui/jobs/${encodeURIComponent(id)}/panel`, { target: "#panel", swap: "innerHTML" });
      }, 150);
    };
    const handlers = {};
    for (const type of EVENT_TYPES) {
      handlers[type] = (ev) => {
        document.getElementById("events-rows")?.prepend(eventRow(ev));
        refresh();
        if (["leased", "running", "requeued"].includes(type)) followLog(true);
      };
    }
    const params = new URLSearchParams({ job_id: id, after: panel.dataset.after || "0" });
    stream("/ui/stream?" + params, handlers);
  }

  let logSource = null;
  function followLog(restart) {
    const pre = document.getElementById("log");
    if (!pre || (!pre.dataset.follow && !restart)) return;
    if (logSource && !restart) return;
    if (logSource && restart && logSource.readyState !== EventSource.CLOSED) return;
    const params = new URLSearchParams({ stream: pre.dataset.stream, offset: pre.dataset.offset || "0" });
    if (pre.dataset.run) params.set("run", pre.dataset.run);
    const status = document.getElementById("log-status");
    logSource = stream(`/ui/jobs/${encodeURIComponent(pre.dataset.jobId)}/logs/stream?` + params, {
      run: (msg) => { pre.dataset.run = msg.run; },
      log: (msg) => {
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(msg.text);
        pre.dataset.offset = String(msg.offset);
        if (pre.textContent.length > KEEP_LOG) pre.textContent = pre.textContent.slice(-KEEP_LOG);
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      },
      end: (msg) => {
        logSource.close();
        if (status) status.textContent = "run ended (" + msg.state + ")";
      },
    });
    if (status) status.textContent = "following live";
  }


  // Overview charts (uPlot, vendored): the last hour per minute, re-read every 30 s.
  const PALETTE = ["--danger", "--warn", "--accent", "--ok", "--muted", "--fg"];
  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chartOpts(el, series, bars) {
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--line"), width: 1 },
      ticks: { stroke: cssVar("--line"), width: 1 } };
    const opts = {
      width: Math.max(240, el.clientWidth), height: 180,
      scales: { x: { time: true } },
      axes: [axis, Object.assign({ size: 44 }, axis)],
      legend: { live: true },
      series: [{}].concat(series.map((s) => ({
        label: s.label, stroke: cssVar(s.color), width: 2,
        fill: bars ? cssVar(s.color) + "99" : undefined,
        paths: bars && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 24], gap: 1 }) : undefined,
        points: { show: false },
      }))),
    };
    return opts;
  }

  function drawChart(slot, el, series, data, bars) {
    const key = series.map((s) => s.label).join("|");
    if (slot.plot && slot.key === key) { slot.plot.setData(data); return; }
    if (slot.plot) slot.plot.destroy();
    el.replaceChildren();
    slot.key = key;
    slot.plot = new uPlot(chartOpts(el, series, bars), data, el);
  }

  function perText(b) {
    if (b < 60) return `per ${Math.round(b)} seconds`;
    if (b === 60) return "per minute";
    return `per ${Math.round(b / 60)} minutes`;
  }

  function charts(box) {
    if (typeof uPlot === "undefined") return;
    const slots = { throughput: {}, failures: {}, waiting: {} };
    const els = {
      throughput: document.getElementById("chart-throughput"),
      failures: document.getElementById("chart-failures"),
      waiting: document.getElementById("chart-waiting"),
    };
    const pick = document.getElementById("chart-window");
    async function load() {
      const url = box.dataset.src + "?window=" + encodeURIComponent(pick ? pick.value : "1h");
      const res = await fetch(url, { credentials: "same-origin" });
      if (!res.ok) return;
      const d = await res.json();
      for (const el of box.querySelectorAll(".per")) el.textContent = perText(d.bucket);
      drawChart(slots.throughput, els.throughput,
        [{ label: "succeeded", color: "--ok" }, { label: "failed", color: "--danger" }],
        [d.t, d.succeeded, d.failed], true);
      const names = Object.keys(d.failures);
      const cats = names.length ? names : ["none"];
      drawChart(slots.failures, els.failures,
        cats.map((n, i) => ({ label: n, color: PALETTE[i % PALETTE.length] })),
        [d.t].concat(names.length ? names.map((n) => d.failures[n]) : [d.t.map(() => 0)]), false);
      drawChart(slots.waiting, els.waiting, [{ label: "waiting", color: "--accent" }],
        [d.t, d.waiting], false);
      box.dataset.loaded = "1";
    }
    load();
    setInterval(load, 30000);
    if (pick) pick.addEventListener("change", load);
    let resize = null;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        for (const [k, slot] of Object.entries(slots)) {
          if (slot.plot) slot.plot.setSize({ width: Math.max(240, els[k].clientWidth), height: 180 });
        }
      }, 150);
    });
  }


  // Durations as people write them (as format.py's `duration`), ticking once a second.
  function human(s) {
    s = Math.max(0, s);
    if (s < 1) return Math.round(s * 1000) + "ms";
    if (s < 10) return s.toFixed(1) + "s";
    if (s < 60) return Math.floor(s) + "s";
    const m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + "m " + String(sec).padStart(2, "0") + "s";
    const h = Math.floor(m / 60);
    if (h < 24) return h + "h " + String(m % 60).padStart(2, "0") + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function agoText(s) {
    if (s < 2) return "just now";
    for (const [u, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (s >= size) return Math.floor(s / size) + u + " ago";
    }
    return Math.floor(s) + "s ago";
  }
  function tick() {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = human(now - parseFloat(el.dataset.since));
    }
    for (const el of document.querySelectorAll("[data-ago]")) {
      el.textContent = agoText(now - parseFloat(el.dataset.ago));
    }
  }

  // The jobs table's columns: chosen in the "Columns" menu, remembered in this browser; a
  // phone starts with the few that fit.
  const COLUMNS_KEY = "jobfleet.columns";
  const PHONE = ["job", "state", "duration"];
  const DESKTOP_HIDDEN = ["priority", "resources"];
  function columns(menu) {
    const boxes = Array.from(menu.querySelectorAll("input[name=col]"));
    const all = boxes.map((b) => b.value);
    let shown;
    try { shown = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "null"); } catch (_) { shown = null; }
    if (!Array.isArray(shown)) {
      shown = window.matchMedia("(max-width: 760px)").matches
        ? PHONE : all.filter((c) => !DESKTOP_HIDDEN.includes(c));
    }
    let style = document.getElementById("col-style");
    if (!style) {
      style = document.createElement("style");
      style.id = "col-style";
      document.head.appendChild(style);
    }
    const apply = () => {
      const hidden = all.filter((c) => !shown.includes(c));
      style.textContent = hidden.map((c) => `#jobs-table [data-col="${c}"]{display:none}`).join("\n");
      for (const b of boxes) b.checked = shown.includes(b.value);
    };
    for (const b of boxes) {
      b.addEventListener("change", () => {
        shown = boxes.filter((x) => x.checked).map((x) => x.value);
        localStorage.setItem(COLUMNS_KEY, JSON.stringify(shown));
        apply();
      });
    }
    apply();
  }

  function start() {
    const table = document.getElementById("jobs-table");
    if (table) jobsTable(table);
    const panel = document.getElementById("panel");
    if (panel) jobPage(panel);
    followLog(false);
    const menu = document.getElementById("columns");
    if (menu) columns(menu);
    tick();
    setInterval(tick, 1000);
    const box = document.getElementById("charts");
    if (box) charts(box);
  }

  // A refused htmx request (403: a verb the principal lacks; 404; 422) says why at the top of
  // the page instead of silently doing nothing; the answer is problem+json with a `detail`.
  function showRefusal(e) {
    const xhr = e.detail.xhr;
    let detail = `${xhr.status} ${xhr.statusText}`;
    try {
      detail = JSON.parse(xhr.responseText).detail || detail;
    } catch (_) {
      /* not JSON: keep the status line */
    }
    let box = document.getElementById("ui-error");
    if (!box) {
      box = document.createElement("p");
      box.id = "ui-error";
      box.className = "notice error";
      box.setAttribute("role", "alert");
      const main = document.getElementById("main");
      main.insertBefore(box, main.firstChild);
    }
    box.textContent = detail;
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:responseError", showRefusal);
  // A new log view (stream or run switched) brings its own <pre>: follow it if it is live.
  document.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target && e.detail.target.id === "log-box") {
      if (logSource) logSource.close();
      logSource = null;
      followLog(false);
    }
  });
})();
