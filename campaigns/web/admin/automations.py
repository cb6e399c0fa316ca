"""Automations: the list, the editor of a series of steps, the next 14 days' preview."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.audience import segments
from campaigns.db import utcnow
from campaigns.delivery import automations
from campaigns.delivery.automations import Planned, StepInput
from campaigns.errors import ValidationError
from campaigns.letters import approvals, authoring
from campaigns.models import Automation, AutomationStep, AutomationTrigger, LetterKind, Role
from campaigns.web.auth import requires, same_site_path
from campaigns.web.context import unit_of_work

bp = Blueprint("automations", __name__)
TRIGGERS = {
    AutomationTrigger.BEFORE_END: "Days before the contract ends",
    AutomationTrigger.ON_END: "On the end date",
    AutomationTrigger.AFTER_END: "Days after the end (win-back)",
    AutomationTrigger.ON_START: "When the contract starts",
    AutomationTrigger.UNACKNOWLEDGED: "Days after a policy letter, until acknowledged",
    AutomationTrigger.POINTS_LOW: "When the points balance drops to a threshold",
    AutomationTrigger.POINTS_EXPIRING: "Days before service points expire",
    AutomationTrigger.INCIDENT_CLOSED: "Days after a support incident is closed (survey)",
}
# What a step's days count from, under each trigger (beside each step's days).
UNITS = {
    AutomationTrigger.BEFORE_END: "days before the end",
    AutomationTrigger.ON_END: "days after the end (0: on the end date)",
    AutomationTrigger.AFTER_END: "days after the end",
    AutomationTrigger.ON_START: "days after the start (0: on the day it starts)",
    AutomationTrigger.UNACKNOWLEDGED: "days after the letter, if not acknowledged",
    AutomationTrigger.POINTS_LOW: "days after the balance dropped (0: the same day)",
    AutomationTrigger.POINTS_EXPIRING: "days before the points expire",
    AutomationTrigger.INCIDENT_CLOSED: "days after the incident was closed",
}
WEEKDAYS = [("1", "Mon"), ("2", "Tue"), ("3", "Wed"), ("4", "Thu"), ("5", "Fri"), ("6", "Sat"),
            ("7", "Sun")]  # fmt: skip
PREVIEW_DAYS = 14
# Contracts the preview reads per step at most: enough for any real day's letters, and a
# page that answers in time however large the audience.
PREVIEW_LIMIT = 5_000
SAMPLE = 5
# Domain fields named differently from the form's inputs.
INPUTS = {"holdout": "holdout_percent"}


@dataclass
class Draft:
    """The editor's values as typed (strings), from a stored automation or a posted form."""

    name: str = ""
    trigger: str = AutomationTrigger.BEFORE_END.value
    steps: list[tuple[str, str]] = field(default_factory=list)  # none: one blank row shown
    segment_id: str = ""
    letter_id: str = ""  # the policy letter awaited (reminders to acknowledge)
    threshold: str = ""  # the balance at or below which "points_low" fires
    holdout_percent: str = "0"
    max_late_days: str = "3"
    window_days: str = automations.WEEKDAYS
    window_start_hour: str = "0"
    window_end_hour: str = "24"
    enabled: bool = False

    @classmethod
    def of(cls, automation: Automation) -> Draft:
        return cls(
            name=automation.name, trigger=str(automation.trigger),
            steps=[(str(t.step.offset_days), str(t.step.letter_version_id))
                   for t in automations.timings(automation)],
            segment_id=str(automation.segment_id or ""),
            letter_id=str(automation.letter_id or ""),
            threshold="" if automation.threshold is None else str(automation.threshold),
            holdout_percent=str(automation.holdout_percent),
            max_late_days=str(automation.max_late_days), window_days=automation.window_days,
            window_start_hour=str(automation.window_start_hour),
            window_end_hour=str(automation.window_end_hour), enabled=automation.enabled,
        )  # fmt: skip

    @classmethod
    def posted(cls, form: Any) -> Draft:
        return cls(
            name=form.get("name", ""), trigger=form.get("trigger", ""),
            steps=[(days, version) for days, version in _rows(form) if days or version],
            segment_id=form.get("segment_id", ""), letter_id=form.get("letter_id", ""),
            threshold=form.get("threshold", "").strip(),
            holdout_percent=form.get("holdout_percent", "").strip(),
            max_late_days=form.get("max_late_days", "").strip(),
            window_days="".join(form.getlist("window_days")),
            window_start_hour=form.get("window_start_hour", ""),
            window_end_hour=form.get("window_end_hour", ""),
            enabled=bool(form.get("enabled")),
        )  # fmt: skip

    def arguments(self) -> dict[str, Any]:
        """The domain's keyword arguments; a value that is no number is refused by name."""
        steps = []
        for index, (days, version) in enumerate(self.steps, start=1):
            offset = _number(days, f"steps.{index}.offset_days",
                             f"step {index}: give the days as a whole number")  # fmt: skip
            chosen = _number(version, f"steps.{index}.letter_version_id",
                             f"step {index}: choose a letter version")  # fmt: skip
            steps.append(StepInput(offset, chosen))
        return {
            "name": self.name, "trigger": self.trigger, "steps": steps,
            "segment_id": int(self.segment_id) if self.segment_id.isdigit() else None,
            "letter_id": int(self.letter_id) if self.letter_id.isdigit() else None,
            "threshold": _number(self.threshold, "threshold", "give the balance as a whole "
                                 "number of points") if self.threshold else None,
            "holdout_percent": _number(self.holdout_percent or "0", "holdout",
                                       "the holdout must be a whole number of percent"),
            "max_late_days": _number(self.max_late_days or "0", "max_late_days",
                                     "the lateness allowed must be a whole number of days"),
            "window_days": self.window_days,
            "window_start_hour": _number(self.window_start_hour, "window_start_hour",
                                         "choose the hour the send window opens"),
            "window_end_hour": _number(self.window_end_hour, "window_start_hour",
                                       "choose the hour the send window closes"),
            "enabled": self.enabled,
        }  # fmt: skip


def _number(raw: str, name: str, message: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValidationError(message, field=name) from None


@bp.route("/automations")
@requires(Role.VIEWER)
def automation_list() -> str:
    with unit_of_work() as s:
        return render_template("admin/automations.html",
                               automations=automations.list_automations(s), triggers=TRIGGERS,
                               day_names=dict(WEEKDAYS))  # fmt: skip


@bp.route("/automations/new")
@requires(Role.EDITOR)
def automation_new() -> str:
    return _editor(Draft())


@bp.route("/automations", methods=["POST"])
@requires(Role.EDITOR)
def automation_create() -> Response | tuple[str, int] | str:
    draft = Draft.posted(request.form)
    if _rearranged(draft):
        return _editor(draft)
    try:
        with unit_of_work() as s:
            arguments = draft.arguments()
            automation = automations.create_automation(s, arguments.pop("name"), **arguments)
            automation_id = automation.id
    except ValidationError as exc:
        return _editor(draft, error=exc), 400
    flash(_saved(draft), "success")
    return redirect(url_for("automations.automation_detail", automation_id=automation_id))


@bp.route("/automations/<int:automation_id>")
@requires(Role.VIEWER)
def automation_detail(automation_id: int) -> str:
    return _editor(None, automation_id=automation_id)


@bp.route("/automations/<int:automation_id>", methods=["POST"])
@requires(Role.EDITOR)
def automation_update(automation_id: int) -> Response | tuple[str, int] | str:
    draft = Draft.posted(request.form)
    if _rearranged(draft):
        return _editor(draft, automation_id=automation_id)
    try:
        with unit_of_work() as s:
            automation = automations.get_automation(s, automation_id)
            automations.update_automation(s, automation, **draft.arguments())
    except ValidationError as exc:
        return _editor(draft, automation_id=automation_id, error=exc), 400
    flash(_saved(draft), "success")
    return redirect(url_for("automations.automation_detail", automation_id=automation_id))


@bp.route("/automations/<int:automation_id>/enabled", methods=["POST"])
@requires(Role.EDITOR)
def automation_enable(automation_id: int) -> Response:
    enabled = request.form.get("enabled") == "1"
    with unit_of_work() as s:
        name = automations.set_enabled(s, automation_id, enabled).name
    flash(f"{name} is on: its letters go as they fall due." if enabled
          else f"{name} is off: no more of its letters go until it is on again.",
          "success")  # fmt: skip
    back = same_site_path(request.form.get("next", ""))
    return redirect(back or url_for("automations.automation_list"))


def _rearranged(draft: Draft) -> bool:
    """Add or remove a step row without JavaScript (the "Add step" and "Remove" buttons);
    rows count as posted, blank ones included (Draft.posted drops those)."""
    form = request.form
    removed = form.get("remove_step", "")
    if "add_step" in form:
        draft.steps = [*_rows(form), ("", "")]
    elif removed.isdigit():
        draft.steps = [row for i, row in enumerate(_rows(form)) if i != int(removed)]
    else:
        return False
    return True


def _rows(form: Any) -> list[tuple[str, str]]:
    """The step rows as posted: (days, letter version id), blank ones included."""
    days, versions = form.getlist("step_days"), form.getlist("step_version")
    return [(d.strip(), v) for d, v in zip(days, versions, strict=False)]


def _saved(draft: Draft) -> str:
    return "Automation saved." + ("" if draft.enabled else
                                  " It is off: turn it on when its letters may go.")  # fmt: skip


def _editor(
    draft: Draft | None, *, automation_id: int | None = None, error: ValidationError | None = None
) -> str:
    """The editor page: a new automation, or a stored one with its preview; after a refused
    form, the values as typed and the error beside its field."""
    with unit_of_work() as s:
        automation = preview = None
        if automation_id is not None:
            automation = automations.get_automation(s, automation_id)
            if draft is None:  # as stored: with its preview (a form being corrected has none)
                preview = calendar(s, automation, today=utcnow().date())
                draft = Draft.of(automation)
        versions = authoring.list_versions(s)
        errors = {} if error is None else {INPUTS.get(error.field or "", error.field): str(error)}
        return render_template(
            "admin/automation.html", automation=automation, draft=draft or Draft(), error=error,
            errors=errors, preview=preview, triggers=TRIGGERS, units=UNITS, weekdays=WEEKDAYS,
            day_names=dict(WEEKDAYS),
            limit=PREVIEW_LIMIT, days=PREVIEW_DAYS,
            versions=versions, unusable=approvals.usability(s, versions),
            segments=segments.list_segments(s),
            policy_letters=[letter for letter in authoring.list_letters(s)
                            if letter.kind == LetterKind.POLICY],
        )  # fmt: skip


@dataclass(frozen=True)
class StepCount:
    step: AutomationStep
    count: int


@dataclass(frozen=True)
class Day:
    """One day of the preview: how many letters of each step, and a few of their recipients."""

    day: date
    steps: list[StepCount]
    sample: list[Planned]
    total: int


@dataclass(frozen=True)
class Calendar:
    days: list[Day]
    total: int
    cut: list[AutomationStep]  # steps with more contracts than the preview reads


def calendar(s: Session, automation: Automation, *, today: date) -> Calendar:
    """The preview laid out one row a day, every day of the window, the empty ones too."""
    planned = automations.preview(s, automation, today=today, days=PREVIEW_DAYS,
                                  limit=PREVIEW_LIMIT)  # fmt: skip
    per_step = Counter(p.step.id for p in planned)
    by_day: dict[date, list[Planned]] = {}
    for p in planned:
        by_day.setdefault(p.day, []).append(p)
    days = []
    for n in range(PREVIEW_DAYS):
        when = today + timedelta(days=n)
        due = by_day.get(when, [])
        counts = Counter(p.step.id for p in due)
        steps = {p.step.id: p.step for p in due}
        days.append(Day(when, [StepCount(steps[i], c) for i, c in counts.items()],
                        due[:SAMPLE], len(due)))  # fmt: skip
    cut = [step for step in automation.steps if per_step[step.id] >= PREVIEW_LIMIT]
    return Calendar(days, len(planned), cut)
