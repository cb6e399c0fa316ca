// The import page's live figures: poll /contacts/import/<id>/progress while a worker checks or
// imports, update the elements marked data-import-*, and reload when the job moves on (the
// report, or the next step, is drawn by the server). Without this script the page is as loaded.
(function () {
  "use strict";
  var root = document.querySelector("[data-import-progress-url]");
  if (!root || !window.fetch) return;
  var EVERY_MS = 1000;
  var WAIT_BEFORE_OFFERING_RETRY_MS = 15000;
  var loadedStatus = root.dataset.importStatus;
  var loadedDryRun = root.dataset.importDryRun === "yes";
  var since = Date.now();

  function one(name) { return root.querySelector("[data-import-" + name + "]"); }

  function pace(rate, eta) {
    if (!(rate > 0)) return "";
    var line = rate >= 10 ? Math.round(rate).toLocaleString() + " rows/s" : rate.toFixed(1) + " rows/s";
    if (eta === null) return "· " + line;
    var minutes = Math.ceil(eta / 60);
    return "· " + line + " · " + (eta < 60 ? "less than a minute left"
      : minutes < 120 ? "about " + minutes + " min left" : "about " + Math.round(minutes / 60) + " h left");
  }

  function show(p) {
    one("processed").textContent = p.processed.toLocaleString();
    one("total").textContent = p.total.toLocaleString();
    var bar = one("bar");
    bar.max = p.total || 1;
    if (p.phase === "writing") {
      // Every row is read; the one transaction that writes them has no figures to show.
      bar.removeAttribute("value");
      one("pace").textContent = "· every row read; writing them to the database…";
    } else {
      bar.value = p.processed;
      one("pace").textContent = pace(p.rate_per_second, p.eta_seconds);
    }
    var waiting = p.status === "pending" || (p.status === "checked" && !p.dry_run);
    var stale = waiting && Date.now() - since > WAIT_BEFORE_OFFERING_RETRY_MS;
    one("abandoned").hidden = !(p.abandoned || stale);
  }

  function movedOn(p) {
    return p.status !== loadedStatus || p.dry_run !== loadedDryRun;
  }

  function poll() {
    fetch(root.dataset.importProgressUrl, {headers: {Accept: "application/json"}, cache: "no-store"})
      .then(function (answer) {
        if (answer.redirected || (answer.status >= 400 && answer.status < 500)) return null;
        if (!answer.ok) throw new Error("progress: " + answer.status);
        return answer.json();
      })
      .then(function (p) {
        if (!p) return;
        if (movedOn(p)) { window.location.reload(); return; }
        show(p);
        setTimeout(poll, EVERY_MS);
      })
      .catch(function () { setTimeout(poll, EVERY_MS * 4); });
  }

  setTimeout(poll, EVERY_MS / 2);
})();
