"""Segments: the list with live counts, the rule builder, static lists, the live preview."""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns.audience import rules, segments
from campaigns.errors import ValidationError
from campaigns.letters import authoring
from campaigns.models import Role, Segment, SegmentKind, SegmentTarget
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("segments", __name__)
EMPTY_RULES: dict[str, Any] = {"match": "all", "conditions": []}


@bp.route("/segments")
@requires(Role.VIEWER)
def segment_list() -> str:
    with unit_of_work() as s:
        rows = [(seg, segments.count_members(s, seg)) for seg in segments.list_segments(s)]
        return render_template("admin/segments.html", rows=rows)


@bp.route("/segments/new")
@requires(Role.EDITOR)
def segment_new() -> str:
    with unit_of_work() as s:
        return _builder(s, None, form={}, rules_json=json.dumps(EMPTY_RULES))


@bp.route("/segments", methods=["POST"])
@requires(Role.EDITOR)
def segment_create() -> Response | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            segment = segments.create_segment(
                s, form.get("name", ""), rules=_posted_rules(form.get("rules", "")),
                target=_target(form), description=form.get("description", ""),
            )  # fmt: skip
            segment_id = segment.id
    except ValidationError as exc:
        with unit_of_work() as s:
            return _builder(s, None, form=form, rules_json=form.get("rules", ""), error=exc), 400
    flash("Segment saved.", "success")
    return redirect(url_for("segments.segment_detail", segment_id=segment_id))


@bp.route("/segments/static", methods=["POST"])
@requires(Role.EDITOR)
def segment_create_static() -> Response | tuple[str, int]:
    form = request.form
    upload = request.files.get("file")
    text = form.get("lines", "")
    if upload is not None and upload.filename:
        text += "\n" + upload.read().decode("utf-8-sig", errors="replace")
    by: Literal["email", "external_id"] = (
        "external_id" if form.get("by") == "external_id" else "email"
    )
    try:
        with unit_of_work() as s:
            segment, missing = segments.create_static_segment(
                s, form.get("name", ""), lines=text.splitlines(), by=by,
                description=form.get("description", ""),
            )  # fmt: skip
            segment_id = segment.id
    except ValidationError as exc:
        with unit_of_work() as s:
            page = _builder(s, None, form=form, rules_json=json.dumps(EMPTY_RULES),
                            static_error=exc, static=True)  # fmt: skip
        return page, 400
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                           else "")  # fmt: skip
        flash(f"{len(missing)} line(s) named no contact and were left out: {shown}", "info")
    flash("Static segment saved.", "success")
    return redirect(url_for("segments.segment_detail", segment_id=segment_id))


@bp.route("/segments/<int:segment_id>")
@requires(Role.VIEWER)
def segment_detail(segment_id: int) -> str:
    with unit_of_work() as s:
        segment = segments.get_segment(s, segment_id)
        form = {"name": segment.name, "description": segment.description,
                "target": segment.target}  # fmt: skip
        return _builder(s, segment, form=form, rules_json=json.dumps(segment.rules or EMPTY_RULES))


@bp.route("/segments/<int:segment_id>", methods=["POST"])
@requires(Role.EDITOR)
def segment_update(segment_id: int) -> Response | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            segment = segments.get_segment(s, segment_id)
            dynamic = segment.kind == SegmentKind.DYNAMIC
            segments.update_segment(
                s, segment_id, name=form.get("name", ""),
                rules=_posted_rules(form.get("rules", "")) if dynamic else None,
                target=_target(form) if dynamic else None,
                description=form.get("description", ""),
            )  # fmt: skip
    except ValidationError as exc:
        with unit_of_work() as s:
            segment = segments.get_segment(s, segment_id)
            page = _builder(s, segment, form=form, rules_json=form.get("rules", ""), error=exc)
        return page, 400
    flash("Segment saved.", "success")
    return redirect(url_for("segments.segment_detail", segment_id=segment_id))


@bp.route("/segments/<int:segment_id>/delete", methods=["POST"])
@requires(Role.EDITOR)
def segment_delete(segment_id: int) -> Response:
    try:
        with unit_of_work() as s:
            segments.delete_segment(s, segment_id)
    except ValidationError as exc:
        flash(f"Segment not deleted: {exc}", "error")
        return redirect(url_for("segments.segment_detail", segment_id=segment_id))
    flash("Segment deleted.", "success")
    return redirect(url_for("segments.segment_list"))


@bp.route("/segments/preview", methods=["POST"])
@requires(Role.VIEWER)
def segment_preview() -> Response | tuple[Response, int]:
    """Count and sample unsaved rules for the builder (JSON in, JSON out)."""
    body = request.get_json(silent=True) or {}
    segment_id = body.get("segment_id")
    try:
        with unit_of_work() as s:
            shown = segments.preview(
                s, body.get("rules"), target=_target(body),
                segment_id=segment_id if isinstance(segment_id, int) else None,
            )  # fmt: skip
            sample = [_row(m) for m in shown.sample]
    except ValidationError as exc:
        return jsonify(ok=False, error=str(exc), field=exc.field), 422
    return jsonify(ok=True, count=shown.count, sample=sample)


def _row(member: segments.Member) -> dict[str, Any]:
    contact, contract = member.contact, member.contract
    row: dict[str, Any] = {
        "contact_id": contact.id, "email": contact.email, "name": contact.display_name,
        "status": contact.status, "url": url_for("audience.contact_detail", contact_id=contact.id),
    }  # fmt: skip
    if contract is not None:
        row["contract"] = {
            "product": contract.product, "plan": contract.plan,
            "ends_on": contract.ends_on.isoformat(), "status": contract.status,
        }  # fmt: skip
    return row


def _posted_rules(raw: str) -> Any:
    try:
        return json.loads(raw or "null")
    except ValueError:
        raise ValidationError("rules: the builder sent something unreadable; reload the page",
                              field="rules") from None  # fmt: skip


def _target(form: Any) -> SegmentTarget:
    value = form.get("target") or SegmentTarget.CONTACTS.value
    if value not in {t.value for t in SegmentTarget}:
        raise ValidationError("target: choose contacts or contracts", field="target")
    return SegmentTarget(value)


def _builder(
    s: Any,
    segment: Segment | None,
    *,
    form: Any,
    rules_json: str,
    error: ValidationError | None = None,
    static_error: ValidationError | None = None,
    static: bool = False,
) -> str:
    others = [{"id": o.id, "name": o.name} for o in segments.list_segments(s)
              if segment is None or o.id != segment.id]  # fmt: skip
    catalogue = rules.catalogue() | {
        "letters": [{"id": x.id, "name": x.name} for x in authoring.list_letters(s)],
        "segments": others,
    }
    total = sample = None
    if segment is not None and error is None:
        total = segments.count_members(s, segment)
        sample = segments.sample(s, segment, limit=10)
    return render_template(
        "admin/segment.html", segment=segment, form=form, rules_json=rules_json,
        catalogue=catalogue, error=error, static_error=static_error, static=static,
        total=total, sample=sample,
    )  # fmt: skip
