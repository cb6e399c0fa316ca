"""Contacts and segments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns.audience import contacts, segments
from campaigns.errors import ValidationError
from campaigns.models import Role
from campaigns.tracking import reports
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("audience", __name__)


@bp.route("/contacts")
@requires(Role.VIEWER)
def contact_list() -> str:
    page = max(1, request.args.get("page", 1, type=int) or 1)
    with unit_of_work() as s:
        rows = contacts.list_contacts(s, limit=50, offset=(page - 1) * 50)
        return render_template("admin/contacts.html", contacts=rows,
                               total=contacts.count_contacts(s), page=page)  # fmt: skip


@bp.route("/contacts/<int:contact_id>")
@requires(Role.VIEWER)
def contact_detail(contact_id: int) -> str:
    with unit_of_work() as s:
        contact = contacts.get_contact(s, contact_id)
        return render_template("admin/contact.html", contact=contact,
                               received=reports.letters_of_contact(s, contact_id))  # fmt: skip


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
                contacts.add_contract(
                    s, contact.id, product=form["product"],
                    starts_on=_date(form.get("starts_on"), "starts_on"),
                    ends_on=_date(form.get("ends_on"), "ends_on"),
                    price=_money(form.get("price") or "0"),
                    renewal_url=form.get("renewal_url") or None,
                )  # fmt: skip
            email = contact.email
    except ValidationError as exc:
        flash(f"Contact not added: {exc}", "error")
        with unit_of_work() as s:
            rows = contacts.list_contacts(s, limit=50)
            page = render_template("admin/contacts.html", contacts=rows, form=form,
                                   total=contacts.count_contacts(s), page=1)  # fmt: skip
        return page, 400
    flash(f"Added {email}.", "success")
    return redirect(url_for("audience.contact_list"))


def _date(raw: str | None, field: str) -> date:
    try:
        return date.fromisoformat(raw or "")
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2027-01-31", field=field) from None


def _money(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValidationError("price must be a number like 480.00", field="price") from None


@bp.route("/segments")
@requires(Role.VIEWER)
def segment_list() -> str:
    with unit_of_work() as s:
        rows = [(seg, segments.count_members(s, seg)) for seg in segments.list_segments(s)]
        return render_template("admin/segments.html", rows=rows)


@bp.route("/segments/<int:segment_id>")
@requires(Role.VIEWER)
def segment_detail(segment_id: int) -> str:
    with unit_of_work() as s:
        segment = segments.get_segment(s, segment_id)
        return render_template("admin/segment.html", segment=segment,
                               total=segments.count_members(s, segment),
                               members=segments.list_members(s, segment))  # fmt: skip
