// The letter editor's live preview: the unsaved subject, HTML and text are posted (with the
// form's CSRF token) a moment after the last keystroke and rendered in a sandboxed frame.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var form = document.getElementById("editor");
  if (!live || !form) return;
  var frame = live.querySelector("iframe.live-preview");
  var box = live.querySelector(".frame-box");
  var state = document.getElementById("live-state");
  var errorBox = document.getElementById("live-error");
  var subject = document.getElementById("live-subject");
  var search = document.getElementById("recipient-search");
  var contactSelect = document.getElementById("recipient-contact");
  var contractSelect = document.getElementById("recipient-contract");
  var testSend = document.getElementById("test-send");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  // The same policy as the saved version's preview: no script, nothing fetched.
  var CSP = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; ' +
    'style-src \'unsafe-inline\'; img-src data:">';
  var DARK = '<style>:root{color-scheme:dark}</style>';
  var timer = null, sent = 0, shown = 0, lastHtml = "", scheme = "light", contacts = {};

  function frameDoc(html) {
    var extra = CSP;
    if (scheme === "dark") {
      // A frame cannot be told the reader prefers dark: the letter's dark rules are
      // switched on instead, as a dark-mode mail app would.
      html = html.replace(/@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)/gi, "@media all");
      extra += DARK;
    }
    if (/<head[^>]*>/i.test(html)) return html.replace(/<head[^>]*>/i, function (m) { return m + extra; });
    return extra + html;
  }

  function showError(data) {
    var where = data.line ? " (" + (data.field || "html") + ", line " + data.line + ")" : "";
    errorBox.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = "Cannot render" + where + ": ";
    errorBox.appendChild(strong);
    errorBox.appendChild(document.createTextNode(data.error));
    errorBox.hidden = false;
    state.textContent = "error, the preview shows the last letter that rendered";
    var area = form.querySelector("[name=" + (data.field === "layout" ? "html" : data.field || "html") + "]");
    if (area) area.setAttribute("aria-invalid", "true");
  }

  function clearError() {
    errorBox.hidden = true;
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  function render() {
    var body = new FormData(form);
    body.append("contact_id", contactSelect.value);
    body.append("contract_id", contractSelect.value);
    var mine = ++sent;
    state.textContent = "rendering…";
    fetch(live.dataset.previewUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": csrf, "Accept": "application/json"}
    }).then(function (answer) {
      return answer.json().catch(function () {
        return {ok: false, error: "the server answered " + answer.status};
      });
    }).then(function (data) {
      if (mine < shown) return; // a later answer is already on screen
      shown = mine;
      if (!data.ok) { showError(data); return; }
      clearError();
      subject.textContent = data.subject;
      lastHtml = data.html;
      frame.srcdoc = frameDoc(lastHtml);
      state.textContent = "as you type, not saved";
    }).catch(function () {
      state.textContent = "offline: the preview could not be updated";
    });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(render, 350);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);

  live.querySelectorAll("button.toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      var group = button.dataset.width ? "width" : "scheme";
      live.querySelectorAll("button.toggle[data-" + group + "]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === button));
      });
      if (group === "width") box.dataset.width = button.dataset.width;
      else {
        scheme = button.dataset.scheme;
        box.dataset.scheme = scheme;
        if (lastHtml) frame.srcdoc = frameDoc(lastHtml);
      }
    });
  });

  function syncTestSend() {
    if (!testSend) return;
    testSend.querySelector("input[name=contact_id]").value = contactSelect.value;
    testSend.querySelector("input[name=contract_id]").value = contractSelect.value;
  }

  function fillContracts() {
    var chosen = contacts[contactSelect.value];
    contractSelect.textContent = "";
    var none = new Option("No contract", "");
    contractSelect.appendChild(none);
    (chosen ? chosen.contracts : []).forEach(function (c, i) {
      var option = new Option(c.label, c.id);
      if (i === 0) option.selected = true;
      contractSelect.appendChild(option);
    });
    contractSelect.disabled = !chosen;
  }

  var searchTimer = null;
  search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      var q = search.value.trim();
      if (q.length < 2) return;
      fetch(live.dataset.searchUrl + "?q=" + encodeURIComponent(q), {
        credentials: "same-origin", headers: {"Accept": "application/json"}
      }).then(function (r) { return r.json(); }).then(function (data) {
        var keep = contactSelect.value;
        contactSelect.textContent = "";
        contactSelect.appendChild(new Option("Sample recipient", ""));
        contacts = {};
        data.contacts.forEach(function (c) {
          contacts[c.id] = c;
          contactSelect.appendChild(new Option(c.email + (c.name && c.name !== c.email ? " (" + c.name + ")" : ""), c.id));
        });
        if (data.contacts.length && !contacts[keep]) contactSelect.value = String(data.contacts[0].id);
        else contactSelect.value = contacts[keep] ? keep : "";
        fillContracts();
        syncTestSend();
        render();
      });
    }, 300);
  });
  contactSelect.addEventListener("change", function () { fillContracts(); syncTestSend(); render(); });
  contractSelect.addEventListener("change", function () { syncTestSend(); render(); });

  render();
})();
