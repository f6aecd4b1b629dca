// celery_durable run viewer: live times, the hover card, selecting a bar, and polling
// the JSON API so running runs update without a reload. No framework, no build step.
// Every text taken from data goes through textContent, never innerHTML.
(function () {
  "use strict";
  var body = document.body;
  var POLL_MS = 2500;

  function ago(seconds) {
    if (seconds < 2) return "just now";
    var units = [["d", 86400], ["h", 3600], ["m", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) return Math.floor(seconds / units[i][1]) + units[i][0] + " ago";
    }
    return Math.floor(seconds) + "s ago";
  }

  function duration(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 1) return Math.round(seconds * 1000) + "ms";
    if (seconds < 60) return seconds < 10 ? seconds.toFixed(1) + "s" : Math.round(seconds) + "s";
    var minutes = Math.floor(seconds / 60), secs = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + "m " + (secs < 10 ? "0" : "") + secs + "s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) return hours + "h " + (minutes < 10 ? "0" : "") + minutes + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }

  // Relative times and running durations move on their own, once a second.
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time.ago[data-at]").forEach(function (el) {
      el.textContent = ago(now - parseFloat(el.dataset.at));
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = duration(now - parseFloat(el.dataset.since));
    });
  }
  setInterval(tick, 1000);

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(url + ": " + r.status); return r.json(); });
  }

  // Forms that change a run ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  // The hover card: the bar's data-tip, as text.
  var tip = document.getElementById("tip");
  function placeTip(event) {
    if (!tip || tip.hidden) return;
    var x = event.clientX + 14, y = event.clientY + 16;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = Math.max(8, event.clientX - w - 14);
    if (y + h > window.innerHeight - 8) y = Math.max(8, event.clientY - h - 16);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  document.addEventListener("mouseover", function (event) {
    if (!tip) return;
    var el = event.target.closest ? event.target.closest("[data-tip]") : null;
    if (!el) { tip.hidden = true; return; }
    tip.textContent = el.dataset.tip;
    tip.hidden = false;
    placeTip(event);
  });
  document.addEventListener("mousemove", placeTip);

  if (body.dataset.page === "runs") runsPage();
  if (body.dataset.page === "run") runPage();

  // -- the runs page: running rows follow their run; new runs are announced --------
  function runsPage() {
    var api = body.dataset.api;
    function update(row, run) {
      if (row.dataset.status === run.status) return;
      row.dataset.status = run.status;
      var badge = row.querySelector(".badge");
      badge.className = "badge " + run.status;
      badge.textContent = run.status;
      var cell = row.querySelector(".duration");
      if (run.ended_at !== null) {
        cell.removeAttribute("data-since");
        cell.textContent = duration(run.duration);
      }
      row.classList.remove("changed");
      void row.offsetWidth;  // restart the flash
      row.classList.add("changed");
    }
    function pollRunning() {
      var rows = Array.prototype.slice.call(
        document.querySelectorAll("tr[data-run-id][data-status=running]"));
      if (!rows.length) return Promise.resolve();
      var ids = rows.map(function (r) { return encodeURIComponent(r.dataset.runId); });
      return getJSON(api + "?ids=" + ids.join(",")).then(function (data) {
        var byId = {};
        data.runs.forEach(function (run) { byId[run.run_id] = run; });
        rows.forEach(function (row) { if (byId[row.dataset.runId]) update(row, byId[row.dataset.runId]); });
      });
    }
    function pollNewer() {
      var top = document.querySelector("tr[data-run-id]");
      var banner = document.getElementById("newer");
      if (!body.dataset.firstPage || !banner) return Promise.resolve();
      var query = new URLSearchParams({ limit: "50" });
      if (body.dataset.filterStatus) query.set("status", body.dataset.filterStatus);
      if (body.dataset.filterWorkflow) query.set("workflow", body.dataset.filterWorkflow);
      return getJSON(api + "?" + query.toString()).then(function (data) {
        var newest = top ? parseFloat(top.dataset.created) : -1;
        var shown = {};
        document.querySelectorAll("tr[data-run-id]").forEach(function (r) { shown[r.dataset.runId] = 1; });
        var fresh = data.runs.filter(function (run) {
          return !shown[run.run_id] && run.created_at >= newest;
        }).length;
        if (fresh) {
          banner.firstElementChild.textContent =
            (fresh >= 50 ? "50+" : fresh) + " newer run" + (fresh === 1 ? "" : "s") + ": show";
        }
        banner.hidden = !fresh;
      });
    }
    function poll() {
      if (document.hidden) return;
      pollRunning().then(pollNewer).catch(function () { /* next time */ });
    }
    setInterval(poll, POLL_MS);
    document.addEventListener("click", function (event) {
      var row = event.target.closest("tr[data-run-id]");
      if (row && !event.target.closest("a")) row.querySelector("td.id a").click();
    });
  }

  // -- one run: select a bar; refresh while the run runs ---------------------------
  function runPage() {
    var selected = null;

    // A big run's panels are not in the page: fetch the one clicked (server-rendered,
    // escaped HTML like the page itself) and keep it.
    function load(seq) {
      var panel = document.getElementById("panel");
      if (!panel || !panel.dataset.lazy) return Promise.resolve(false);
      return fetch(panel.dataset.lazy + encodeURIComponent(seq), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) {
          var section = new DOMParser().parseFromString(html, "text/html")
            .querySelector("section.detail");
          if (!section || document.getElementById("detail-" + seq)) return !!section;
          document.getElementById("panel").appendChild(document.adoptNode(section));
          return true;
        });
    }

    function select(seq, attempt, reveal, loaded) {
      if (seq !== null && !loaded && !document.getElementById("detail-" + seq)) {
        load(seq).then(function (ok) { if (ok) select(seq, attempt, reveal, true); });
        return;
      }
      document.querySelectorAll(".bar.selected").forEach(function (b) { b.classList.remove("selected"); });
      document.querySelectorAll(".attempt.selected").forEach(function (a) { a.classList.remove("selected"); });
      document.querySelectorAll(".detail").forEach(function (d) { d.hidden = true; });
      var empty = document.querySelector(".panel-empty");
      var panel = seq === null ? null : document.getElementById("detail-" + seq);
      if (!panel) {
        selected = null;
        if (empty) empty.hidden = false;
        return;
      }
      selected = { seq: seq, attempt: attempt };
      if (empty) empty.hidden = true;
      panel.hidden = false;
      var bars = document.querySelectorAll('.bar[data-seq="' + seq + '"]');
      bars.forEach(function (b) {
        if (!attempt || b.dataset.attempt === String(attempt)) b.classList.add("selected");
      });
      if (attempt) {
        var item = panel.querySelector('.attempt[data-attempt="' + attempt + '"]');
        if (item) item.classList.add("selected");
      }
      if (reveal && bars.length) {
        var group = bars[0].closest("details.group");
        if (group) group.open = true;
        bars[0].scrollIntoView({ block: "nearest" });
      }
      history.replaceState(null, "", "#seq-" + seq + (attempt ? "-" + attempt : ""));
    }

    function fromHash() {
      var match = /^#seq-(\d+)(?:-(\d+))?$/.exec(location.hash);
      if (match) select(match[1], match[2] || null, true);
    }

    document.addEventListener("click", function (event) {
      var bar = event.target.closest(".bar[data-seq]");
      if (bar && bar.closest(".chart")) {
        select(bar.dataset.seq, bar.dataset.attempt || null, false);
        return;
      }
      var label = event.target.closest(".lane[data-lane] > .label");
      if (label) {
        select(label.parentElement.dataset.lane, null, false);
        return;
      }
      if (event.target.closest("[data-close]")) {
        select(null);
        history.replaceState(null, "", location.pathname + location.search);
        return;
      }
      var row = event.target.closest("tr[data-ev-seq]");
      if (row) select(row.dataset.evSeq, null, true);
    });
    document.addEventListener("keydown", function (event) {
      var bar = event.target.closest ? event.target.closest(".bar[data-seq]") : null;
      if (bar && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        select(bar.dataset.seq, bar.dataset.attempt || null, false);
      } else if (event.key === "Escape") {
        select(null);
      }
    });

    // The confirmation has been read once: a reload should not say it again.
    if (/[?&]done=/.test(location.search)) {
      var query = new URLSearchParams(location.search);
      query.delete("done");
      query.delete("n");
      var rest = query.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
    fromHash();

    // While the run runs: poll its state; when anything changed (and now and then, so
    // running bars grow), fetch the page again and swap the live part in place.
    var live = document.getElementById("live");
    if (!live || live.dataset.status !== "running") return;
    var lastSwap = Date.now();
    function swap() {
      return fetch(location.pathname + location.search, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          var current = document.getElementById("live");
          if (!fresh || !current) return;
          var open = Array.prototype.map.call(current.querySelectorAll("details[open][id]"),
            function (d) { return d.id; });
          current.replaceWith(document.adoptNode(fresh));
          open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
          if (selected) select(selected.seq, selected.attempt, false);
          body.dataset.status = fresh.dataset.status;
          lastSwap = Date.now();
          tick();
        });
    }
    var timer = setInterval(function () {
      if (document.hidden) return;
      var current = document.getElementById("live");
      getJSON(body.dataset.api).then(function (state) {
        var changed = state.status !== current.dataset.status ||
          String(state.events_count) !== current.dataset.events;
        if (changed || Date.now() - lastSwap > 10000) return swap();
      }).then(function () {
        if (document.getElementById("live").dataset.status !== "running") clearInterval(timer);
      }).catch(function () { /* next time */ });
    }, POLL_MS);
  }
})();
