"use strict";
// The web view reads the aggregator's HTTP API only; every list is paged and
// filtered by the server, so a 5,000-node cluster costs one page per poll.
(function () {
  var PAGE = 50, POLL_MS = 5000;
  var $ = function (id) { return document.getElementById(id); };
  var token = sessionStorage.getItem("k8smon-token") || "";
  var state = {
    tab: "nodes",
    nodes: { sort: "", desc: false, offset: 0, total: 0 },
    pods: { sort: "", desc: false, offset: 0, total: 0 },
    gpus: { offset: 0, total: 0 },
    vms: { offset: 0, total: 0 },
    detail: null,
    issues: null,
    nodeIssues: {},
    events: [],
    eventsAPI: null
  };

  // el builds an element; text always goes through textContent, never HTML.
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function td(text, cls) { return el("td", { text: text == null ? "" : String(text), cls: cls || "" }); }

  function api(path) {
    var headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.status === 401) { $("auth").hidden = false; throw new Error("authentication required"); }
      return r.json().then(function (body) {
        if (!r.ok) { var e = new Error(body.error || r.statusText); e.status = r.status; throw e; }
        return body;
      });
    });
  }
  function showError(err) {
    $("error").hidden = !err;
    $("error").textContent = err ? String(err.message || err) : "";
  }

  // Units: CPU arrives in millicores, memory in bytes, rates in percent.
  function cores(m) { return (m / 1000).toFixed(m % 1000 === 0 ? 0 : 2); }
  function bytes(b) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + " " + u[i];
  }
  function pct(r) { return (Math.round(r * 10) / 10) + "%"; }
  function bar(rate, label, cls) {
    var i = el("i", { cls: rate >= 90 ? "over" : rate >= 75 ? "high" : "" });
    i.style.width = Math.max(0, Math.min(100, rate)) + "%";
    return el("td", { cls: "num " + (cls || "") }, [el("span", { cls: "bar" }, [i]), pct(rate) + " ", el("span", { cls: "muted", text: label })]);
  }
  function age(s) { return s < 120 ? Math.round(s) + "s" : s < 7200 ? Math.round(s / 60) + "m" : Math.round(s / 3600) + "h"; }

  function form(id) {
    var q = [];
    Array.prototype.forEach.call($(id).elements, function (f) {
      if (f.name && f.value.trim() !== "") q.push(encodeURIComponent(f.name) + "=" + encodeURIComponent(f.value.trim()));
    });
    return q;
  }
  function listQuery(s, filters) {
    var q = filters.slice();
    if (s.sort) q.push("sort=" + s.sort);
    if (s.desc !== (s.sort !== "")) q.push("order=" + (s.desc ? "desc" : "asc"));
    q.push("limit=" + PAGE, "offset=" + s.offset);
    return "?" + q.join("&");
  }

  function pager(name, s) {
    var p = document.querySelector('.pager[data-for="' + name + '"]');
    p.textContent = "";
    var from = s.total ? s.offset + 1 : 0, to = Math.min(s.offset + PAGE, s.total);
    var prev = el("button", { text: "‹ previous" }), next = el("button", { text: "next ›" });
    prev.disabled = s.offset === 0;
    next.disabled = s.offset + PAGE >= s.total;
    prev.onclick = function () { s.offset = Math.max(0, s.offset - PAGE); refresh(); };
    next.onclick = function () { s.offset += PAGE; refresh(); };
    p.append(prev, el("span", { text: from + "–" + to + " of " + s.total }), next);
  }

  function sortable(table, s) {
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.onclick = function () {
        var key = th.getAttribute("data-sort");
        if (s.sort === key) s.desc = !s.desc; else { s.sort = key; s.desc = key !== ""; }
        s.offset = 0;
        refresh();
      };
    });
  }
  function markSorted(table, s) {
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      var on = th.getAttribute("data-sort") === s.sort;
      th.classList.toggle("sorted", on);
      th.classList.toggle("asc", on && !s.desc);
    });
  }

  function loadCluster() {
    return api("/api/v1/metrics/cluster").then(function (c) {
      $("health").textContent = c.healthStatus;
      $("health").setAttribute("data-status", c.healthStatus);
      $("updated").textContent = "snapshot " + new Date(c.timestamp).toLocaleTimeString();
      var phases = c.podsByPhase || {};
      var cards = [
        ["nodes", c.totalNodes, c.healthyNodes + " healthy, " + c.staleNodes + " stale, " + c.nodesUnderPressure + " under pressure"],
        ["pods", c.totalPods, Object.keys(phases).sort().map(function (k) { return phases[k] + " " + k; }).join(", ")],
        ["CPU", pct(c.cpuUsageRate), cores(c.usedCPU) + " of " + cores(c.totalCPU) + " cores"],
        ["memory", pct(c.memoryUsageRate), bytes(c.usedMemory) + " of " + bytes(c.totalMemory)],
        ["GPUs", c.totalGPUs, c.availableGPUs + " free"],
        ["VMs", c.totalVMs, c.runningVMs + " running"]
      ];
      var sum = $("summary");
      sum.textContent = "";
      cards.forEach(function (k) {
        sum.appendChild(el("div", { cls: "card", "data-card": k[0] }, [el("span", { cls: "muted", text: k[0] }), el("b", { text: String(k[1]) }), el("small", { text: k[2] })]));
      });
      var issues = c.issues || [];
      $("issue-count").textContent = "(" + issues.length + ")";
      var ul = $("issues");
      ul.textContent = "";
      issues.forEach(function (i) { ul.appendChild(el("li", { text: i })); });
      // A node's issue says why it is unhealthy with the server's thresholds.
      state.nodeIssues = {};
      issues.forEach(function (i) {
        var m = /^node (\S+) (?:is )?(.*)$/.exec(i);
        if (m) state.nodeIssues[m[1]] = m[2];
      });
      if (!state.eventsAPI) diffIssues(issues, c.healthStatus);
    });
  }

  function nodeStatus(n) {
    if (n.stale) return ["stale", "state-stale"];
    if (!n.healthy) return ["unhealthy", "state-unhealthy"];
    return ["healthy", "state-healthy"];
  }
  function pressure(n) {
    var conds = (n.conditions || []).filter(function (c) { return /Pressure$|NetworkUnavailable|NotReady/.test(c); });
    var why = (state.nodeIssues || {})[n.nodeName];
    return conds.concat(why && conds.indexOf(why) < 0 ? [why] : []).join("; ");
  }
  function gpuSummary(n) {
    var g = n.gpus || [];
    if (!g.length) return n.gpuCount ? n.gpuCount + "" : "–";
    var util = g.reduce(function (a, x) { return a + x.utilizationRate; }, 0) / g.length;
    return g.length + " × " + (g[0].model || "GPU") + ", " + pct(util);
  }

  function loadNodes() {
    var s = state.nodes, table = $("nodes");
    return api("/api/v1/metrics/nodes" + listQuery(s, form("node-filters"))).then(function (l) {
      s.total = l.total;
      var tb = table.tBodies[0];
      tb.textContent = "";
      l.items.forEach(function (n) {
        var st = nodeStatus(n);
        var tr = el("tr", { "data-node": n.nodeName }, [
          td(n.nodeName, "name"), td(st[0], "status " + st[1]),
          bar(n.cpuUsageRate, cores(n.cpuUsage) + "/" + cores(n.cpuCapacity), "cpu"),
          bar(n.memoryUsageRate, bytes(n.memoryUsage) + "/" + bytes(n.memoryCapacity), "memory"),
          bar(n.diskUsageRate, bytes(n.diskUsage) + "/" + bytes(n.diskCapacity), "disk"),
          td(gpuSummary(n), "gpus"), td(pressure(n), "pressure"),
          td(n.reportAgeSeconds ? age(n.reportAgeSeconds) : (n.sources && n.sources.agent ? "no agent" : "–"), "age")
        ]);
        tr.onclick = function () { openDetail("node", n.nodeName, n); };
        tb.appendChild(tr);
      });
      markSorted(table, s);
      pager("nodes", s);
    });
  }

  function loadPods() {
    var s = state.pods, table = $("pods");
    return api("/api/v1/metrics/pods" + listQuery(s, form("pod-filters"))).then(function (l) {
      s.total = l.total;
      var tb = table.tBodies[0];
      tb.textContent = "";
      l.items.forEach(function (p) {
        var key = p.namespace + "/" + p.podName;
        var tr = el("tr", { "data-pod": key }, [
          td(key, "name"), td(p.nodeName), td(p.phase), td(p.ready ? "yes" : "no"), td(p.restarts, "num"),
          td(cores(p.cpuUsage) + (p.cpuRequest ? " (req " + cores(p.cpuRequest) + ")" : ""), "num"),
          td(p.cpuLimited ? pct(p.cpuUsageRate) : "–", "num"),
          td(bytes(p.memoryUsage), "num"),
          td(p.memoryLimited ? pct(p.memoryUsageRate) : "–", "num")
        ]);
        tr.onclick = function () { openDetail("pod", key, p); };
        tb.appendChild(tr);
      });
      markSorted(table, s);
      pager("pods", s);
    });
  }

  // GPUs: nodes sorted by GPU utilisation put every GPU node first; the
  // page stops at the first node without GPUs.
  function loadGPUs() {
    var s = state.gpus;
    return api("/api/v1/metrics/nodes?sort=gpu&limit=" + PAGE + "&offset=" + s.offset).then(function (l) {
      var tb = $("gpus").tBodies[0];
      tb.textContent = "";
      var withGPUs = 0;
      l.items.forEach(function (n) {
        if (!(n.gpus || []).length) return;
        withGPUs++;
        n.gpus.forEach(function (g) {
          var pods = (g.pods || []).map(function (p) { return p.namespace + "/" + p.pod; }).join(", ");
          tb.appendChild(el("tr", { "data-gpu": n.nodeName + "/" + g.index }, [
            td(n.nodeName), td(g.index + (g.uuid ? " " + g.uuid : "")), td(g.model), bar(g.utilizationRate, ""),
            td(bytes(g.memoryUsed) + " / " + bytes(g.memoryTotal), "num"), td(g.temperatureC + " °C", "num"),
            td(g.powerWatts ? g.powerWatts.toFixed(0) + " W" : "–", "num"),
            td(g.eccUncorrected == null ? "–" : g.eccUncorrected, "num"), td(g.xidErrors || 0, "num"), td(pods)
          ]));
        });
      });
      s.total = withGPUs < l.items.length ? s.offset + withGPUs : l.total;
      if (!tb.rows.length) tb.appendChild(el("tr", {}, [el("td", { colspan: "10", cls: "muted", text: "no GPUs reported" })]));
      pager("gpus", s);
    });
  }

  function loadVMs() {
    var s = state.vms, q = form("vm-filters");
    return api("/api/vms" + (q.length ? "?" + q.join("&") : "")).then(function (vms) {
      s.total = vms.length;
      var tb = $("vms").tBodies[0];
      tb.textContent = "";
      vms.slice(s.offset, s.offset + PAGE).forEach(function (v) {
        var m = v.metrics || {};
        var use = function (x) { return x == null ? "–" : pct(x); };
        tb.appendChild(el("tr", { "data-vm": v.namespace + "/" + v.name }, [
          td(v.namespace + "/" + v.name), td(v.status), td(v.node), td(v.cpu, "num"), td(v.memory, "num"),
          td(use(m.cpuUsage), "num"), td(use(m.memoryUsage), "num"), td(use(m.diskUsage), "num"), td(v.source)
        ]));
      });
      pager("vms", s);
    });
  }

  // Events: the aggregator's event list (newest first), polled with the
  // token like every other request (an EventSource on /api/v1/events/stream
  // could not send it); without an event list, the issues of successive
  // snapshots, raised and cleared, as they are seen.
  function diffIssues(issues, status) {
    var now = new Date().toISOString();
    if (state.issues) {
      var before = new Set(state.issues), after = new Set(issues);
      issues.forEach(function (i) { if (!before.has(i)) state.events.unshift({ time: now, severity: status === "critical" ? "critical" : "warning", type: "raised", message: i }); });
      state.issues.forEach(function (i) { if (!after.has(i)) state.events.unshift({ time: now, severity: "info", type: "cleared", message: i }); });
      state.events.length = Math.min(state.events.length, 200);
    }
    state.issues = issues;
  }
  function loadEvents() {
    var p = state.eventsAPI === false ? Promise.resolve(null) : api("/api/v1/events?limit=100").then(function (page) {
      state.eventsAPI = true;
      return page.items || [];
    }, function (err) {
      if (err.status === 404) { state.eventsAPI = false; return null; }
      throw err;
    });
    return p.then(function (items) {
      $("events-source").textContent = items ? "Events from /api/v1/events." : "This aggregator serves no event list: shown are the health issues raised and cleared since this page opened.";
      var list = (items || state.events).slice().sort(function (a, b) { return a.time < b.time ? 1 : -1; });
      var tb = $("events").tBodies[0];
      tb.textContent = "";
      list.forEach(function (e) {
        var obj = e.namespace && e.pod ? e.namespace + "/" + e.pod : e.object ? e.object.kind + " " + e.object.name : e.node;
        var what = [e.reason || e.type, obj].filter(Boolean).join(" ");
        tb.appendChild(el("tr", {}, [td(new Date(e.time).toLocaleTimeString()), td(e.severity, "sev-" + e.severity), td(what), td(e.message)]));
      });
    });
  }

  // History charts: inline SVG, one line per quantity.
  function chart(title, points, value, fmt) {
    var w = 300, h = 70, vals = points.map(value), max = Math.max.apply(null, vals.concat([1e-9]));
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("preserveAspectRatio", "none");
    var line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", vals.map(function (v, i) {
      return (vals.length > 1 ? i * w / (vals.length - 1) : 0).toFixed(1) + "," + (h - 2 - v / max * (h - 4)).toFixed(1);
    }).join(" "));
    svg.appendChild(line);
    var last = vals.length ? fmt(vals[vals.length - 1]) : "–";
    return el("div", { cls: "chart" }, [el("div", { text: title + ": " + last + " (max " + fmt(max) + ")" }), svg]);
  }
  function openDetail(kind, name, obj) {
    state.detail = { kind: kind, name: name, obj: obj };
    $("detail").hidden = false;
    loadDetail().catch(showError);
  }
  function loadDetail() {
    var d = state.detail;
    if (!d) return Promise.resolve();
    $("detail-title").textContent = d.kind + " " + d.name;
    var path = d.kind === "node" ? "/api/v1/metrics/nodes/" + encodeURIComponent(d.name)
      : "/api/v1/metrics/pods/" + d.name.split("/").map(encodeURIComponent).join("/");
    return Promise.all([api(path), api(path + "/history")]).then(function (r) {
      var obj = r[0], pts = r[1].items || [], charts = $("detail-charts");
      charts.textContent = "";
      if (d.kind === "node") {
        charts.append(chart("CPU", pts, function (p) { return p.cpuUsageRate; }, pct),
          chart("memory", pts, function (p) { return p.memoryUsageRate; }, pct),
          chart("disk", pts, function (p) { return p.diskUsageRate; }, pct),
          chart("GPU", pts, function (p) { return p.gpuUsageRate; }, pct));
      } else {
        charts.append(chart("CPU cores", pts, function (p) { return p.cpuUsage; }, cores),
          chart("memory", pts, function (p) { return p.memoryUsage; }, bytes),
          chart("restarts", pts, function (p) { return p.restarts; }, String));
      }
      var facts = d.kind === "node"
        ? { conditions: obj.conditions, taints: obj.taints, sources: obj.sources, labels: obj.labels }
        : { phase: obj.phase, ready: obj.ready, restarts: obj.restarts, containers: obj.containers };
      $("detail-facts").textContent = JSON.stringify(facts, null, 2);
    });
  }

  var loaders = { nodes: loadNodes, pods: loadPods, gpus: loadGPUs, vms: loadVMs, events: loadEvents };
  // One refresh at a time; a change made meanwhile (a filter, a page)
  // runs one more as soon as it ends.
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    again = false;
    var work = [loadCluster(), loaders[state.tab]()];
    if (state.tab !== "events" && state.eventsAPI === null) work.push(loadEvents()); // is there an event list?
    if (state.detail) work.push(loadDetail());
    Promise.all(work).then(function () { showError(null); }, showError).then(function () {
      busy = false;
      if (again) refresh();
    });
  }

  document.querySelectorAll("#tabs button").forEach(function (b) {
    b.onclick = function () {
      state.tab = b.getAttribute("data-tab");
      document.querySelectorAll("#tabs button").forEach(function (x) { x.classList.toggle("active", x === b); });
      document.querySelectorAll(".tab").forEach(function (t) { t.hidden = t.id !== "tab-" + state.tab; });
      refresh();
    };
  });
  [["node-filters", state.nodes], ["pod-filters", state.pods], ["vm-filters", state.vms]].forEach(function (f) {
    var apply = function () { f[1].offset = 0; refresh(); };
    $(f[0]).addEventListener("change", apply);
    $(f[0]).addEventListener("submit", function (e) { e.preventDefault(); apply(); });
    // Enter applies a text filter at once (forms of several inputs have no
    // implicit submission).
    $(f[0]).addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); apply(); } });
  });
  sortable($("nodes"), state.nodes);
  sortable($("pods"), state.pods);
  $("detail-close").onclick = function () { state.detail = null; $("detail").hidden = true; };
  $("auth").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("k8smon-token", token);
    $("auth").hidden = true;
    refresh();
  });
  refresh();
  setInterval(function () { if (!document.hidden) refresh(); }, POLL_MS);
})();
