"""The support side's admin pages: the service settings (fee, packages, policy text) and
the service report, which puts points, incidents, satisfaction and retention side by side."""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from campaigns.audience import segments
from campaigns.db import utcnow
from campaigns.delivery import scheduling
from campaigns.errors import ValidationError
from campaigns.models import Campaign, Role, Segment
from campaigns.service import reports
from campaigns.service import settings as service_settings
from campaigns.tracking import holdout, results, retention
from campaigns.web.auth import requires
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("service", __name__)
PACKAGE_FIELD = re.compile(r"packages-(\d+)-(name|points|price)")
TRANSLATION_FIELD = re.compile(r"policy-(\d+)-(locale|text)")
BLANK_ROWS = 3  # blank package rows a form without JavaScript offers
SCOPE = re.compile(r"(campaign|segment):(\d{1,12})")


@bp.route("/settings/service")
@requires(Role.VIEWER)
def settings_page() -> str:
    return _settings_page()


@bp.route("/settings/service", methods=["POST"])
@requires(Role.ADMIN)
def settings_save() -> Response | tuple[str, int]:
    rows = _package_rows(request.form)
    translated = _numbered_rows(request.form, TRANSLATION_FIELD)
    try:
        with unit_of_work() as s:
            service_settings.update(
                s, incident_fee=request.form.get("incident_fee", ""),
                currency=request.form.get("currency", ""), packages=rows,
                policy_text=request.form.get("policy_text", ""), user_id=g.user["id"],
                policy_translations=translated,
            )  # fmt: skip
    except service_settings.SettingsRefused as exc:
        return _settings_page(form=request.form, rows=rows, translated=translated,
                              errors=exc.errors), 400  # fmt: skip
    flash("Service settings saved: letters sent from now on quote them.", "success")
    return redirect(url_for("service.settings_page"))


def _package_rows(form: MultiDict[str, str]) -> list[dict[str, str]]:
    """The package rows of the form in their order (the numbers may have gaps: rows the
    page's script removed or added), leaving out the rows ticked for removal."""
    found = _numbered(form, PACKAGE_FIELD)
    return [found[n] for n in sorted(found) if not form.get(f"packages-{n}-remove")]


def _numbered_rows(form: MultiDict[str, str], pattern: re.Pattern[str]) -> list[dict[str, str]]:
    found = _numbered(form, pattern)
    return [found[n] for n in sorted(found)]


def _numbered(form: MultiDict[str, str], pattern: re.Pattern[str]) -> dict[int, dict[str, str]]:
    """The form's fields named `<what>-<n>-<field>`, row by row number."""
    found: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        match = pattern.fullmatch(key)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = value
    return found


def _settings_page(
    *, form: Mapping[str, str] | None = None, rows: list[dict[str, str]] | None = None,
    translated: list[dict[str, str]] | None = None, errors: dict[str, str] | None = None,
) -> str:  # fmt: skip
    company = settings().company
    with unit_of_work() as s:
        terms = service_settings.read(s, default_currency=company.currency)
    if rows is None:
        rows = [{"name": p.name, "points": str(p.points), "price": f"{p.price:.2f}"}
                for p in terms.packages]  # fmt: skip
    blank = max(0, min(BLANK_ROWS, service_settings.MAX_PACKAGES - len(rows)))
    if translated is None:
        translated = [{"locale": code, "text": text}
                      for code, text in sorted(terms.policy_translations.items())]  # fmt: skip
    translated = [row for row in translated if any(v.strip() for v in row.values())]
    if len(translated) < service_settings.MAX_TRANSLATIONS:
        translated = [*translated, {}]  # one blank row to add a language
    values = dict(form) if form is not None else {
        "incident_fee": f"{terms.incident_fee:.2f}" if terms.incident_fee is not None else "",
        "currency": terms.currency, "policy_text": terms.policy_text,
    }  # fmt: skip
    return render_template(
        "admin/service_settings.html", terms=terms, values=values,
        rows=rows + [{} for _ in range(blank)], translated=translated, errors=errors or {},
        company=company,
        max_packages=service_settings.MAX_PACKAGES, limits=service_settings,
    )  # fmt: skip


@bp.route("/reports/service")
@requires(Role.VIEWER)
def service_report() -> str:
    """One campaign's or segment's customers, sent the letter against held out: the holdout
    comparison and retention (tracking) beside points, incidents and ratings (service)."""
    config = settings().results
    with unit_of_work() as s:
        scope = _scope(request.args) or reports.Scope(campaign_id=reports.latest_policy_campaign(s))
        chooser = {"campaigns": scheduling.list_campaigns(s), "segments": segments.list_segments(s)}
        subject: Campaign | Segment
        if scope.campaign_id is not None:
            subject = scheduling.get_campaign(s, scope.campaign_id)
        elif scope.segment_id is not None:
            subject = segments.get_segment(s, scope.segment_id)
        else:
            return render_template("admin/service_report.html", scope=None, **chooser)
        filters = results.Filters(campaign_id=scope.campaign_id, segment_id=scope.segment_id)
        renewals = results.report(s, "segment", filters)
        return render_template(
            "admin/service_report.html", scope=scope, subject=subject, report=renewals,
            figures=reports.report(s, scope), now=utcnow(),
            comparison=holdout.compare(renewals.total, currency=config.currency,
                                       rates=config.rates),
            retention=retention.retention(s, campaign_id=scope.campaign_id,
                                          segment_id=scope.segment_id),
            attribution_days=config.attribution_days, **chooser,
        )  # fmt: skip


def _scope(args: Mapping[str, str]) -> reports.Scope | None:
    """The campaign or segment asked for (`?scope=campaign:3`, or `campaign_id=3`)."""
    raw = args.get("scope", "").strip()
    for name in ("campaign", "segment"):
        if not raw and args.get(f"{name}_id", "").strip():
            raw = f"{name}:{args[f'{name}_id'].strip()}"
    if not raw:
        return None
    match = SCOPE.fullmatch(raw)
    if not match:
        raise ValidationError("choose a campaign or a segment from the list", field="scope")
    key = f"{match[1]}_id"
    return reports.Scope(**{key: int(match[2])})
