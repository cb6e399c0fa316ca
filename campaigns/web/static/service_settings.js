// The service settings' package rows: "Remove" takes a row away at once and "Add a package"
// adds one, up to the most the form takes. Without this script the page offers a few blank
// rows and a Remove box per row, and the server reads the same fields either way.
(function () {
  "use strict";
  var box = document.querySelector("fieldset.packages");
  if (!box) return;
  var list = box.querySelector(".package-rows");
  var add = box.querySelector(".add-package");
  var most = parseInt(box.dataset.max, 10) || 10;
  var next = list.children.length;

  function blank(row) {
    return Array.prototype.every.call(row.querySelectorAll("input:not([type=checkbox])"),
      function (input) { return input.value.trim() === ""; });
  }

  function renumber() {
    Array.prototype.forEach.call(list.children, function (row, i) {
      row.querySelectorAll("input[aria-label]").forEach(function (input) {
        input.setAttribute("aria-label", input.getAttribute("aria-label").replace(/^Package \d+/, "Package " + (i + 1)));
      });
    });
    add.hidden = list.children.length >= most;
  }

  function removable(row) {
    var tick = row.querySelector("label.remove");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "outline secondary small remove-package";
    button.textContent = "Remove";
    button.addEventListener("click", function () {
      var focus = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      if (!list.children.length) addRow();
      renumber();
      (focus ? focus.querySelector("input") : add).focus();
    });
    tick.replaceWith(button);
  }

  function addRow() {
    var row = (list.firstElementChild || template).cloneNode(true);
    var n = next++;
    row.dataset.row = n;
    row.querySelectorAll("input").forEach(function (input) {
      input.name = input.name.replace(/^packages-\d+-/, "packages-" + n + "-");
      input.value = "";
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
    row.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
    var old = row.querySelector(".remove-package");
    if (old) old.replaceWith(template.querySelector("label.remove").cloneNode(true));
    list.appendChild(row);
    removable(row);
    return row;
  }

  var template = list.firstElementChild.cloneNode(true);
  Array.prototype.slice.call(list.children).forEach(function (row) {
    if (blank(row) && !row.querySelector(".field-error")) row.remove();
    else removable(row);
  });
  if (!list.children.length) addRow();
  add.addEventListener("click", function () {
    addRow().querySelector("input").focus();
    renumber();
  });
  renumber();
})();
