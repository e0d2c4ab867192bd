/* The worker dashboard's charts (/admin/workers/): per queue, attempts started / succeeded / failed /
 * rejected per minute over the last 6 hours, the first attempts' wait (p50, p95), and AI spend per hour.
 *
 * Fetches GET /api/admin/workers/charts (the URL is the section's data-charts-url) now and every
 * minute, and draws plain SVG: a polyline per series, one point a minute; a bar per hour. Every figure
 * goes in as an attribute or textContent, never as HTML, and nothing is styled inline (the page's
 * Content-Security-Policy allows no inline style): colours and sizes are classes in charts.css.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var REFRESH_MS = 60 * 1000;
  var FETCH_TIMEOUT_MS = 8000;
  var WIDTH = 720, HEIGHT = 120, PAD_LEFT = 36, PAD_BOTTOM = 16, PAD_TOP = 6;
  var SERIES = [["started", "Started"], ["succeeded", "Succeeded"], ["failed", "Failed"], ["rejected", "Rejected"]];

  var section = document.getElementById("wd-charts");
  if (!section) return;
  var url = section.getAttribute("data-charts-url");
  var status = document.getElementById("wd-charts-status");
  var queuesBox = document.getElementById("wd-charts-queues");
  var spendBox = document.getElementById("wd-charts-spend");

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    for (var key in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, key)) node.setAttribute(key, String(attrs[key]));
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function html(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function hhmm(date) {
    return ("0" + date.getUTCHours()).slice(-2) + ":" + ("0" + date.getUTCMinutes()).slice(-2);
  }

  function seconds(quantile) {
    if (!quantile) return "–";
    if (quantile.seconds === null) return "≥ " + quantile.atLeast + " s";
    return "≤ " + quantile.seconds + " s";
  }

  /* The frame of a chart: axis, the top value, and times under it every hour. */
  function frame(chart, top, start, minutes) {
    var plotW = WIDTH - PAD_LEFT, plotH = HEIGHT - PAD_BOTTOM - PAD_TOP;
    chart.appendChild(svg("line", {"class": "wd-axis", x1: PAD_LEFT, y1: PAD_TOP + plotH, x2: WIDTH, y2: PAD_TOP + plotH}));
    chart.appendChild(svg("line", {"class": "wd-axis", x1: PAD_LEFT, y1: PAD_TOP, x2: PAD_LEFT, y2: PAD_TOP + plotH}));
    chart.appendChild(svg("text", {"class": "wd-tick", x: PAD_LEFT - 4, y: PAD_TOP + 8, "text-anchor": "end"}, top));
    chart.appendChild(svg("text", {"class": "wd-tick", x: PAD_LEFT - 4, y: PAD_TOP + plotH, "text-anchor": "end"}, 0));
    for (var m = 0; m < minutes; m += 60) {
      var x = PAD_LEFT + plotW * m / (minutes - 1);
      chart.appendChild(svg("text", {"class": "wd-tick", x: x, y: HEIGHT - 3, "text-anchor": "middle"},
        hhmm(new Date(start.getTime() + m * 60000))));
    }
    return {plotW: plotW, plotH: plotH};
  }

  function queueChart(queue, start, minutes) {
    var top = 1;
    SERIES.forEach(function (s) {
      queue.perMinute[s[0]].forEach(function (n) { if (n > top) top = n; });
    });
    var chart = svg("svg", {"class": "wd-chart", viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img",
      "aria-label": queue.queue + ": attempts per minute over the last " + minutes / 60 + " hours",
      "data-queue": queue.queue});
    var size = frame(chart, top, start, minutes);
    SERIES.forEach(function (s) {
      var values = queue.perMinute[s[0]];
      var points = values.map(function (n, i) {
        var x = PAD_LEFT + size.plotW * i / (values.length - 1);
        var y = PAD_TOP + size.plotH * (1 - n / top);
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      chart.appendChild(svg("polyline", {"class": "wd-line wd-line-" + s[0], "data-series": s[0],
        points: points.join(" ")}, svg("title", {}, s[1] + " per minute")));
    });
    return chart;
  }

  function queueBlock(queue, start, minutes) {
    var box = html("figure", "wd-chart-box");
    box.setAttribute("data-queue", queue.queue);
    var caption = html("figcaption", "wd-chart-caption");
    caption.appendChild(html("strong", null, queue.queue));
    caption.appendChild(document.createTextNode(
      ": " + queue.totals.started + " started, " + queue.totals.succeeded + " succeeded, " +
      queue.totals.failed + " failed, " + queue.totals.rejected + " rejected; wait from enqueue to start p50 "));
    caption.appendChild(html("span", "wd-wait-p50", seconds(queue.wait.p50)));
    caption.appendChild(document.createTextNode(", p95 "));
    caption.appendChild(html("span", "wd-wait-p95", seconds(queue.wait.p95)));
    caption.appendChild(document.createTextNode(" (" + queue.wait.firstAttempts + " first attempts)"));
    box.appendChild(caption);
    box.appendChild(queueChart(queue, start, minutes));
    return box;
  }

  function spendChart(spend) {
    var costs = spend.cost.map(function (text) { return parseFloat(text.replace("$", "")) || 0; });
    var top = Math.max.apply(null, costs.concat([0.0001]));
    var chart = svg("svg", {"class": "wd-chart wd-spend-chart", viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img",
      "aria-label": "AI spend per hour (UTC)"});
    var plotW = WIDTH - PAD_LEFT, plotH = HEIGHT - PAD_BOTTOM - PAD_TOP, slot = plotW / costs.length;
    chart.appendChild(svg("line", {"class": "wd-axis", x1: PAD_LEFT, y1: PAD_TOP + plotH, x2: WIDTH, y2: PAD_TOP + plotH}));
    chart.appendChild(svg("text", {"class": "wd-tick", x: PAD_LEFT - 4, y: PAD_TOP + 8, "text-anchor": "end"}, "$" + top));
    costs.forEach(function (cost, i) {
      var h = plotH * cost / top, x = PAD_LEFT + slot * i + slot * 0.15;
      chart.appendChild(svg("rect", {"class": "wd-bar", x: x.toFixed(1), y: (PAD_TOP + plotH - h).toFixed(1),
        width: (slot * 0.7).toFixed(1), height: h.toFixed(1), "data-cost": spend.cost[i]},
        svg("title", {}, hhmm(new Date(spend.hours[i])) + " UTC: " + spend.cost[i] + " for " + spend.requests[i] +
          " paid request" + (spend.requests[i] === 1 ? "" : "s"))));
      chart.appendChild(svg("text", {"class": "wd-tick", x: PAD_LEFT + slot * (i + 0.5), y: HEIGHT - 3,
        "text-anchor": "middle"}, hhmm(new Date(spend.hours[i])) + " " + spend.cost[i]));
    });
    return chart;
  }

  function render(data) {
    var start = new Date(data.windowStart);
    clear(queuesBox);
    data.queues.forEach(function (queue) { queuesBox.appendChild(queueBlock(queue, start, data.minutes)); });
    clear(spendBox);
    spendBox.appendChild(spendChart(data.aiSpendPerHour));
    status.textContent = "Updated " + hhmm(new Date(data.generatedAt)) + " UTC; redrawn every minute.";
    status.classList.remove("wd-charts-problem");
  }

  function problem(text) {
    status.textContent = "Charts not updated: " + text + ".";
    status.classList.add("wd-charts-problem");
  }

  function load() {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, FETCH_TIMEOUT_MS);
    fetch(url, {credentials: "same-origin", redirect: "manual", cache: "no-store", signal: controller.signal,
                headers: {"Accept": "application/json"}})
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") < 0) throw new Error("the server answered " + response.status + " without JSON");
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || ("the server answered " + response.status));
          return body;
        });
      })
      .then(render, function (error) { problem(error && error.name === "AbortError" ? "no answer in time" : String(error.message || error)); })
      .finally(function () {
        clearTimeout(timer);
        setTimeout(load, REFRESH_MS);
      });
  }

  load();
})();
