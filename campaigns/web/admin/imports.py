"""The CSV import wizard: upload, map columns, check, read the report, choose, import."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from campaigns.audience import csvfiles, imports, mappings
from campaigns.db import utcnow
from campaigns.errors import CampaignsError, InvalidTransition, ValidationError
from campaigns.models import ImportStatus, Role
from campaigns.web.auth import requires
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("imports", __name__)
log = logging.getLogger(__name__)
FIRST_ERRORS = 50
EDITABLE = {ImportStatus.PENDING, ImportStatus.CHECKED}


def _enqueue(job_id: int) -> bool:
    """Hand the job to the import workers (after the commit); False if they cannot be reached."""
    hook = current_app.extensions["campaigns"].get("enqueue_import")
    try:
        if hook is not None:
            hook(job_id)
        else:  # imported on first use: the web process needs Redis only when it enqueues
            from workers.actors import run_import

            run_import.send(job_id)
    except Exception:  # Redis down: the job waits, and its page offers to hand it over again
        log.exception("import %d: could not enqueue", job_id)
        flash("The import workers could not be reached; try “Retry” in a moment.", "error")
        return False
    return True


@bp.route("/contacts/import")
@requires(Role.EDITOR)
def upload_form() -> str:
    with unit_of_work() as s:
        return render_template("admin/imports.html", jobs=imports.recent_jobs(s, limit=10))


@bp.route("/contacts/import", methods=["POST"])
@requires(Role.EDITOR)
def upload() -> BaseResponse | tuple[str, int]:
    file = request.files.get("file")
    if file is None or not file.filename:
        flash("Choose a CSV file to upload.", "error")
        return _upload_page(400)
    second = request.files.get("contracts_file")
    second_name = second.filename if second is not None and second.filename else ""
    path = imports.store_upload(settings().data_dir, file.stream)
    if second is not None and second_name:
        imports.store_upload(settings().data_dir, second.stream, contracts_of=path)
    try:
        with unit_of_work() as s:
            job = imports.create_job(s, path, filename=file.filename, user_id=g.user["id"],
                                     contracts_filename=second_name)  # fmt: skip
            job_id = job.id
    except ValidationError as exc:
        flash(f"This file cannot be imported: {exc}.", "error")
        return _upload_page(400)
    return redirect(url_for("imports.job", job_id=job_id))


def _upload_page(status: int) -> tuple[str, int]:
    with unit_of_work() as s:
        return render_template("admin/imports.html", jobs=imports.recent_jobs(s, limit=10)), status


@bp.route("/contacts/import/<int:job_id>")
@requires(Role.EDITOR)
def job(job_id: int) -> str:
    with unit_of_work() as s:
        found = imports.get_job(s, job_id)
        editing = request.args.get("edit") and found.status in EDITABLE
        if editing or (found.status == ImportStatus.PENDING and not found.mapping):
            return _mapping_page(s, found, request.args.get("mapping", ""))
        figures = imports.progress(s, job_id, now=utcnow())
        errors = imports.row_errors(s, job_id, limit=FIRST_ERRORS)
        return render_template("admin/import_job.html", job=found, progress=figures,
                               errors=errors, first_errors=FIRST_ERRORS)  # fmt: skip


def _mapping_page(
    s: Any, found: Any, saved_name: str, *, form: Any = None, status: int = 200
) -> Any:
    saved = mappings.saved_mappings(s)
    named = next((m for m in saved if m.name == saved_name), None) if saved_name else None
    match = "email"
    if found.mapping:  # back from the report to change it
        match = found.mapping.get("match", "email")
    if named is not None:
        match = named.mapping.get("match", "email")
    if form is not None:
        match = form.get("match", "email")

    def rows(contracts_file: bool) -> list[tuple[Any, ...]]:
        """Each column of one file: index, name, sample values, choices, the field chosen."""
        preview = imports.preview(found, contracts=contracts_file)
        key, prefix = ("contracts_columns", "contracts") if contracts_file else ("columns", "field")
        chosen = mappings.suggest(preview.header, preview.sample, contracts_file=contracts_file)
        if found.mapping:
            chosen = {c: found.mapping.get(key, {}).get(c, "") for c in preview.header}
        if named is not None:  # a saved mapping with nothing for this file: the suggestion
            chosen = mappings.applied(named.mapping, preview.header,
                                      contracts_file=contracts_file) or chosen  # fmt: skip
        if form is not None:
            chosen = {c: form.get(f"{prefix}_{i}", "") for i, c in enumerate(preview.header)}
        return [
            (i, column, [row[i] if i < len(row) else "" for row in preview.sample],
             mappings.choices(column, contracts_file=contracts_file), chosen.get(column, ""))
            for i, column in enumerate(preview.header)
        ]  # fmt: skip

    page = render_template(
        "admin/import_mapping.html", job=found, columns=rows(False), match=match,
        second=rows(True) if found.contracts_filename else None,
        saved=saved, saved_name=saved_name, save_as=form.get("save_as", "") if form else "",
        delimiter=csvfiles.DELIMITER_NAMES.get(found.delimiter, found.delimiter),
        second_delimiter=csvfiles.DELIMITER_NAMES.get(found.contracts_delimiter,
                                                      found.contracts_delimiter),
    )  # fmt: skip
    return (page, status) if status != 200 else page


@bp.route("/contacts/import/<int:job_id>/mapping", methods=["POST"])
@requires(Role.EDITOR)
def set_mapping(job_id: int) -> Any:
    form = request.form
    try:
        with unit_of_work() as s:
            found = imports.get_job(s, job_id)
            header = imports.preview(found).header
            columns = {c: form.get(f"field_{i}", "") for i, c in enumerate(header)}
            second = None
            if found.contracts_filename:
                header = imports.preview(found, contracts=True).header
                second = {c: form.get(f"contracts_{i}", "") for i, c in enumerate(header)}
            imports.configure(s, job_id, columns, match=form.get("match", "email"),
                              save_as=form.get("save_as", ""),
                              contracts_columns=second)  # fmt: skip
    except ValidationError as exc:
        flash(f"Not checked yet: {exc}.", "error")
        with unit_of_work() as s:
            return _mapping_page(s, imports.get_job(s, job_id), "", form=form, status=400)
    _enqueue(job_id)
    return redirect(url_for("imports.job", job_id=job_id))


@bp.route("/contacts/import/<int:job_id>/choice", methods=["POST"])
@requires(Role.EDITOR)
def choose(job_id: int) -> BaseResponse:
    choice = request.form.get("choice", "")
    try:
        with unit_of_work() as s:
            imports.choose(s, job_id, choice)
    except (ValidationError, InvalidTransition) as exc:
        flash(str(exc), "error")
        return redirect(url_for("imports.job", job_id=job_id))
    if choice != "nothing":
        _enqueue(job_id)
    return redirect(url_for("imports.job", job_id=job_id))


@bp.route("/contacts/import/<int:job_id>/cancel", methods=["POST"])
@requires(Role.EDITOR)
def cancel(job_id: int) -> BaseResponse:
    try:
        with unit_of_work() as s:
            imports.cancel(s, job_id)
    except InvalidTransition as exc:
        flash(str(exc), "error")
    return redirect(url_for("imports.job", job_id=job_id))


@bp.route("/contacts/import/<int:job_id>/retry", methods=["POST"])
@requires(Role.EDITOR)
def retry(job_id: int) -> BaseResponse:
    try:
        with unit_of_work() as s:
            imports.retry(s, job_id)
    except CampaignsError as exc:
        flash(str(exc), "error")
        return redirect(url_for("imports.job", job_id=job_id))
    if _enqueue(job_id):
        flash("Handed to a worker again.", "success")
    return redirect(url_for("imports.job", job_id=job_id))


@bp.route("/contacts/import/<int:job_id>/progress")
@requires(Role.EDITOR)
def progress(job_id: int) -> dict[str, Any]:
    """The job page's live figures, as JSON for its script (static/import.js)."""
    with unit_of_work() as s:
        return imports.progress(s, job_id, now=utcnow()).as_json()


@bp.route("/contacts/import/<int:job_id>/errors.csv")
@requires(Role.EDITOR)
def errors_csv(job_id: int) -> Response:
    with unit_of_work() as s:
        name = imports.get_job(s, job_id).filename.rsplit(".", 1)[0] or "import"

    def body() -> Iterator[str]:
        with unit_of_work() as s:
            yield from imports.errors_csv(s, job_id)

    safe = "".join(ch for ch in name if ch.isalnum() or ch in "-_")[:60] or "import"
    return Response(stream_with_context(body()), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{safe}-errors.csv"',
    })  # fmt: skip
