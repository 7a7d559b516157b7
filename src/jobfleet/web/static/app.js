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
          if (ev.worker) row.querySelector("td.hide-sm").textContent = ev.worker;
        } else if (type === "submitted" && (!table.dataset.jobSet || ev.job_set === table.dataset.jobSet)) {
          fresh += 1;
          document.getElementById("new-count").textContent = String(fresh);
          document.getElementById("new-jobs").hidden = false;
        }
      };
    }
    stream("/ui/stream?" + params, handlers);
  }

  function eventRow(ev) {
    const tr = document.createElement("tr");
    const skip = new Set(["id", "type", "job_id", "run_id", "queue", "job_set", "time", "state", "attempt"]);
    const details = Object.entries(ev).filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k} ${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ");
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

  function start() {
    const table = document.getElementById("jobs-table");
    if (table) jobsTable(table);
    const panel = document.getElementById("panel");
    if (panel) jobPage(panel);
    followLog(false);
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
