// The campaign page's live figures: poll /campaigns/<id>/progress while the campaign sends
// and update the elements marked data-progress-*. Without this script the page is as loaded.
(function () {
  "use strict";
  var root = document.querySelector("[data-progress-url]");
  var badge = document.querySelector("[data-progress-status]");
  if (!root || !badge || !window.fetch) return;
  var EVERY_MS = 1500;
  var FINAL = ["completed", "cancelled"];
  var status = badge.textContent.trim();
  if (["scheduled", "running", "paused"].indexOf(status) < 0) return;

  function one(name) { return document.querySelector("[data-progress-" + name + "]"); }

  function drawn() {
    var cells = document.querySelectorAll("[data-progress-count]");
    return Array.prototype.map.call(cells, function (cell) { return cell.textContent; }).join();
  }
  var asLoaded = drawn();

  function pace(rate, eta) {
    if (!(rate > 0)) return "";  // nothing moving: no "0 letters/s, forever left"
    var line = rate >= 10 ? Math.round(rate) + " letters/s"
      : rate >= 1 ? rate.toFixed(1) + " letters/s" : Math.round(rate * 60) + " letters/min";
    if (eta === null) return line;
    var minutes = Math.ceil(eta / 60);
    return line + " · " + (eta < 60 ? "less than a minute left"
      : minutes < 120 ? "about " + minutes + " min left" : "about " + Math.round(minutes / 60) + " h left");
  }

  function show(p) {
    badge.textContent = p.status;
    badge.className = "badge badge-" + p.status;
    var reason = one("reason");
    reason.textContent = p.status_reason;
    reason.hidden = !p.status_reason;
    one("total").textContent = p.total;
    Object.keys(p.counts).forEach(function (state) {
      var cell = document.querySelector('[data-progress-count="' + state + '"]');
      if (cell) cell.textContent = p.counts[state];
    });
    var bar = one("bar");
    bar.max = p.total || 1;
    bar.value = p.done;
    bar.hidden = !p.total;
    ["started_at", "completed_at"].forEach(function (name) {
      var cell = document.querySelector('[data-progress-time="' + name + '"]');
      // "2026-05-01T09:30:12+00:00" → "2026-05-01 09:30 UTC", as the page writes it.
      if (cell) cell.textContent = p[name] ? p[name].slice(0, 16).replace("T", " ") + " UTC" : "—";
    });
    var snapshot = one("snapshot");
    if (snapshot && drawn() !== asLoaded) {
      // The rows and results below are as of the page load: say so rather than mislead.
      snapshot.classList.add("stale");
      snapshot.title = "As of the page load: reload to bring these up to date";
    }
    var line = one("pace");
    // Paused, the last minute's pace says nothing about what comes next.
    line.textContent = p.status === "running" ? pace(p.rate_per_second, p.eta_seconds) : "";
    line.hidden = !line.textContent;
  }

  function live(p) {
    return p.status === "scheduled" || p.status === "running" ||
      (p.status === "paused" && p.done < p.total);
  }

  function finished() {
    // The buttons were drawn for a campaign still sending; the reload draws the right ones.
    var actions = one("actions");
    if (actions) actions.hidden = true;
    var offer = one("finished");
    offer.hidden = false;
    offer.querySelector("a").addEventListener("click", function (event) {
      event.preventDefault();
      window.location.reload();  // unlike following the link, keeps the scroll position
    });
  }

  function poll() {
    fetch(root.dataset.progressUrl, {headers: {Accept: "application/json"}, cache: "no-store"})
      .then(function (answer) {
        // Logged out (the login page answers) or the campaign is gone: leave the page be.
        if (answer.redirected || (answer.status >= 400 && answer.status < 500)) return null;
        if (!answer.ok) throw new Error("progress: " + answer.status);
        return answer.json();
      })
      .then(function (p) {
        if (!p) return;
        show(p);
        if (live(p)) setTimeout(poll, EVERY_MS);
        else if (FINAL.indexOf(p.status) >= 0) finished();
      })
      .catch(function () { setTimeout(poll, EVERY_MS * 4); });  // a blip: try again, slower
  }

  setTimeout(poll, EVERY_MS);  // the page itself is the first reading
})();
