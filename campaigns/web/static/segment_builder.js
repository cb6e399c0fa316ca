// The segment builder: draws the rule tree held in #rules-json as groups and conditions the
// user picks from lists, keeps the hidden field in step, and asks /segments/preview for the
// live count and sample whenever the rules change. No JSON is ever typed by the user.
(function () {
  "use strict";
  var root = document.getElementById("builder");
  var hidden = document.getElementById("rules-json");
  var form = document.getElementById("segment-form");
  if (!root || !hidden || !form) return;
  var cat = JSON.parse(document.getElementById("builder-catalogue").textContent);
  var readonly = root.dataset.readonly === "1";
  var tree;
  try { tree = JSON.parse(hidden.value || "{}"); } catch (e) { tree = {}; }
  if (!tree || typeof tree !== "object" || !Array.isArray(tree.conditions)) {
    tree = {match: "all", conditions: []};
  }
  var errorField = (document.getElementById("save-error") || {dataset: {}}).dataset.errorField || "";
  var fields = {};
  cat.fields.forEach(function (f) { fields[f.name] = f; });

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "on") Object.keys(attrs.on).forEach(function (ev) { node.addEventListener(ev, attrs.on[ev]); });
      else if (attrs[k] !== undefined && attrs[k] !== null && attrs[k] !== false) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    if (readonly && /^(INPUT|SELECT|BUTTON)$/.test(tag.toUpperCase())) node.disabled = true;
    return node;
  }

  function select(options, value, label, onchange) {
    var s = el("select", {"aria-label": label, on: {change: onchange}});
    options.forEach(function (o) {
      if (o.group) {
        var g = el("optgroup", {label: o.group});
        o.options.forEach(function (p) { g.appendChild(el("option", {value: p[0], text: p[1]})); });
        s.appendChild(g);
      } else {
        s.appendChild(el("option", {value: o[0], text: o[1]}));
      }
    });
    s.value = value === undefined || value === null ? "" : String(value);
    return s;
  }

  // -- what a condition is about --------------------------------------------------------------
  function subjectOf(c) {
    if (c.conditions) return "group";
    if (c.aggregate) return "aggregate:" + c.aggregate;
    if (c.engagement) return "engagement:" + c.engagement;
    if ("segment" in c) return "segment";
    if (typeof c.field === "string" && c.field.indexOf(".attributes.") > 0) return c.field.split(".")[0] + ".attributes";
    return "field:" + (c.field || "");
  }

  function subjectOptions() {
    var contact = [], contract = [];
    cat.fields.forEach(function (f) {
      (f.scope === "contact" ? contact : contract).push(["field:" + f.name, f.label]);
    });
    contact.push(["contact.attributes", "Custom attribute of the contact…"]);
    contract.push(["contract.attributes", "Custom attribute of the contract…"]);
    var totals = Object.keys(cat.aggregates).map(function (k) { return ["aggregate:" + k, cat.aggregates[k]]; });
    var letters = Object.keys(cat.engagements).map(function (k) { return ["engagement:" + k, cat.engagements[k] + "…"]; });
    var groups = [{group: "Contact", options: contact}, {group: "Contract", options: contract},
                  {group: "Totals", options: totals}, {group: "Letters and renewals", options: letters}];
    if (cat.segments.length) groups.push({group: "Other segments", options: [["segment", "Is in the segment…"]]});
    return groups;
  }

  function fresh(subject) {
    if (subject.indexOf("field:") === 0) {
      var f = fields[subject.slice(6)];
      var op = cat.ops_by_kind[f.kind][0];
      return {field: f.name, op: op, value: f.kind === "choice" ? f.choices[0] : ""};
    }
    if (subject === "contact.attributes" || subject === "contract.attributes") {
      return {field: subject + ".", type: "text", op: "eq", value: ""};
    }
    if (subject.indexOf("aggregate:") === 0) return {aggregate: subject.slice(10), op: "gte", value: 1};
    if (subject.indexOf("engagement:") === 0) return {engagement: subject.slice(11), days: 30, at_least: 1};
    return {segment: cat.segments.length ? cat.segments[0].id : 0};
  }

  function kindOf(c) {
    if (c.aggregate) return "number";
    if (c.type) return c.type;
    return (fields[c.field] || {kind: "text"}).kind;
  }

  // -- values ---------------------------------------------------------------------------------
  function parse(raw, kind) {
    if (kind === "number") { var n = Number(raw); return raw === "" || isNaN(n) ? raw : n; }
    if (kind === "bool") return raw === "true";
    return raw;
  }

  function scalarInput(c, kind, value, label, set) {
    if (kind === "choice") {
      var f = fields[c.field];
      return select(f.choices.map(function (x) { return [x, x]; }), value, label, function (e) { set(e.target.value); });
    }
    if (kind === "bool") {
      return select([["true", "yes (true)"], ["false", "no (false)"]], value === false ? "false" : "true", label,
        function (e) { set(parse(e.target.value, "bool")); });
    }
    var type = kind === "number" ? "number" : kind === "date" ? "date" : "text";
    if (value && typeof value === "object") value = "";  // {days_from_today}: shown as empty
    return el("input", {type: type, value: value === undefined || value === null ? "" : value, "aria-label": label,
      step: kind === "number" ? "any" : null, placeholder: kind === "text" ? "value" : null,
      on: {input: function (e) { set(parse(e.target.value, kind)); }}});
  }

  function valueInputs(c, shape, kind, changed) {
    var box = el("span", {"class": "value"});
    function setAt(i) { return function (v) { c.value[i] = v; changed(); }; }
    if (shape === "none") return null;
    if (shape === "one") {
      box.appendChild(scalarInput(c, kind, c.value, "Value", function (v) { c.value = v; changed(); }));
    } else if (shape === "list") {
      var shown = Array.isArray(c.value) ? c.value.join(", ") : "";
      box.appendChild(el("input", {type: "text", value: shown, "aria-label": "Values, separated by commas",
        placeholder: "one, another", on: {input: function (e) {
          c.value = e.target.value.split(",").map(function (x) { return parse(x.trim(), kind); })
            .filter(function (x) { return x !== ""; });
          changed();
        }}}));
    } else if (shape === "pair") {
      if (!Array.isArray(c.value)) c.value = ["", ""];
      box.appendChild(scalarInput(c, kind, c.value[0], "From", setAt(0)));
      box.appendChild(el("span", {"class": "muted", text: "and"}));
      box.appendChild(scalarInput(c, kind, c.value[1], "To", setAt(1)));
    } else if (shape === "days" || shape === "years") {
      box.appendChild(el("input", {type: "number", min: 0, step: 1, value: typeof c.value === "number" ? c.value : "",
        "aria-label": shape === "days" ? "Number of days" : "Number of years", "class": "short",
        on: {input: function (e) { c.value = parse(e.target.value, "number"); changed(); }}}));
      box.appendChild(el("span", {"class": "muted", text: shape}));
    } else if (shape === "days_pair") {
      if (!Array.isArray(c.value)) c.value = [0, 30];
      [0, 1].forEach(function (i) {
        box.appendChild(el("input", {type: "number", min: 0, step: 1, value: c.value[i], "class": "short",
          "aria-label": i ? "At most days" : "At least days",
          on: {input: function (e) { c.value[i] = parse(e.target.value, "number"); changed(); }}}));
        box.appendChild(el("span", {"class": "muted", text: i ? "days" : "and"}));
      });
    }
    return box;
  }

  // -- drawing --------------------------------------------------------------------------------
  function conditionRow(parent, index, path) {
    var c = parent.conditions[index];
    var row = el("li", {"class": "condition", "data-path": path});
    function changed() { update(); }
    function redraw() { draw(); update(); }
    var subject = select(subjectOptions(), subjectOf(c), "Condition on", function (e) {
      parent.conditions[index] = fresh(e.target.value);
      redraw();
    });
    var parts = [subject];
    if (c.field !== undefined) {
      if (c.field.indexOf(".attributes.") > 0) {
        var prefix = c.field.split(".attributes.")[0] + ".attributes.";
        parts.push(el("input", {type: "text", value: c.field.slice(prefix.length), placeholder: "attribute name",
          "aria-label": "Attribute name", "class": "attr-name",
          on: {input: function (e) { c.field = prefix + e.target.value.trim(); changed(); }}}));
        parts.push(select(cat.attribute_types.map(function (t) { return [t, t]; }), c.type, "Attribute type",
          function (e) { c.type = e.target.value; c.op = "eq"; c.value = e.target.value === "bool" ? true : ""; redraw(); }));
      }
      var kind = kindOf(c);
      var ops = cat.ops_by_kind[kind] || [];
      parts.push(select(ops.map(function (o) { return [o, cat.operators[o].label]; }), c.op, "Operator", function (e) {
        var before = (cat.operators[c.op] || {}).shape;
        c.op = e.target.value;
        var after = cat.operators[c.op].shape;
        if (after !== before) {
          c.value = {none: undefined, list: [], pair: ["", ""], days: 30, years: 5, days_pair: [0, 30]}[after];
          if (after === "one") c.value = kind === "choice" ? fields[c.field].choices[0] : kind === "bool" ? true : "";
        }
        redraw();
      }));
      parts.push(valueInputs(c, (cat.operators[c.op] || {shape: "one"}).shape, kind, changed));
    } else if (c.aggregate) {
      parts.push(select(cat.aggregate_ops.map(function (o) { return [o, cat.operators[o].label]; }), c.op, "Operator",
        function (e) { c.op = e.target.value; c.value = c.op === "between" ? [0, 1] : (Array.isArray(c.value) ? 1 : c.value); redraw(); }));
      parts.push(valueInputs(c, c.op === "between" ? "pair" : "one", "number", changed));
    } else if (c.engagement) {
      if (c.engagement !== "renewed") {
        var which = c.letter_id ? "letter:" + c.letter_id : c.letter_kind ? "kind:" + c.letter_kind
          : c.letter_category ? "category:" + c.letter_category : "";
        var options = [["", "any letter"]];
        options.push({group: "The letter", options: cat.letters.map(function (l) { return ["letter:" + l.id, l.name]; })});
        options.push({group: "Any letter of kind", options: cat.letter_kinds.map(function (k) { return ["kind:" + k, k + " letter"]; })});
        options.push({group: "Any letter of category", options: cat.letter_categories.map(function (k) { return ["category:" + k, k + " letter"]; })});
        parts.push(select(options, which, "Which letter", function (e) {
          delete c.letter_id; delete c.letter_kind; delete c.letter_category;
          var v = e.target.value.split(":");
          if (v[0] === "letter") c.letter_id = Number(v[1]);
          if (v[0] === "kind") c.letter_kind = v[1];
          if (v[0] === "category") c.letter_category = v[1];
          changed();
        }));
      }
      parts.push(el("span", {"class": "muted", text: "at least"}));
      parts.push(el("input", {type: "number", min: 1, step: 1, value: c.at_least || 1, "class": "short",
        "aria-label": "At least how many times", on: {input: function (e) { c.at_least = parse(e.target.value, "number"); changed(); }}}));
      parts.push(el("span", {"class": "muted", text: "time(s) in the last"}));
      parts.push(el("input", {type: "number", min: 1, step: 1, value: c.days, "class": "short", "aria-label": "Days",
        on: {input: function (e) { c.days = parse(e.target.value, "number"); changed(); }}}));
      parts.push(el("span", {"class": "muted", text: "days"}));
    } else if ("segment" in c) {
      parts.push(select(cat.segments.map(function (s) { return [s.id, s.name]; }), c.segment, "Segment",
        function (e) { c.segment = Number(e.target.value); changed(); }));
    }
    var line = el("div", {"class": "condition-line"}, parts);
    row.appendChild(line);
    if (!readonly) {
      row.appendChild(el("button", {type: "button", "class": "remove outline secondary", "aria-label": "Remove this condition",
        title: "Remove this condition", text: "✕", on: {click: function () { parent.conditions.splice(index, 1); redraw(); }}}));
    }
    row.appendChild(el("small", {"class": "condition-error", role: "alert", hidden: true}));
    return row;
  }

  var MATCH = [["all", "All of these"], ["any", "Any of these"], ["none", "None of these"]];

  function groupBox(group, path, parent, index) {
    var box = el("fieldset", {"class": "group group-" + (group.match || "all"), "data-path": path});
    var head = el("div", {"class": "group-head"}, [
      select(MATCH, group.match || "all", "How the conditions combine", function (e) { group.match = e.target.value; draw(); update(); }),
      el("span", {"class": "muted", text: group.conditions.length ? "are true" : "— add a condition"}),
    ]);
    if (parent && !readonly) {
      head.appendChild(el("button", {type: "button", "class": "remove outline secondary", text: "Remove group",
        on: {click: function () { parent.conditions.splice(index, 1); draw(); update(); }}}));
    }
    box.appendChild(head);
    var list = el("ol", {"class": "conditions"});
    group.conditions.forEach(function (c, i) {
      var here = path + ".conditions[" + i + "]";
      if (c && c.conditions) list.appendChild(el("li", {"class": "nested"}, [groupBox(c, here, group, i)]));
      else list.appendChild(conditionRow(group, i, here));
    });
    box.appendChild(list);
    box.appendChild(el("small", {"class": "condition-error", role: "alert", hidden: true}));
    if (!readonly) {
      box.appendChild(el("div", {"class": "group-actions"}, [
        el("button", {type: "button", "class": "outline", text: "+ Condition", on: {click: function () {
          group.conditions.push(fresh("field:contract.ends_on")); draw(); update();
        }}}),
        path.split("conditions").length < 6 ? el("button", {type: "button", "class": "outline secondary", text: "+ Group",
          on: {click: function () { group.conditions.push({match: "any", conditions: [fresh("field:contract.status")]}); draw(); update(); }}}) : null,
      ]));
    }
    return box;
  }

  function draw() {
    root.textContent = "";
    root.appendChild(groupBox(tree, "rules", null, 0));
    if (errorField) showError(errorField, (document.getElementById("save-error") || {}).textContent || "");
  }

  // -- errors and the live preview ------------------------------------------------------------
  function showError(field, message) {
    Array.prototype.forEach.call(root.querySelectorAll(".invalid"), function (n) { n.classList.remove("invalid"); });
    Array.prototype.forEach.call(root.querySelectorAll(".condition-error"), function (n) { n.hidden = true; });
    if (!field) return;
    // The deepest condition or group whose place starts the error's place.
    var best = null;
    Array.prototype.forEach.call(root.querySelectorAll("[data-path]"), function (n) {
      var p = n.dataset.path;
      if ((field === p || field.indexOf(p + ".") === 0 || field.indexOf(p + "[") === 0) &&
          (!best || p.length > best.dataset.path.length)) best = n;
    });
    if (!best) return;
    best.classList.add("invalid");
    var note = best.querySelector(":scope > .condition-error");
    // The box itself shows the place: say only what is wrong.
    if (note) { note.textContent = message.replace(/^Not saved: /, "").replace(/^rules[^ ]*: /, ""); note.hidden = false; }
  }

  var count = document.getElementById("preview-count");
  var unit = document.getElementById("preview-unit");
  var busy = document.getElementById("preview-busy");
  var problem = document.getElementById("preview-error");
  var sample = document.getElementById("preview-sample");
  var note = document.getElementById("preview-note");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var timer = null, asked = 0;

  function target() {
    var checked = form.querySelector("input[name=target]:checked");
    return checked ? checked.value : "contacts";
  }

  function update() {
    hidden.value = JSON.stringify(tree);
    errorField = "";
    clearTimeout(timer);
    timer = setTimeout(preview, 350);
  }

  function preview() {
    var mine = ++asked;
    busy.hidden = false;
    var segmentId = root.dataset.segmentId ? Number(root.dataset.segmentId) : null;
    fetch(root.dataset.previewUrl, {method: "POST", cache: "no-store", headers: {
      "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify({rules: tree, target: target(), segment_id: segmentId})})
      .then(function (answer) { return answer.json(); })
      .then(function (p) {
        if (mine !== asked) return;  // an older answer arriving late
        busy.hidden = true;
        unit.textContent = target();
        if (!p.ok) {
          problem.textContent = p.error;
          problem.hidden = false;
          count.textContent = "—";
          showError(p.field || "", p.error);
          return;
        }
        problem.hidden = true;
        showError("", "");
        count.textContent = p.count.toLocaleString();
        drawSample(p.sample, p.count);
      })
      .catch(function () { busy.hidden = true; });
  }

  function drawSample(rows, total) {
    var body = sample.tBodies[0];
    body.textContent = "";
    rows.forEach(function (r) {
      var who = el("td", {}, [el("a", {href: r.url, text: r.email})]);
      if (r.contract) {
        who.appendChild(el("br"));
        who.appendChild(el("small", {"class": "muted", text: r.contract.product + (r.contract.plan ? " · " + r.contract.plan : "") + " · ends " + r.contract.ends_on}));
      }
      var state = r.contract ? r.contract.status : r.status;
      body.appendChild(el("tr", {}, [who, el("td", {}, [el("span", {"class": "badge badge-" + state, text: state})])]));
    });
    if (!rows.length) body.appendChild(el("tr", {}, [el("td", {colspan: 2, "class": "empty", text: "Nothing matches right now."})]));
    note.textContent = total > rows.length ? "The newest " + rows.length + " of " + total.toLocaleString() + "." : "";
  }

  Array.prototype.forEach.call(form.querySelectorAll("input[name=target]"), function (radio) {
    radio.addEventListener("change", function () {
      document.getElementById("semantics-contacts").hidden = target() !== "contacts";
      document.getElementById("semantics-contracts").hidden = target() !== "contracts";
      update();
    });
  });
  form.addEventListener("submit", function () { hidden.value = JSON.stringify(tree); });
  draw();
  hidden.value = JSON.stringify(tree);
  if (errorField || count.textContent.trim() === "…") preview();
})();
