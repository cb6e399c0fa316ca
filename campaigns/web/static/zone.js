// Times typed in a form are the user's own: say which zone the browser is in.
(function () {
  var name = "UTC";
  try { name = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* UTC */ }
  document.querySelectorAll("[data-browser-zone]").forEach(function (input) { input.value = name; });
  document.querySelectorAll("[data-browser-zone-name]").forEach(function (span) { span.textContent = name; });
})();
