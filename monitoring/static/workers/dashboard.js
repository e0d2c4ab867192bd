/* The worker dashboard (/admin/workers/): renders the JSON the page embeds, then fetches it again
 * from the data URL every few seconds and renders it the same way, without reloading the page.
 *
 * Every piece of data goes into the page through textContent or a checked attribute, never as HTML.
 * Plain browser JavaScript, no build step and nothing loaded from elsewhere.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("wd-config").textContent);
  var REFRESH_MS = (config.refreshSeconds || 10) * 1000;
  var FETCH_TIMEOUT_MS = 8000;
  var MAX_MESSAGES = 5;
  var STATUSES = ["healthy", "degraded", "unhealthy", "paused"];
  var WORKER_STATES = ["live", "not consuming", "stopped", "gone"];

  var lastData = null;
  var lastSuccessAt = null; // browser clock, for "n s ago"
  var refreshTimer = null;
  var refreshing = false;
  var refreshAgain = false; // asked for while a refresh was under way
  var requeueing = {}; // dead-letter entry id -> true while its request runs
  var requeued = {}; // entry id -> the API's answer, until a refresh no longer lists the entry

  // ---------------------------------------------------------------- small helpers

  /* el("td", {className: "num", title: "x", data: {field: "waiting"}}, "text", node, ...) */
  function el(tag, props) {
    var node = document.createElement(tag);
    var key;
    props = props || {};
    for (key in props) {
      if (!Object.prototype.hasOwnProperty.call(props, key)) continue;
      if (key === "data") {
        for (var d in props.data) node.dataset[d] = props.data[d];
      } else if (key === "className") {
        node.className = props[key];
      } else if (key === "text") {
        node.textContent = props[key];
      } else {
        node.setAttribute(key, props[key]);
      }
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(parent, c); });
    } else if (typeof child === "object" && child.nodeType) {
      parent.appendChild(child);
    } else {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }

  function replaceChildren(parent, children) {
    while (parent.firstChild) parent.removeChild(parent.firstChild);
    append(parent, children);
  }

  function safeHref(url) {
    // Only http(s) links and paths on this site: never javascript: or data: URLs.
    if (typeof url !== "string") return null;
    if (/^https?:\/\//i.test(url) || (url.charAt(0) === "/" && url.charAt(1) !== "/")) return url;
    return null;
  }

  function link(url, text, extra) {
    var href = safeHref(url);
    if (!href) return document.createTextNode(text);
    var props = Object.assign({href: href, text: text}, extra || {});
    return el("a", props);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* "12:00:03" when on the same UTC day as `reference`, else "2025-12-11 12:00". */
  function formatTime(iso, reference) {
    if (!iso) return "never";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    var clock = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    var ref = reference ? new Date(reference) : null;
    if (ref && !isNaN(ref.getTime()) && ref.toISOString().slice(0, 10) === day) {
      return clock + ":" + pad(d.getUTCSeconds());
    }
    return day + " " + clock;
  }

  function timeCell(iso, reference) {
    return el("td", {className: "time", title: iso || ""}, formatTime(iso, reference));
  }

  function formatAge(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function formatBytes(bytes) {
    if (!bytes) return "–"; // 0: the worker has not measured itself yet
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return (unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1)) + " " + units[unit];
  }

  function formatCount(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : "–";
  }

  function formatRate(percent) {
    return typeof percent === "number" ? percent.toFixed(2) + " %" : "–";
  }

  function badge(value, known, extraClass) {
    var cls = known.indexOf(value) >= 0 ? value.replace(/ /g, "-") : "unknown";
    return el("span", {className: "wd-badge wd-" + cls + (extraClass ? " " + extraClass : ""), text: value || "unknown"});
  }

  function num(field, value, formatted, extraClass) {
    return el("td", {className: "num" + (extraClass ? " " + extraClass : ""), data: {field: field, value: String(value)}},
      formatted === undefined ? formatCount(value) : formatted);
  }

  // ---------------------------------------------------------------- rendering

  function render(data) {
    lastData = data;
    var health = data.health || {};
    renderOverview(data, health);
    renderQueues(health, data.generatedAt);
    renderWorkers(data.workers || [], data.generatedAt);
    renderDeadLetters(data.deadLetters || [], data.deadLetterUnresolved || 0, data.generatedAt);
    renderDeliveryRuns(data.deliveryRuns, data.generatedAt);
    document.getElementById("content-main").dataset.generatedAt = data.generatedAt || "";
  }

  function renderOverview(data, health) {
    var overall = document.getElementById("wd-overall");
    var status = health.overall || "unknown";
    overall.className = "wd-badge wd-badge-lg wd-" + (STATUSES.indexOf(status) >= 0 ? status : "unknown");
    overall.textContent = status;
    overall.dataset.status = status;
    // The whole system's reasons (no live dispatcher leader), beside each queue's own.
    var overallReasons = health.reasons || [];
    var reasonsList = document.getElementById("wd-overall-reasons");
    replaceChildren(reasonsList, overallReasons.map(function (r) { return el("li", {text: r}); }));
    reasonsList.hidden = !overallReasons.length;

    var summary = health.summary || {};
    var queues = health.workers || [];
    var counts = {};
    queues.forEach(function (q) { counts[q.status] = (counts[q.status] || 0) + 1; });
    var dispatcher = health.dispatcher || {};
    // Worker rows only: the dispatcher leader's heartbeat row is shown apart ("Dispatcher leader").
    var workerRows = (data.workers || []).filter(function (w) { return w.pool !== "dispatcher"; });
    var liveWorkers = workerRows.filter(function (w) { return w.live; }).length;
    var byStatus = counts.healthy === queues.length ? "all " + queues.length + " healthy" :
      STATUSES.filter(function (s) { return counts[s]; }).map(function (s) { return counts[s] + " " + s; }).join(", ");
    var totals = [
      ["Queues", byStatus, "queues"],
      ["Waiting", formatCount(summary.totalWaiting), "totalWaiting"],
      ["Active", formatCount(summary.totalActive), "totalActive"],
      ["Completed", formatCount(summary.totalCompleted), "totalCompleted"],
      ["Failed", formatCount(summary.totalFailed), "totalFailed"],
      ["Rejected input", formatCount(summary.totalRejected), "totalRejected"],
      ["Live workers", liveWorkers + " of " + workerRows.length, "liveWorkers"],
      ["Dispatcher leader", dispatcher.live ? dispatcher.leader : "none live", "dispatcherLeader"],
      ["Dead letters", formatCount(data.deadLetterUnresolved) + " unresolved", "deadLetterUnresolved"],
    ];
    replaceChildren(document.getElementById("wd-totals"), totals.map(function (t) {
      return el("div", {className: "wd-total", data: {field: t[2]}}, el("dt", {text: t[0]}), el("dd", {text: t[1]}));
    }));

    var flower = document.getElementById("wd-flower");
    var href = safeHref(data.flowerUrl);
    if (href) {
      flower.setAttribute("href", href);
      flower.title = href;
      flower.hidden = false;
    } else {
      flower.hidden = true;
    }
    updateClock();
  }

  function updateClock() {
    var updated = document.getElementById("wd-updated");
    if (!lastData) return;
    var ago = lastSuccessAt ? " (" + formatAge((Date.now() - lastSuccessAt) / 1000) + " ago)" : "";
    updated.textContent = "Updated " + formatTime(lastData.generatedAt, lastData.generatedAt) + " UTC" + ago;
    updated.title = lastData.generatedAt || "";
  }

  function renderQueues(health, now) {
    var queues = health.workers || [];
    var first = queues[0];
    if (first && first.recent) {
      var win = first.recent.windowMinutes;
      document.getElementById("wd-recent-errors-head").textContent = "Errors (" + win + " min)";
      document.getElementById("wd-recent-rate-head").textContent = "Failure rate (" + win + " min)";
    }
    var rows = queues.map(function (q) {
      var recent = q.recent || {};
      var reasons = (q.reasons || []).slice();
      if (q.paused && q.pausedReason && !reasons.some(function (r) { return r.indexOf(q.pausedReason) >= 0; })) {
        reasons.unshift("paused: " + q.pausedReason);
      }
      var why = reasons.length
        ? el("ul", {className: "wd-reasons"}, reasons.map(function (r) { return el("li", {text: r}); }))
        : el("span", {className: "wd-quiet", text: q.status === "healthy" ? "all rules pass" : ""});
      return el("tr", {className: "wd-row-" + q.status, data: {queue: q.name, status: q.status}},
        el("th", {scope: "row", className: "wd-name", text: q.name}),
        el("td", {data: {field: "status"}}, badge(q.status, STATUSES)),
        num("waiting", q.waiting),
        num("active", q.active),
        num("completed", q.completed),
        num("failed", q.failed, undefined, q.failed ? "wd-bad" : ""),
        num("rejected", q.rejected),
        num("failureRate", q.failureRate, formatRate(q.failureRate)),
        num("recentErrors", recent.errors, undefined, recent.errors ? "wd-warn" : ""),
        num("recentFailureRate", recent.failureRate, formatRate(recent.failureRate), recent.failureRate > 5 ? "wd-bad" : ""),
        num("consumers", q.consumers, undefined, q.consumers ? "" : "wd-bad"),
        timeCell(q.lastProcessedAt, now),
        el("td", {className: "wd-reasons-col", data: {field: "reasons"}}, why)
      );
    });
    if (!rows.length) rows = [emptyRow(13, "No queues configured.")];
    replaceChildren(document.querySelector("#wd-queues tbody"), rows);
  }

  function renderWorkers(workers, now) {
    // The primary pool first, then the others as the API sorts them.
    workers = workers.slice().sort(function (a, b) {
      return (a.pool === "primary" ? 0 : 1) - (b.pool === "primary" ? 0 : 1);
    });
    var previousPool = null;
    var rows = workers.map(function (w) {
      var newPool = w.pool !== previousPool;
      previousPool = w.pool;
      return el("tr", {className: "wd-worker-" + w.state + (newPool ? " wd-group-start" : ""),
                       data: {worker: w.name, state: w.state}},
        el("td", {className: "wd-name", text: newPool ? w.pool : ""}),
        el("td", {text: w.queue || (w.pool === "dispatcher" ? "(leader)" : "")}),
        el("td", {className: "wd-worker-name", title: w.host + " pid " + w.pid},
          el("span", {text: w.name}), el("span", {className: "wd-quiet wd-small", text: " pid " + w.pid})),
        el("td", {data: {field: "state"}}, badge(w.state, WORKER_STATES)),
        timeCell(w.lastHeartbeatAt, now),
        num("heartbeatAge", w.heartbeatAgeSeconds, formatAge(w.heartbeatAgeSeconds), w.live ? "" : "wd-quiet"),
        num("memory", w.memoryBytes, formatBytes(w.memoryBytes)),
        num("jobsDone", w.jobsDone),
        num("jobsFailed", w.jobsFailed, undefined, w.jobsFailed ? "wd-warn" : ""),
        // Refused input is not the worker's failure: no warning colour, as in the queues table.
        num("jobsRejected", w.jobsRejected),
        num("concurrency", w.concurrency),
        timeCell(w.startedAt, now)
      );
    });
    if (!rows.length) rows = [emptyRow(12, "No worker has sent a heartbeat in the last day.")];
    replaceChildren(document.querySelector("#wd-workers tbody"), rows);
  }

  function renderDeadLetters(entries, unresolved, now) {
    var caption = document.getElementById("wd-dlq-caption");
    var all = link(config.deadLetterListUrl, "all unresolved entries");
    if (!unresolved) {
      replaceChildren(caption, ["No unresolved entries. (", all, ")"]);
    } else {
      replaceChildren(caption, [
        el("strong", {text: formatCount(unresolved) + " unresolved"}),
        entries.length < unresolved ? "; the newest " + entries.length + " are shown. (" : ". (",
        all, ")",
      ]);
    }
    var rows = entries.map(function (entry) {
      var done = requeued[entry.id];
      var action;
      if (done) {
        action = el("span", {className: "wd-badge wd-healthy", text: "resolved: job " + (done.state || "pending")});
      } else {
        action = el("button", {type: "button", className: "button wd-requeue", data: {entryId: entry.id},
                               text: requeueing[entry.id] ? "Requeuing…" : "Requeue",
                               title: "Put this job back in its queue with fresh attempts and mark the entry resolved"});
        if (requeueing[entry.id]) action.disabled = true;
        action.addEventListener("click", function () { requeue(entry); });
      }
      return el("tr", {data: {entryId: entry.id, queue: entry.queue_name}, className: done ? "wd-resolved" : ""},
        timeCell(entry.failed_at, now),
        el("td", {text: entry.queue_name}),
        el("td", {className: "wd-error", data: {field: "error"}, text: entry.error_message || ""}),
        num("attempts", entry.attempts_made === null ? "–" : entry.attempts_made),
        el("td", {className: "wd-small"}, entry.job_id ? link(entry.jobAdminUrl, shortId(entry.job_id), {title: entry.job_id}) : "–"),
        el("td", {className: "wd-actions"}, link(entry.adminUrl, "Details", {className: "wd-details"}), " ", action)
      );
    });
    if (!rows.length) rows = [emptyRow(6, "Nothing to look at: every failed job has been resolved.")];
    replaceChildren(document.querySelector("#wd-dead-letters tbody"), rows);
  }

  function renderDeliveryRuns(summary, now) {
    var section = document.getElementById("wd-deliveries");
    section.hidden = !summary; // null: this user may not view delivery runs
    if (!summary) return;
    var runs = summary.runs || [];
    var all = link(summary.listUrl, "all runs in progress");
    replaceChildren(document.getElementById("wd-deliveries-caption"), [
      formatCount(summary.inProgress) + " in progress" +
        (runs.length < summary.inProgress ? "; the newest " + runs.length + " are shown" : "") + ". (", all, ")",
    ]);
    var rows = runs.map(function (run) {
      return el("tr", {data: {runId: String(run.id)}},
        timeCell(run.startedAt, now),
        el("td", {}, link(run.adminUrl, run.lead)),
        el("td", {data: {field: "step"}, text: run.step + " of " + run.steps + ": " + run.stepName}),
        el("td", {data: {field: "stepState"}, text: run.stepState}),
        num("stepAttempts", run.stepAttempts, undefined, run.stepAttempts > 1 ? "wd-warn" : ""),
        el("td", {className: "wd-error", text: run.lastError || ""})
      );
    });
    if (!rows.length) rows = [emptyRow(6, "No delivery is running.")];
    replaceChildren(document.querySelector("#wd-delivery-runs tbody"), rows);
  }

  function shortId(id) {
    id = String(id);
    return id.length > 13 ? id.slice(0, 8) + "…" : id;
  }

  function emptyRow(columns, text) {
    return el("tr", {className: "wd-empty"}, el("td", {colspan: String(columns), text: text}));
  }

  // ---------------------------------------------------------------- messages and the banner

  function message(level, text) {
    var list = document.getElementById("wd-messages");
    var item = el("li", {className: level}, el("span", {text: text}));
    var close = el("button", {type: "button", className: "wd-dismiss", title: "Dismiss", "aria-label": "Dismiss", text: "×"});
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(close);
    list.insertBefore(item, list.firstChild);
    while (list.children.length > MAX_MESSAGES) list.removeChild(list.lastChild);
  }

  function showBanner(problem) {
    var banner = document.getElementById("wd-banner");
    var parts = [el("strong", {text: "Not up to date: "}), problem.message + ". "];
    if (problem.loginNeeded) {
      parts.push(link(config.loginUrl + "?next=" + encodeURIComponent(window.location.pathname), "Log in again"), ". ");
    }
    if (lastData) {
      parts.push("Showing the figures of " + formatTime(lastData.generatedAt, lastData.generatedAt) + " UTC" +
        (lastSuccessAt ? " (" + formatAge((Date.now() - lastSuccessAt) / 1000) + " ago)" : "") + ". ");
    }
    parts.push("Trying again every " + REFRESH_MS / 1000 + " s.");
    replaceChildren(banner, parts);
    banner.hidden = false;
    document.getElementById("content-main").classList.add("wd-stale");
  }

  function hideBanner() {
    document.getElementById("wd-banner").hidden = true;
    document.getElementById("content-main").classList.remove("wd-stale");
  }

  function Problem(text, loginNeeded) {
    this.message = text;
    this.loginNeeded = !!loginNeeded;
  }

  /* fetch that never follows a redirect (an expired session is sent to the login page, which would
   * otherwise arrive as a 200 HTML page) and gives up after FETCH_TIMEOUT_MS. */
  function fetchJson(url, options) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, FETCH_TIMEOUT_MS);
    var opts = Object.assign({credentials: "same-origin", redirect: "manual", cache: "no-store", signal: controller.signal},
      options || {});
    opts.headers = Object.assign({"Accept": "application/json"}, opts.headers || {});
    return fetch(url, opts).then(function (response) {
      if (response.type === "opaqueredirect" || response.redirected || (response.status >= 300 && response.status < 400)) {
        throw new Problem("your session has expired or you were logged out", true);
      }
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") < 0) {
        throw new Problem("the server answered " + response.status + " " + (response.statusText || "") +
          " without JSON" + (response.status === 403 ? " (logged out, or no longer staff?)" : ""), response.status === 403);
      }
      return response.json().then(function (body) { return {response: response, body: body}; });
    }, function (error) {
      if (error && error.name === "AbortError") throw new Problem("the server did not answer within " + FETCH_TIMEOUT_MS / 1000 + " s");
      throw new Problem("the server cannot be reached (" + (error && error.message ? error.message : "network error") + ")");
    }).finally(function () { clearTimeout(timer); });
  }

  // ---------------------------------------------------------------- refresh and requeue

  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, delay === undefined ? REFRESH_MS : delay);
  }

  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    fetchJson(config.dataUrl).then(function (result) {
      if (!result.response.ok) {
        throw new Problem("the server answered " + result.response.status + ": " + ((result.body && result.body.error) || "an error"));
      }
      lastSuccessAt = Date.now();
      // Entries the API resolved drop out of the list: forget what we showed for them.
      var listed = {};
      (result.body.deadLetters || []).forEach(function (e) { listed[e.id] = true; });
      Object.keys(requeued).forEach(function (id) { if (!listed[id]) delete requeued[id]; });
      render(result.body);
      hideBanner();
    }).catch(function (problem) {
      showBanner(problem instanceof Problem ? problem : new Problem(String(problem)));
    }).finally(function () {
      refreshing = false;
      scheduleRefresh(refreshAgain ? 0 : REFRESH_MS);
      refreshAgain = false;
    });
  }

  function requeue(entry) {
    if (requeueing[entry.id]) return;
    requeueing[entry.id] = true;
    if (lastData) render(lastData);
    fetchJson(config.requeueUrl, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": config.csrfToken},
      body: JSON.stringify({id: entry.id, notes: "Requeued from the worker dashboard"}),
    }).then(function (result) {
      var body = result.body || {};
      if (result.response.ok && body.success) {
        requeued[entry.id] = body;
        message("success", "Requeued the " + entry.queue_name + " job " + (body.jobId || entry.job_id) +
          ": it is " + (body.state || "pending") + " again, with fresh attempts; the dead-letter entry is resolved.");
      } else {
        message("error", requeueFailed(entry) + (body.error || "the server answered " + result.response.status) + ".");
      }
    }).catch(function (problem) {
      message("error", requeueFailed(entry) + (problem && problem.message ? problem.message : String(problem)) + ".");
    }).finally(function () {
      delete requeueing[entry.id];
      if (lastData) render(lastData);
      scheduleRefresh(0); // show the new figures now
    });
  }

  function requeueFailed(entry) {
    return "Could not requeue the " + entry.queue_name + " entry " + shortId(entry.id) + " (failed at " +
      formatTime(entry.failed_at) + " UTC): ";
  }

  // ---------------------------------------------------------------- start

  render(JSON.parse(document.getElementById("wd-data").textContent));
  lastSuccessAt = Date.now();
  updateClock();
  setInterval(updateClock, 1000);
  scheduleRefresh();
})();
