// The report pages' charts: Chart.js (served from this site, /static/vendor/chart.umd.js)
// draws the figures the page carries as JSON in <script id="report-charts">. Without the
// library the page keeps its tables and says why the charts are missing.
(function () {
  "use strict";
  var source = document.getElementById("report-charts");
  if (!source) return;
  var data = JSON.parse(source.textContent);
  var canvases = document.querySelectorAll("canvas[data-chart]");
  if (!window.Chart) {
    canvases.forEach(function (canvas) {
      canvas.parentElement.hidden = true;
      var note = canvas.closest("figure").querySelector(".chart-missing");
      if (note) note.hidden = false;
    });
    return;
  }

  var BLUE = "#0f4c81", GREEN = "#15803d", AMBER = "#d97706", PURPLE = "#7c3aed", GREY = "#9ca3af";
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;

  function line(label, values, colour, extra) {
    return Object.assign({
      label: label, data: values, borderColor: colour, backgroundColor: colour,
      borderWidth: 2, pointRadius: values.length > 40 ? 0 : 3, tension: 0.2,
    }, extra || {});
  }

  // "2026-08-16" as "16 Aug" (the reader's language), for a time axis that stays legible.
  function shortDay(iso) {
    var date = new Date(iso + "T00:00:00Z");
    return date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
  }

  // A step's label ["60 days before the end", "Expiry series"] in lines of about 16
  // characters, so that every step's name fits under its bars, on a phone too.
  function wrap(parts) {
    var lines = [];
    parts.forEach(function (part) {
      var line = "";
      String(part).split(" ").forEach(function (word) {
        if (line && (line + " " + word).length > 16) { lines.push(line); line = word; }
        else { line = line ? line + " " + word : word; }
      });
      if (line) lines.push(line);
    });
    return lines;
  }

  var build = {
    activity: function (d) {
      return {
        type: "line",
        data: {
          labels: d.days,
          datasets: [
            line("Sent", d.sent, BLUE),
            line("Opened (people)", d.opened, GREEN),
            line("Clicked (people)", d.clicked, AMBER),
            line("Renewed", d.renewed, PURPLE),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: { maxRotation: 0, autoSkipPadding: 16, callback: function (value) {
              return shortDay(this.getLabelForValue(value));
            } } },
            y: { beginAtZero: true, ticks: { precision: 0 } },
          },
        },
      };
    },
    steps: function (d) {
      return {
        type: "bar",
        data: {
          labels: d.labels.map(wrap),
          datasets: [
            { label: "Renewals", data: d.renewed, backgroundColor: BLUE, yAxisID: "y" },
            { label: "Revenue (" + d.currency + ")", data: d.revenue, backgroundColor: GREEN,
              yAxisID: "revenue" },
          ],
        },
        options: {
          scales: {
            x: { ticks: { maxRotation: 0, autoSkip: false } },
            y: { beginAtZero: true, grace: "10%", ticks: { precision: 0 },
                 title: { display: true, text: "Renewals" } },
            revenue: { beginAtZero: true, grace: "10%", position: "right",
                       grid: { drawOnChartArea: false },
                       title: { display: true, text: d.currency } },
          },
        },
      };
    },
    // Survey results: CSAT (%) and NPS per day or week (left, -100 to 100), the number of
    // ratings as bars (right).
    satisfaction: function (d) {
      return {
        type: "bar",
        data: {
          labels: d.periods,
          datasets: [
            line("CSAT (% rated 4–5)", d.csat, GREEN, { type: "line", yAxisID: "y", spanGaps: true, tension: 0 }),
            line("NPS", d.nps, BLUE, { type: "line", yAxisID: "y", spanGaps: true, tension: 0 }),
            { label: "Ratings", data: d.responses, backgroundColor: "rgba(156, 163, 175, 0.45)",
              yAxisID: "count", order: 3 },
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: { maxRotation: 0, autoSkipPadding: 16, callback: function (value) {
              var day = shortDay(this.getLabelForValue(value));
              return d.weekly ? "wk " + day : day;
            } } },
            y: { min: -100, max: 100, title: { display: true, text: "CSAT % · NPS" } },
            count: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                     ticks: { precision: 0 }, title: { display: true, text: "Ratings" } },
          },
        },
      };
    },
    curves: function (d) {
      var percent = function (value) { return value + " %"; };
      var sets = [line("Sent the letter", d.recipients || [], BLUE, { stepped: true, pointRadius: 0 })];
      if (d.held_out && d.held_out.length) {
        sets.push(line("Held out", d.held_out, GREY, { stepped: true, pointRadius: 0, borderDash: [6, 4] }));
      }
      return {
        type: "line",
        data: { labels: d.days, datasets: sets },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: { maxRotation: 0, autoSkipPadding: 12 },
                 title: { display: true, text: "Days after the letter" } },
            y: { beginAtZero: true, suggestedMax: 10, ticks: { callback: percent },
                 title: { display: true, text: "Renewed" } },
          },
          plugins: {
            legend: { labels: { usePointStyle: true, pointStyle: "line" } },
            tooltip: { callbacks: { label: function (item) {
              return item.dataset.label + ": " + item.formattedValue + " %";
            } } },
          },
        },
      };
    },
  };

  canvases.forEach(function (canvas) {
    var name = canvas.getAttribute("data-chart");
    if (!data[name] || !build[name]) return;
    new Chart(canvas, build[name](data[name]));
    canvas.setAttribute("data-drawn", "yes");
  });
})();
