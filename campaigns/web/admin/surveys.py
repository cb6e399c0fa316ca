"""Survey results: CSAT and NPS by segment, campaign or step, over time, the detractors to
follow up (and their CSV), and how many rating clicks were discarded as machines'."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, render_template, request, stream_with_context
from werkzeug.wrappers import Response

from campaigns.audience import segments
from campaigns.delivery import automations, scheduling
from campaigns.errors import ValidationError
from campaigns.models import Role
from campaigns.service import survey_results
from campaigns.service.survey_results import BY, By, Filters
from campaigns.web.admin.results import _csv, _date, _id
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("surveys", __name__)
TABS = {"segment": "By segment", "campaign": "By campaign & automation", "step": "By step"}


@bp.route("/reports/surveys")
@requires(Role.VIEWER)
def survey_report() -> str:
    by, filters = _by(request.args), _filters(request.args)
    with unit_of_work() as s:
        shown = survey_results.results(s, by, filters)
        periods = survey_results.over_time(s, filters)
        return render_template(
            "admin/surveys.html", results=shown, tabs=TABS, filters=filters,
            args=_args(filters), detractors=survey_results.detractors(s, filters),
            segments=segments.list_segments(s), campaigns=scheduling.list_campaigns(s),
            automations=automations.list_automations(s),
            charts={"satisfaction": _chart(periods)},
        )  # fmt: skip


@bp.route("/reports/surveys/detractors.csv")
@requires(Role.VIEWER)
def detractors_csv() -> Response:
    """Every detractor in the page's scope (same filters), streamed page by page."""
    filters = _filters(request.args)

    def body() -> Iterator[str]:
        with unit_of_work() as s:
            yield from survey_results.detractors_csv(s, filters)

    suffix = "".join(f"-{k.removesuffix('_id')}-{v}" for k, v in _args(filters).items())
    return _csv(stream_with_context(body()), f"detractors{suffix}.csv")


def _by(args: Mapping[str, str]) -> By:
    by = args.get("by") or "segment"
    for known in BY:
        if by == known:
            return known
    raise ValidationError(f"survey results are by {', '.join(BY)}, not {by!r}", field="by")


def _filters(args: Mapping[str, str]) -> Filters:
    filters = Filters(
        since=_date(args, "since"), until=_date(args, "until"),
        segment_id=_id(args, "segment_id"), campaign_id=_id(args, "campaign_id"),
        automation_id=_id(args, "automation_id"),
    )  # fmt: skip
    if filters.since and filters.until and filters.since > filters.until:
        raise ValidationError("the range starts after it ends: swap the two dates")
    return filters


def _args(filters: Filters) -> dict[str, str]:
    names = ("since", "until", "segment_id", "campaign_id", "automation_id")
    return {name: str(getattr(filters, name)) for name in names
            if getattr(filters, name) is not None}  # fmt: skip


def _chart(periods: list[survey_results.Period]) -> dict[str, Any] | None:
    """CSAT (%), NPS and responses per day or week, for Chart.js."""
    if not periods:
        return None
    weekly = len(periods) > 1 and (periods[1].start - periods[0].start).days == 7

    def rounded(value: float | None, factor: float = 1) -> float | None:
        return None if value is None else round(value * factor, 1)

    return {"periods": [p.start.isoformat() for p in periods], "weekly": weekly,
            "csat": [rounded(p.figures.csat, 100) for p in periods],
            "nps": [rounded(p.figures.nps) for p in periods],
            "responses": [p.figures.responses for p in periods]}  # fmt: skip
