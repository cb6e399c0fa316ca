"""The support side's admin pages: the service settings (fee, packages, policy text) and
the service report, which puts points, incidents, satisfaction and retention side by side."""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from campaigns.models import Role
from campaigns.service import settings as service_settings
from campaigns.web.auth import requires
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("service", __name__)
PACKAGE_FIELD = re.compile(r"packages-(\d+)-(name|points|price)")
BLANK_ROWS = 3  # blank package rows a form without JavaScript offers


@bp.route("/settings/service")
@requires(Role.VIEWER)
def settings_page() -> str:
    return _settings_page()


@bp.route("/settings/service", methods=["POST"])
@requires(Role.ADMIN)
def settings_save() -> Response | tuple[str, int]:
    rows = _package_rows(request.form)
    try:
        with unit_of_work() as s:
            service_settings.update(
                s, incident_fee=request.form.get("incident_fee", ""),
                currency=request.form.get("currency", ""), packages=rows,
                policy_text=request.form.get("policy_text", ""), user_id=g.user["id"],
            )  # fmt: skip
    except service_settings.SettingsRefused as exc:
        return _settings_page(form=request.form, rows=rows, errors=exc.errors), 400
    flash("Service settings saved: letters sent from now on quote them.", "success")
    return redirect(url_for("service.settings_page"))


def _package_rows(form: MultiDict[str, str]) -> list[dict[str, str]]:
    """The package rows of the form in their order (the numbers may have gaps: rows the
    page's script removed or added), leaving out the rows ticked for removal."""
    found: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        match = PACKAGE_FIELD.fullmatch(key)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = value
    return [found[n] for n in sorted(found) if not form.get(f"packages-{n}-remove")]


def _settings_page(
    *, form: Mapping[str, str] | None = None, rows: list[dict[str, str]] | None = None,
    errors: dict[str, str] | None = None,
) -> str:  # fmt: skip
    company = settings().company
    with unit_of_work() as s:
        terms = service_settings.read(s, default_currency=company.currency)
    if rows is None:
        rows = [{"name": p.name, "points": str(p.points), "price": f"{p.price:.2f}"}
                for p in terms.packages]  # fmt: skip
    blank = max(0, min(BLANK_ROWS, service_settings.MAX_PACKAGES - len(rows)))
    values = dict(form) if form is not None else {
        "incident_fee": f"{terms.incident_fee:.2f}" if terms.incident_fee is not None else "",
        "currency": terms.currency, "policy_text": terms.policy_text,
    }  # fmt: skip
    return render_template(
        "admin/service_settings.html", terms=terms, values=values,
        rows=rows + [{} for _ in range(blank)], errors=errors or {}, company=company,
        max_packages=service_settings.MAX_PACKAGES, limits=service_settings,
    )  # fmt: skip
