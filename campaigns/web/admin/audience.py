"""Contacts, their contracts and service points, and the suppression list."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import date, timedelta

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.accounts import audit, users
from campaigns.audience import contacts, suppressions
from campaigns.audience.records import RecordError
from campaigns.db import utcnow
from campaigns.delivery import automations, scheduling
from campaigns.errors import Conflict, ValidationError
from campaigns.models import ContactStatus, PointsEntry, PointsKind, Role
from campaigns.service import incidents, points
from campaigns.tracking import reports
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("audience", __name__)
STATUSES = {status.value for status in ContactStatus}
# What the admin's points form may record; uses and expiries come from the help desk and
# the clock.
POINTS_KINDS = [PointsKind.GRANT, PointsKind.ADJUST, PointsKind.REFUND, PointsKind.PURCHASE]
POINTS_FIELDS = {"kind", "amount", "reason", "expires_on"}
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


@bp.route("/contacts")
@requires(Role.VIEWER)
def contact_list() -> str:
    args = request.args
    status = args.get("status", "")
    with unit_of_work() as s:
        page = contacts.search_contacts(
            s, query=args.get("q", ""), before_id=args.get("before", type=int),
            status=ContactStatus(status) if status in STATUSES else None,
        )  # fmt: skip
        return render_template("admin/contacts.html", page=page, q=args.get("q", ""),
                               status=status, statuses=list(ContactStatus),
                               total=contacts.count_contacts(s))  # fmt: skip


@bp.route("/contacts/<int:contact_id>")
@requires(Role.VIEWER)
def contact_detail(contact_id: int) -> str:
    return _contact_page(contact_id)


def _contact_page(contact_id: int, *, form: str = "", errors: dict[str, str] | None = None) -> str:
    """The contact page; after a refused form, that form open with its errors and values."""
    with unit_of_work() as s:
        contact = contacts.get_contact(s, contact_id)
        entries = points.history(s, contact_id)
        return render_template(
            "admin/contact.html", contact=contact,
            received=reports.letters_of_contact(s, contact_id),
            timeline=contacts.timeline(s, contact_id), statuses=list(ContactStatus),
            turned_off=contacts.turned_off_kinds(s, contact_id),
            upcoming=automations.upcoming(s, contact_id, today=utcnow().date()),
            open_form=form, errors=errors or {}, values=request.form if form else {},
            today=date.today(), balance=points.balance(s, contact_id), entries=entries,
            sources=_sources(s, entries), incidents=incidents.of_contact(s, contact_id),
            form_key=secrets.token_urlsafe(18), tomorrow=utcnow().date() + timedelta(days=1),
        )  # fmt: skip


def _sources(s: Session, entries: list[PointsEntry]) -> dict[str, dict[int, str]]:
    """The names of the campaigns and admin users the entries came from, by id."""
    campaign_ids = {e.campaign_id for e in entries if e.campaign_id is not None}
    user_ids = {e.user_id for e in entries if e.user_id is not None}
    found: dict[str, dict[int, str]] = {"campaigns": {}, "users": {}}
    for campaign_id in campaign_ids:
        found["campaigns"][campaign_id] = scheduling.get_campaign(s, campaign_id).name
    for user_id in user_ids:
        user = users.get_user(s, user_id)
        found["users"][user_id] = user.name or user.email
    return found


@bp.route("/contacts/<int:contact_id>", methods=["POST"])
@requires(Role.EDITOR)
def contact_update(contact_id: int) -> Response | tuple[str, int]:
    try:
        with unit_of_work() as s:
            contacts.update_contact(s, contact_id, dict(request.form), user_id=g.user["id"])
    except RecordError as exc:
        return _contact_page(contact_id, form="edit", errors=_by_field(exc)), 400
    flash("Saved.", "success")
    return redirect(url_for("audience.contact_detail", contact_id=contact_id))


@bp.route("/contacts/<int:contact_id>/status", methods=["POST"])
@requires(Role.EDITOR)
def contact_status(contact_id: int) -> Response | tuple[str, int]:
    status, reason = request.form.get("status", ""), request.form.get("reason", "").strip()
    if status not in STATUSES or not reason:
        errors = {"reason": "say why (it is kept with the change)"} if not reason else {
            "status": "choose a status"}  # fmt: skip
        return _contact_page(contact_id, form="status", errors=errors), 400
    with unit_of_work() as s:
        contacts.set_status(s, contact_id, ContactStatus(status), reason=reason, source="admin",
                            user_id=g.user["id"])  # fmt: skip
    flash(f"The contact is now {status}.", "success")
    return redirect(url_for("audience.contact_detail", contact_id=contact_id))


@bp.route("/contacts/<int:contact_id>/contracts", methods=["POST"])
@requires(Role.EDITOR)
def contract_add(contact_id: int) -> Response | tuple[str, int]:
    try:
        with unit_of_work() as s:
            contacts.add_contract_from(s, contact_id, dict(request.form), user_id=g.user["id"])
    except RecordError as exc:
        return _contact_page(contact_id, form="contract", errors=_by_field(exc)), 400
    flash("Contract added.", "success")
    return redirect(url_for("audience.contact_detail", contact_id=contact_id))


@bp.route("/contacts/<int:contact_id>/contracts/<int:contract_id>/end", methods=["POST"])
@requires(Role.EDITOR)
def contract_end(contact_id: int, contract_id: int) -> Response:
    try:
        on = date.fromisoformat(request.form.get("on", ""))
        with unit_of_work() as s:
            contacts.end_contract(s, contract_id, on=on, user_id=g.user["id"])
        flash(f"Contract ended on {on}.", "success")
    except ValueError:
        flash("Contract not ended: give the last day as a date like 2027-01-31.", "error")
    except ValidationError as exc:
        flash(f"Contract not ended: {exc}", "error")
    return redirect(url_for("audience.contact_detail", contact_id=contact_id))


@bp.route("/contacts/<int:contact_id>/points", methods=["POST"])
@requires(Role.EDITOR)
def points_change(contact_id: int) -> Response | tuple[str, int]:
    """Record a grant, adjustment, refund or purchase typed by an editor, once per form."""
    form = request.form
    errors = _points_form_errors(form)
    if errors:
        return _contact_page(contact_id, form="points", errors=errors), 400
    kind, amount = PointsKind(form["kind"]), int(form["amount"].strip())
    expires = form.get("expires_on", "").strip()
    try:
        with unit_of_work() as s:
            made = points.record(
                s, contact_id, kind, amount, source="admin", reason=form["reason"],
                expires_on=date.fromisoformat(expires) if expires else None,
                idempotency_key=f"admin:{form['form_key']}", user_id=g.user["id"],
            )  # fmt: skip
            entry = made.entry
            if made.created:
                audit.record(s, "points.recorded", user_id=g.user["id"], target_type="contact",
                             target_id=contact_id, entry_id=entry.id, kind=kind,
                             amount=entry.amount, reason=entry.reason)  # fmt: skip
            balance = points.balance(s, contact_id)
    except ValidationError as exc:
        field = exc.field if exc.field in POINTS_FIELDS else ""  # else: said above the form
        return _contact_page(contact_id, form="points", errors={field: str(exc)}), 400
    except Conflict as exc:
        return _contact_page(contact_id, form="points", errors={"amount": str(exc)}), 409
    if made.created:
        flash(f"{kind.capitalize()} of {entry.amount:+d} points recorded; the balance is now "
              f"{balance}.", "success")  # fmt: skip
    else:
        flash(f"This form was already sent: the {kind} of {entry.amount:+d} points was "
              f"recorded once. The balance is {balance}.", "info")  # fmt: skip
    return redirect(url_for("audience.contact_detail", contact_id=contact_id, _anchor="points"))


def _points_form_errors(form: Mapping[str, str]) -> dict[str, str]:
    """What is wrong with the points form before the ledger is asked, by field."""
    errors: dict[str, str] = {}
    if form.get("kind") not in POINTS_KINDS:
        errors["kind"] = f"choose one of {', '.join(POINTS_KINDS)}"
    if not re.fullmatch(r"[+-]?\d{1,7}", form.get("amount", "").strip()):
        errors["amount"] = "write a whole number of points, such as 3 (or -2 to adjust down)"
    if not form.get("reason", "").strip():
        errors["reason"] = "say why (it is kept with the entry and in the audit trail)"
    try:
        date.fromisoformat(form.get("expires_on", "").strip() or "2000-01-01")
    except ValueError:
        errors["expires_on"] = "write the expiry date like 2027-01-31"
    if not FORM_KEY.fullmatch(form.get("form_key", "")):
        errors[""] = "this form is out of date: check the history below, then send it again"
    return errors


@bp.route("/contacts", methods=["POST"])
@requires(Role.EDITOR)
def contact_create() -> Response | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            contact = contacts.create_contact(
                s, form.get("email", ""), first_name=form.get("first_name", ""),
                last_name=form.get("last_name", ""),
            )  # fmt: skip
            if form.get("product"):
                contacts.add_contract_from(s, contact.id, dict(form), user_id=g.user["id"])
            contact_id = contact.id
    except ValidationError as exc:
        errors = _by_field(exc) if isinstance(exc, RecordError) else {exc.field or "": str(exc)}
        with unit_of_work() as s:
            page = render_template(
                "admin/contacts.html", page=contacts.search_contacts(s), q="", status="",
                statuses=list(ContactStatus), total=contacts.count_contacts(s), form=form,
                errors=errors,
            )  # fmt: skip
        return page, 400
    flash("Contact added.", "success")
    return redirect(url_for("audience.contact_detail", contact_id=contact_id))


@bp.route("/suppressions")
@requires(Role.VIEWER)
def suppression_list() -> str:
    return _suppression_page()


def _suppression_page(*, errors: dict[str, str] | None = None) -> str:
    q = request.args.get("q", "")
    with unit_of_work() as s:
        rows, total = suppressions.list_suppressions(s, query=q)
        return render_template("admin/suppressions.html", rows=rows, total=total, q=q,
                               errors=errors or {}, form=request.form)  # fmt: skip


@bp.route("/suppressions", methods=["POST"])
@requires(Role.EDITOR)
def suppression_add() -> Response | tuple[str, int]:
    form = request.form
    reason = form.get("reason", "").strip()
    if not reason:
        return _suppression_page(errors={"reason": "say why (it is kept with the entry)"}), 400
    try:
        with unit_of_work() as s:
            entry = suppressions.suppress(s, form.get("email", ""), reason=reason,
                                          source="admin", user_id=g.user["id"])  # fmt: skip
            email = entry.email
    except ValidationError as exc:
        return _suppression_page(errors={"email": str(exc)}), 400
    flash(f"{email} will not be mailed.", "success")
    return redirect(url_for("audience.suppression_list"))


@bp.route("/suppressions/remove", methods=["POST"])
@requires(Role.EDITOR)
def suppression_remove() -> Response:
    try:
        with unit_of_work() as s:
            suppressions.unsuppress(s, request.form.get("email", ""), user_id=g.user["id"])
        flash("Taken off the suppression list.", "success")
    except ValidationError as exc:
        flash(str(exc), "error")
    return redirect(url_for("audience.suppression_list"))


def _by_field(exc: RecordError) -> dict[str, str]:
    """Refused fields by form field name (`contract.ends_on` → `ends_on`)."""
    return {e.field.rsplit(".", 1)[-1]: e.reason for e in exc.errors}
