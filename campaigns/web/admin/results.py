"""Reports: results per segment, campaign, reminder step and letter version; one campaign's
or automation's report with its holdout comparison and retention; charts and CSV exports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    stream_with_context,
    url_for,
)
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.audience import segments
from campaigns.db import utcnow
from campaigns.delivery import automations, scheduling
from campaigns.errors import ValidationError
from campaigns.models import Role
from campaigns.tracking import exports, holdout, results, retention
from campaigns.tracking.results import BY, By, Filters
from campaigns.web.auth import requires, same_site_path
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("results", __name__)
# Chart.js comes from npm (package.json at the root; `npm ci` puts it here): served from this
# site, never from a CDN, so the admin works offline and leaks no visits.
CHART_JS = Path(__file__).resolve().parents[3] / "node_modules" / "chart.js" / "dist"
TABS = {"segment": "By segment", "campaign": "By campaign & automation",
        "step": "By reminder step", "version": "By letter version"}  # fmt: skip


@bp.route("/reports")
@requires(Role.VIEWER)
def report() -> Any:
    """The report by one dimension, filtered; `?format=csv` downloads the same figures."""
    by, filters = _by(request.args), _filters(request.args)
    if request.args.get("format") == "csv":
        return _report_csv(by, filters)
    with unit_of_work() as s:
        shown = results.report(s, by, filters)
        steps = shown if by == "step" else results.report(s, "step", filters)
        return render_template(
            "admin/reports.html", report=shown, tabs=TABS, filters=filters, now=utcnow(),
            args=_args(filters), money=_money(), columns=exports.COLUMNS,
            currencies=exports.currencies(shown),
            segments=segments.list_segments(s), campaigns=scheduling.list_campaigns(s),
            automations=automations.list_automations(s),
            charts={"activity": _activity(results.activity(s, filters)),
                    "steps": _steps(steps)},
        )  # fmt: skip


@bp.route("/reports/campaign/<int:campaign_id>")
@requires(Role.VIEWER)
def campaign_report(campaign_id: int) -> str:
    with unit_of_work() as s:
        campaign = scheduling.get_campaign(s, campaign_id)
        return _detail(s, Filters(campaign_id=campaign_id), campaign, "campaign",
                       ("segment",), retention.retention(s, campaign_id=campaign_id))  # fmt: skip


@bp.route("/reports/automation/<int:automation_id>")
@requires(Role.VIEWER)
def automation_report(automation_id: int) -> str:
    with unit_of_work() as s:
        automation = automations.get_automation(s, automation_id)
        return _detail(s, Filters(automation_id=automation_id), automation, "automation",
                       ("step", "segment", "version"),
                       retention.retention(s, automation_id=automation_id))  # fmt: skip


def _detail(s: Session, filters: Filters, subject: Any, kind: str, views: tuple[By, ...],
            kept: retention.Retention) -> str:  # fmt: skip
    """One campaign's or automation's page: its lines, holdout comparison and retention."""
    reports = {by: results.report(s, by, filters) for by in views}
    first = reports[views[0]]
    config = settings().results
    steps = reports.get("step")
    return render_template(
        "admin/report.html", subject=subject, kind=kind, reports=reports, tabs=TABS,
        report=first, filters=filters, args=_args(filters), now=utcnow(), money=_money(),
        columns=exports.COLUMNS, currencies=exports.currencies(first),
        comparison=holdout.compare(first.total, currency=config.currency, rates=config.rates),
        retention=kept, attribution_days=config.attribution_days,
        charts={"activity": _activity(results.activity(s, filters)),
                "steps": _steps(steps) if steps else None, "curves": _curves(kept)},
    )  # fmt: skip


@bp.route("/reports/ledger.csv")
@requires(Role.VIEWER)
def ledger_csv() -> Response:
    """The ledger rows in the report's scope (same filters), streamed page by page."""
    filters = _filters(request.args)

    def body() -> Iterator[str]:
        with unit_of_work() as s:
            yield from exports.ledger_csv(s, filters)

    return _csv(stream_with_context(body()), f"ledger{_suffix(filters)}.csv")


@bp.route("/reports/refresh", methods=["POST"])
@requires(Role.EDITOR)
def refresh() -> Response:
    """Rebuild the report figures now, then go back to the page that asked."""
    window = settings().results.attribution_days
    with unit_of_work() as s:
        done = results.refresh(s, window=timedelta(days=window))
    flash(f"Figures rebuilt in {done.seconds:.1f} s from {done.ledger_rows:,} ledger rows"
          + (f"; {done.detected} renewals found in moved end dates." if done.detected else "."),
          "success")  # fmt: skip
    back = same_site_path(request.form.get("next", "")) or url_for("results.report")
    return redirect(back)


@bp.route("/static/vendor/chart.umd.js")
@requires(Role.VIEWER)
def chart_js() -> Response:
    """Chart.js, from node_modules (installed by `npm ci`, which run.sh and test.sh do)."""
    if not (CHART_JS / "chart.umd.js").is_file():
        current_app.logger.warning(
            "Chart.js is not installed (%s is missing): run `npm ci --omit=dev` in the "
            "checkout (./run.sh does it); the report pages show their tables without charts",
            CHART_JS / "chart.umd.js",
        )
        abort(404)
    return send_from_directory(CHART_JS, "chart.umd.js", mimetype="text/javascript",
                               max_age=3600)  # fmt: skip


# --------------------------------------------------------------------------- parsing


def _by(args: Mapping[str, str]) -> By:
    by = args.get("by") or "segment"
    for known in BY:
        if by == known:
            return known
    raise ValidationError(f"a report is by {', '.join(BY)}, not {by!r}", field="by")


def _filters(args: Mapping[str, str]) -> Filters:
    filters = Filters(
        since=_date(args, "since"), until=_date(args, "until"),
        segment_id=_id(args, "segment_id"), campaign_id=_id(args, "campaign_id"),
        automation_id=_id(args, "automation_id"), step_id=_id(args, "step_id"),
    )  # fmt: skip
    if filters.since and filters.until and filters.since > filters.until:
        raise ValidationError("the range starts after it ends: swap the two dates")
    return filters


def _date(args: Mapping[str, str], name: str) -> date | None:
    raw = args.get(name, "").strip()
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        raise ValidationError(f"{name} must be a date like 2026-11-02", field=name) from None


def _id(args: Mapping[str, str], name: str) -> int | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError(f"{name} must be a number", field=name)
    return int(raw)


def _args(filters: Filters) -> dict[str, str]:
    """The filters as query arguments (links keep them), leaving out those not set."""
    values = {
        name: getattr(filters, name)
        for name in ("since", "until", "segment_id", "campaign_id", "automation_id", "step_id")
    }
    return {k: str(v) for k, v in values.items() if v is not None}  # fmt: skip


def _suffix(filters: Filters) -> str:
    return "".join(f"-{k.removesuffix('_id')}-{v}" for k, v in _args(filters).items())


# --------------------------------------------------------------------------- answers


def _report_csv(by: By, filters: Filters) -> Response:
    config = settings().results
    with unit_of_work() as s:
        shown = results.report(s, by, filters)
    body = exports.report_csv(shown, currency=config.currency, rates=config.rates)
    return _csv(body, f"report-by-{by}{_suffix(filters)}.csv")


def _csv(body: Iterator[str], filename: str) -> Response:
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


def _money() -> dict[str, Any]:
    """What the templates need to show revenue in one currency as well."""
    config = settings().results

    def converted(amounts: dict[str, Any]) -> Any:
        return results.in_currency(amounts, config.currency, config.rates)

    return {"currency": config.currency, "converted": converted}


def _activity(days: list[results.Day]) -> dict[str, list[Any]] | None:
    if not days:
        return None
    return {"days": [d.day.isoformat() for d in days], "sent": [d.sent for d in days],
            "opened": [d.opened for d in days], "clicked": [d.clicked for d in days],
            "renewed": [d.renewed for d in days]}  # fmt: skip


def _steps(report: results.Report) -> dict[str, Any] | None:
    """Renewals and revenue per reminder step; revenue in the report currency (converted
    where rates allow, else that currency's renewals alone)."""
    if not report.lines:
        return None
    config, money = settings().results, _money()
    revenue = []
    for line in report.lines:
        total = money["converted"](line.figures.revenue)
        revenue.append(float(total if total is not None
                             else line.figures.revenue.get(config.currency, 0)))  # fmt: skip
    # Two-line labels (the step, its automation): Chart.js draws an array as lines.
    return {"labels": [[line.label, line.detail] for line in report.lines],
            "renewed": [line.figures.renewed for line in report.lines],
            "revenue": revenue, "currency": config.currency}  # fmt: skip


def _curves(kept: retention.Retention) -> dict[str, Any] | None:
    longest = max((len(curve) for curve in kept.curves.values()), default=0)
    if not longest:
        return None
    return {"days": list(range(longest)),
            **{group: [round(share * 100, 2) for share in curve]
               for group, curve in kept.curves.items()}}  # fmt: skip
