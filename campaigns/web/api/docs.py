"""The OpenAPI document (made by spectree from the views and their pydantic models) and a
browsable page rendered from it on the server: no script, no asset from a CDN."""

from __future__ import annotations

import copy
import json
from typing import Any

from flask import Response, current_app, render_template_string

from campaigns.web.api import bp, problems, spec


def document() -> dict[str, Any]:
    """The OpenAPI document of API v1, built once per app from the routes and models."""
    cached = current_app.extensions.setdefault("campaigns_api_document", {})
    if "document" not in cached:
        # spectree documents every response as application/json; problem details have their
        # own media type (RFC 9457), and the document says so.
        found = copy.deepcopy(spec.spec)
        for operations in found["paths"].values():
            for operation in operations.values():
                for code, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if int(code) >= 400 and "application/json" in content:
                        content[problems.MEDIA_TYPE] = content.pop("application/json")
        cached["document"] = found
    document: dict[str, Any] = cached["document"]
    return document


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(json.dumps(document(), indent=1), mimetype="application/json")


@bp.get("/docs")
def docs() -> str:
    doc = document()
    schemas = doc.get("components", {}).get("schemas", {})
    return render_template_string(
        PAGE,
        doc=doc,
        kinds=problems.KINDS,
        schemas={name: json.dumps(value, indent=2) for name, value in sorted(schemas.items())},
        ref=lambda body: (body or {}).get("$ref", "").rsplit("/", 1)[-1],
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ doc.info.title }} {{ doc.info.version }}</title>
<style>
 body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
        padding: 0 1rem; color: #1b1f24; }
 code, pre { font: 13px ui-monospace, monospace; background: #f3f4f6; }
 code { overflow-wrap: anywhere; }
 pre { padding: .6rem; overflow-x: auto; }
 .op { border-top: 1px solid #d0d7de; padding: .5rem 0; }
 .method { display: inline-block; min-width: 4.5rem; font-weight: bold; }
 table { border-collapse: collapse; display: block; overflow-x: auto; }
 td, th { text-align: left; padding: .15rem .6rem; }
</style></head><body>
<h1>{{ doc.info.title }} <small>{{ doc.info.version }}</small></h1>
<p>{{ doc.info.description }}</p>
<p>Machine-readable: <a href="{{ url_for('api.openapi') }}">openapi.json</a>
 (OpenAPI {{ doc.openapi }}).</p>
<h2>Operations</h2>
{% for path, operations in doc.paths.items() %}{% for method, op in operations.items() %}
<div class="op" id="{{ op.operationId }}">
 <h3><span class="method">{{ method|upper }}</span> <code>{{ path }}</code></h3>
 <p><strong>{{ op.summary }}</strong></p>
 {% if op.description %}<p>{{ op.description }}</p>{% endif %}
 {% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>
 {% for p in op.parameters %}<tr>
  <td><code>{{ p.name }}</code>{% if p.required %} *{% endif %}</td><td>{{ p["in"] }}</td>
  <td><code>{{ p.schema|tojson }}</code></td></tr>{% endfor %}</table>{% endif %}
 {% if op.requestBody %}<p>Body: {% for media, body in op.requestBody.content.items() %}
  <code>{{ media }}</code> <a href="#schema-{{ ref(body.schema) }}">{{ ref(body.schema) }}</a>
  {% endfor %}</p>{% endif %}
 <ul>{% for code, answer in op.responses.items() %}<li><code>{{ code }}</code>
  {{ answer.description }}{% for media, body in (answer.content or {}).items() %}:
  <code>{{ media }}</code> <a href="#schema-{{ ref(body.schema) }}">{{ ref(body.schema) }}</a>
  {% endfor %}</li>{% endfor %}</ul>
</div>{% endfor %}{% endfor %}
<h2>Problem types</h2>
<table>{% for status, (slug, title) in kinds.items() %}
<tr id="problem-{{ slug }}"><td><code>{{ status }}</code></td><td><code>{{ slug }}</code></td>
<td>{{ title }}</td></tr>{% endfor %}</table>
<h2>Schemas</h2>
{% for name, text in schemas.items() %}<h3 id="schema-{{ name }}">{{ name }}</h3>
<pre>{{ text }}</pre>{% endfor %}
</body></html>
"""
