"""Renewals in (conversions), results out (reports, holdout comparison, retention)."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from flask import request
from spectree import Response as Responses
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.errors import NotFound, ValidationError
from campaigns.models import Conversion, Delivery
from campaigns.tracking import conversions, holdout, results, retention
from campaigns.web.api import bp, schemas, spec
from campaigns.web.api import result_schemas as out
from campaigns.web.context import settings, unit_of_work

_ERRORS = {"HTTP_401": schemas.Problem, "HTTP_403": schemas.Problem}


def _window() -> timedelta:
    return timedelta(days=settings().results.attribution_days)


@bp.post("/conversions")
@spec.validate(
    json=out.ConversionIn,
    headers=schemas.IdempotencyHeaders,
    resp=Responses(HTTP_200=out.ConversionOut, HTTP_201=out.ConversionOut,
                   HTTP_404=schemas.Problem, HTTP_409=schemas.Problem,
                   HTTP_415=schemas.Problem, HTTP_400=schemas.Problem, **_ERRORS),
    tags=["conversions"],
)  # fmt: skip
def record_conversion() -> Any:
    """Record a renewal of a contract, once per `Idempotency-Key`.

    It is credited to the last renewal or expiry letter delivered for the contract within
    the attribution window (ATTRIBUTION_DAYS, 30 by default), or counted organic. A replay
    of the key answers 200 with the first record; the same key for another renewal is 409.
    A term renews once: if a renewal of the contract was already detected from its moved
    end date (within the window), this one takes it over (`took_over_detected`); a second
    renewal of one term is 409.
    """
    body: out.ConversionIn = request.context.json  # type: ignore[attr-defined]
    headers: schemas.IdempotencyHeaders = request.context.headers  # type: ignore[attr-defined]
    when = body.occurred_at
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    with unit_of_work() as s:
        recorded = conversions.record(
            s, contract_id=body.contract_id, amount=body.amount, currency=str(body.currency),
            idempotency_key=headers.idempotency_key, occurred_at=when, window=_window(),
            detail=body.detail,
        )  # fmt: skip
        answer = conversion_out(s, recorded.conversion, took_over=recorded.took_over)
    return answer, 201 if recorded.created else 200


@bp.get("/conversions/<int:conversion_id>")
@spec.validate(resp=Responses(HTTP_200=out.ConversionOut, HTTP_404=schemas.Problem, **_ERRORS),
               tags=["conversions"])  # fmt: skip
def get_conversion(conversion_id: int) -> Any:
    """Read a conversion with the letters it was credited over."""
    with unit_of_work() as s:
        conversion = s.get(Conversion, conversion_id)
        if conversion is None:
            raise NotFound(f"there is no conversion #{conversion_id}")
        return conversion_out(s, conversion)


def conversion_out(s: Session, c: Conversion, *, took_over: bool = False) -> dict[str, Any]:
    s.refresh(c)
    credit = None
    if c.delivery_id is not None:
        row = s.execute(
            select(Delivery.id, Delivery.campaign_id, Delivery.automation_step_id,
                   Delivery.segment_id, Delivery.letter_version_id)
            .where(Delivery.id == c.delivery_id)
        ).one()  # fmt: skip
        credit = dict(zip(("delivery_id", "campaign_id", "automation_step_id", "segment_id",
                           "letter_version_id"), row, strict=True))  # fmt: skip
    detail = {k: v for k, v in c.detail.items() if k != "touches"}
    return {
        "id": c.id, "contract_id": c.contract_id, "term": c.term, "amount": _money(c.amount),
        "currency": c.currency, "occurred_at": c.occurred_at, "recorded_at": c.recorded_at,
        "source": c.source, "idempotency_key": c.idempotency_key,
        "organic": c.delivery_id is None, "credited_to": credit,
        "first_touch_delivery_id": c.first_delivery_id,
        "touches": list(c.detail.get("touches") or []), "took_over_detected": took_over,
        "detail": detail,
    }  # fmt: skip


def _money(value: Decimal) -> str:
    return f"{Decimal(value):.2f}"


def _filters(query: out.ReportQuery) -> results.Filters:
    if query.since and query.until and query.since > query.until:
        raise ValidationError("since is after until", field="since")
    return results.Filters(
        since=query.since, until=query.until, segment_id=query.segment_id,
        campaign_id=query.campaign_id, automation_id=query.automation_id,
        step_id=query.step_id,
    )  # fmt: skip


def figures_out(figures: results.Figures) -> dict[str, Any]:
    config = settings().results
    total = results.in_currency(figures.revenue, config.currency, config.rates)
    rated = ("opened", "opened_machine", "clicked", "clicked_machine", "renewal_clicks",
             "renewed", "acknowledged", "unsubscribed", "bounced", "complained")  # fmt: skip
    return {
        **{name: figures.counts[name] for name in out.FiguresOut.model_fields
           if name in figures.counts},
        "renewed": figures.renewed,
        "revenue": {code: _money(amount) for code, amount in sorted(figures.revenue.items())},
        "revenue_total": _money(total) if total is not None else None,
        "rates": {name: round(figures.rate(name), 6) for name in rated},
    }  # fmt: skip


@bp.get("/reports/<any(segment, campaign, step, version):by>")
@spec.validate(query=out.ReportQuery,
               resp=Responses(HTTP_200=out.ReportOut, HTTP_400=schemas.Problem,
                              HTTP_404=schemas.Problem, **_ERRORS),
               tags=["reports"])  # fmt: skip
def report(by: results.By) -> Any:
    """The results by segment, by campaign (and automation), by reminder step or by letter
    version, from the figures of the last refresh (`refreshed_at`; the scheduler rebuilds
    them every REPORT_SECONDS). Filters narrow the letters by the day they were decided."""
    query: out.ReportQuery = request.context.query  # type: ignore[attr-defined]
    with unit_of_work() as s:
        found = results.report(s, by, _filters(query))
    return {
        "by": found.by, "currency": settings().results.currency,
        "refreshed_at": found.refreshed_at,
        "lines": [{"key": line.key, "label": line.label, "detail": line.detail,
                   "figures": figures_out(line.figures)} for line in found.lines],
        "total": figures_out(found.total),
        "organic": {"renewed": found.organic.renewed,
                    "revenue": {k: _money(v) for k, v in sorted(found.organic.revenue.items())}},
    }  # fmt: skip


@bp.get("/reports/holdout")
@spec.validate(query=out.ReportQuery,
               resp=Responses(HTTP_200=out.HoldoutOut, HTTP_400=schemas.Problem, **_ERRORS),
               tags=["reports"])  # fmt: skip
def holdout_comparison() -> Any:
    """Renewal rate of the letters' recipients against the held out, with the uplift, its
    95 % interval and a plain sentence; narrow it to a campaign, automation or step."""
    query: out.ReportQuery = request.context.query  # type: ignore[attr-defined]
    config = settings().results
    with unit_of_work() as s:
        found = results.report(s, "campaign", _filters(query))
    c = holdout.compare(found.total, currency=config.currency, rates=config.rates)

    def money(value: Decimal | None) -> str | None:
        return _money(value) if value is not None else None

    return {
        "treated": c.treated, "treated_renewed": c.treated_renewed,
        "treated_rate": c.treated_rate, "held_out": c.held_out,
        "held_out_renewed": c.held_out_renewed, "held_out_rate": c.held_out_rate,
        "uplift": c.uplift, "interval": list(c.interval) if c.interval else None,
        "relative_uplift": c.relative,
        "relative_interval": list(c.relative_interval) if c.relative_interval else None,
        "p_value": c.p_value, "significant": c.significant, "recipients_needed": c.needed,
        "treated_revenue_per_recipient": money(c.treated_revenue_per_recipient),
        "held_out_revenue_per_recipient": money(c.held_out_revenue_per_recipient),
        "currency": c.currency, "sentence": c.sentence(), "refreshed_at": found.refreshed_at,
    }  # fmt: skip


@bp.get("/reports/retention")
@spec.validate(query=out.RetentionQuery,
               resp=Responses(HTTP_200=out.RetentionOut, HTTP_400=schemas.Problem, **_ERRORS),
               tags=["reports"])  # fmt: skip
def retention_of() -> Any:
    """Renewal and churn of a campaign's (or automation's) recipients against its held out,
    1, 3 and 6 months after the letter, and the renewal curves by day."""
    query: out.RetentionQuery = request.context.query  # type: ignore[attr-defined]
    if (query.campaign_id is None) == (query.automation_id is None):
        raise ValidationError("give campaign_id or automation_id (one of them)",
                              field="campaign_id")  # fmt: skip
    with unit_of_work() as s:
        found = retention.retention(s, campaign_id=query.campaign_id,
                                    automation_id=query.automation_id)  # fmt: skip
    return {
        "sizes": found.sizes,
        "horizons": [{"months": h.months, "group": h.group, "measured": h.measured,
                      "renewed": h.renewed, "churned": h.churned,
                      "renewal_rate": h.renewal_rate, "churn_rate": h.churn_rate}
                     for h in found.horizons],
        "curves": found.curves,
    }  # fmt: skip
