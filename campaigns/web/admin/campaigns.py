"""Campaigns: create, schedule, pause, resume, cancel; live per-segment figures."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response

from campaigns.audience import segments
from campaigns.db import utcnow
from campaigns.delivery import ledger, scheduling
from campaigns.errors import InvalidTransition, ValidationError
from campaigns.letters import approvals, authoring
from campaigns.letters.context import zone
from campaigns.models import CampaignStatus, DeliveryState, Role
from campaigns.service import points
from campaigns.tracking import acknowledgments, reports
from campaigns.web.auth import requires
from campaigns.web.context import enqueue, settings, unit_of_work

bp = Blueprint("campaigns", __name__)


@bp.route("/campaigns")
@requires(Role.VIEWER)
def campaign_list() -> str:
    with unit_of_work() as s:
        return render_template("admin/campaigns.html", campaigns=scheduling.list_campaigns(s))


# The new-campaign form's fields, named as the campaign's own columns.
FORM_FIELDS = ("name", "segment_id", "letter_version_id", "holdout_percent", "rate_per_minute",
               "priority", "cap_per_week", "cap_gap_hours", "grant_points",
               "grant_loyal_points", "grant_loyal_years", "grant_expires_days")  # fmt: skip


@bp.route("/campaigns/new")
@requires(Role.EDITOR)
def campaign_new() -> str:
    """The form, empty, or filled from another campaign (`?from=ID`: "Duplicate")."""
    source = request.args.get("from", "")
    if not source.isdigit():
        return _campaign_form({})
    _status, values = _campaign_of(int(source))
    values["name"] = f"{values['name']} (copy)"[:200]
    return _campaign_form(values)


@bp.route("/campaigns/<int:campaign_id>/edit")
@requires(Role.EDITOR)
def campaign_edit(campaign_id: int) -> str | Response:
    """A draft's form, filled with what it was created with (other campaigns: their page)."""
    status, values = _campaign_of(campaign_id)
    if status != CampaignStatus.DRAFT:
        flash(f"Only a draft can be edited, and this campaign is {status}: duplicate it to "
              "send it again changed.", "error")  # fmt: skip
        return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id))
    return _campaign_form(values, campaign_id=campaign_id)


def _campaign_of(campaign_id: int) -> tuple[str, dict[str, str]]:
    """A campaign's status, and its choices as the form's fields hold them."""
    with unit_of_work() as s:
        campaign = scheduling.get_campaign(s, campaign_id)
        values = {name: "" if getattr(campaign, name) is None else str(getattr(campaign, name))
                  for name in FORM_FIELDS}  # fmt: skip
        return campaign.status, values


def _campaign_form(values: Mapping[str, str], *, campaign_id: int | None = None) -> str:
    with unit_of_work() as s:
        versions = authoring.list_versions(s)
        return render_template("admin/campaign_new.html", segments=segments.list_segments(s),
                               versions=versions, caps=settings().caps, values=values,
                               campaign_id=campaign_id,
                               unusable=approvals.usability(s, versions))  # fmt: skip


@bp.route("/campaigns", methods=["POST"])
@requires(Role.EDITOR)
def campaign_create() -> Response | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            campaign_id = scheduling.create_campaign(
                s, form.get("name", ""), **_choices(form), created_by_id=g.user["id"]
            ).id
    except ValidationError as exc:
        # The form again with what was typed: nothing to enter twice.
        flash(f"Campaign not created: {exc}", "error")
        return _campaign_form(form), 400
    flash("Campaign created as a draft. Schedule it when it is ready.", "success")
    return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id))


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["POST"])
@requires(Role.EDITOR)
def campaign_update(campaign_id: int) -> Response | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            scheduling.update_draft(s, campaign_id, form.get("name", ""), **_choices(form))
    except InvalidTransition as exc:
        flash(f"Not saved: {exc}", "error")
        return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id))
    except ValidationError as exc:
        flash(f"Not saved: {exc}", "error")
        return _campaign_form(form, campaign_id=campaign_id), 400
    flash("Draft saved.", "success")
    return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id))


def _choices(form: Mapping[str, str]) -> dict[str, Any]:
    """The form's choices as create_campaign and update_draft take them."""
    return {
        "segment_id": _int(form, "segment_id"),
        "letter_version_id": _int(form, "letter_version_id"),
        "holdout_percent": _int(form, "holdout_percent", default=0),
        "rate_per_minute": _int(form, "rate_per_minute", default=0) or None,
        "priority": _int(form, "priority", default=0),
        "cap_per_week": _optional(form, "cap_per_week"),
        "cap_gap_hours": _optional(form, "cap_gap_hours"),
        "grant": _grant(form),
    }


def _grant(form: Mapping[str, str]) -> scheduling.Grant | None:
    """The points the campaign's letters give (none when "points to each" is empty)."""
    points = _optional(form, "grant_points")
    if points is None:
        return None
    return scheduling.Grant(
        points, loyal_points=_optional(form, "grant_loyal_points"),
        loyal_years=_optional(form, "grant_loyal_years"),
        expires_days=_optional(form, "grant_expires_days"),
    )  # fmt: skip


def _optional(form: Mapping[str, str], name: str) -> int | None:
    """A number the form may leave empty (None: the settings' value)."""
    return None if form.get(name, "").strip() == "" else _int(form, name)


def _int(form: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    raw = form.get(name, "")
    if raw == "" and default is not None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be chosen", field=name) from None


@bp.route("/campaigns/<int:campaign_id>")
@requires(Role.VIEWER)
def campaign_detail(campaign_id: int) -> str:
    state = _state(request.args.get("state", ""))
    with unit_of_work() as s:
        campaign = scheduling.get_campaign(s, campaign_id)
        # A draft shows who would get it if it went now, after suppression, caps, holdout.
        forecast = (ledger.forecast(s, campaign, now=utcnow(), caps=settings().caps)
                    if campaign.status == CampaignStatus.DRAFT else None)  # fmt: skip
        return render_template(
            "admin/campaign.html", campaign=campaign, forecast=forecast,
            counts=ledger.counts_by_state(s, campaign_id),
            state=state, rows=ledger.list_rows(s, campaign_id, state=state),
            funnels=reports.campaign_funnels(s, campaign_id=campaign_id),
            grant=scheduling.Grant.of(campaign),
            granted=points.granted_by_campaign(s, campaign_id),
        )  # fmt: skip


@bp.route("/campaigns/<int:campaign_id>/acknowledgments.csv")
@requires(Role.VIEWER)
def acknowledgments_csv(campaign_id: int) -> Response:
    """The evidence of who acknowledged which version of the campaign's letter, and when."""
    with unit_of_work() as s:
        scheduling.get_campaign(s, campaign_id)

    def body() -> Iterator[str]:
        with unit_of_work() as s:
            yield from acknowledgments.evidence_csv(s, campaign_id)

    return Response(stream_with_context(body()), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-acknowledgments.csv"',
    })  # fmt: skip


@bp.route("/campaigns/<int:campaign_id>/progress")
@requires(Role.VIEWER)
def campaign_progress(campaign_id: int) -> dict[str, Any]:
    """The campaign page's live figures, as JSON for its script (static/progress.js)."""
    with unit_of_work() as s:
        figures = ledger.progress(s, campaign_id, now=utcnow())
    eta = figures.eta_seconds
    return {
        "status": str(figures.status), "status_reason": figures.status_reason,
        "started_at": _iso(figures.started_at), "completed_at": _iso(figures.completed_at),
        "counts": {str(state): n for state, n in figures.counts.items()},
        "total": figures.total, "done": figures.done,
        "rate_per_second": round(figures.rate_per_second, 2),
        "eta_seconds": None if eta is None else round(eta),
    }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


DONE = {"schedule": "Campaign scheduled.", "pause": "Campaign paused.",
        "resume": "Campaign resumed.", "cancel": "Campaign cancelled.",
        "resend": "The failed letters are queued again."}  # fmt: skip


@bp.route("/campaigns/<int:campaign_id>/<action>", methods=["POST"])
@requires(Role.EDITOR)
def campaign_action(campaign_id: int, action: str) -> Response:
    batches: list[list[int]] = []
    try:
        with unit_of_work() as s:
            if action == "schedule":
                if request.form.get("confirm") != "yes":
                    raise ValidationError("tick the box to confirm the audience, then schedule",
                                          field="confirm")  # fmt: skip
                send_at = _when(request.form.get("send_at", ""), request.form.get("zone", ""))
                scheduling.schedule(s, campaign_id, send_at=send_at)
            elif action == "pause":
                scheduling.pause(s, campaign_id)
            elif action == "resume":
                batches = scheduling.resume(s, campaign_id)
            elif action == "cancel":
                scheduling.cancel(s, campaign_id)
            elif action == "resend":
                batches = scheduling.resend_failed(s, campaign_id, now=utcnow())
            else:
                raise ValidationError(f"unknown action {action!r}")
    except (InvalidTransition, ValidationError) as exc:
        flash(str(exc), "error")
    else:
        enqueue(batches)  # after the commit
        flash(DONE.get(action, "Done."), "success")
    return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id))


def _state(raw: str) -> DeliveryState | None:
    try:
        return DeliveryState(raw) if raw else None
    except ValueError:
        raise ValidationError(f"no ledger state {raw!r}", field="state") from None


def _when(raw: str, zone_name: str = "") -> datetime:
    """The moment typed in the form, read in the user's time zone (the browser's; UTC when
    it sent none)."""
    if not raw or raw == "now":
        return utcnow()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError("send_at must be a date and time like 2027-01-31T09:00") from None
    return value if value.tzinfo else value.replace(tzinfo=zone(zone_name or "UTC"))
