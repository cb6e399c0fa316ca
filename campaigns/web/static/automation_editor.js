// The automation editor's step rows: "Add step" and "Remove" change the rows in the page
// instead of asking the server, and each row's unit follows the trigger ("days before the
// end"). Without this script the same buttons post the form and the server redraws it.
(function () {
  "use strict";
  var form = document.getElementById("automation-form");
  var rows = form && form.querySelector("[data-step-rows]");
  var template = document.getElementById("step-row-template");
  var trigger = document.getElementById("trigger");
  if (!rows || !template || !trigger || !template.content) return;

  function unit() {
    return trigger.options[trigger.selectedIndex].getAttribute("data-unit") || "days";
  }

  // Keep each row's number in its labels and its Remove button's value (the server's
  // fallback counts rows by it).
  function renumber() {
    Array.prototype.forEach.call(rows.children, function (row, i) {
      var n = i + 1;
      row.querySelector("input[name=step_days]").setAttribute("aria-label", "Step " + n + ": days");
      row.querySelector("select[name=step_version]").setAttribute("aria-label", "Step " + n + ": letter version");
      var remove = row.querySelector("button[name=remove_step]");
      if (remove) {
        remove.value = String(i);
        remove.setAttribute("aria-label", "Remove step " + n);
      }
      row.querySelector("[data-step-unit]").textContent = unit();
    });
  }

  function add() {
    var row = template.content.firstElementChild.cloneNode(true);
    rows.appendChild(row);
    renumber();
    row.querySelector("input[name=step_days]").focus();
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !form.contains(button)) return;
    if (button.name === "add_step") {
      event.preventDefault();
      add();
    } else if (button.name === "remove_step") {
      event.preventDefault();
      var row = button.closest(".step-row");
      var next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      if (!rows.children.length) add();
      else {
        renumber();
        var focus = next && next.querySelector("button[name=remove_step]");
        if (focus) focus.focus();
      }
    }
  });
  trigger.addEventListener("change", renumber);
})();
