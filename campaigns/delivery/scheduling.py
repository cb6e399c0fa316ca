"""Campaign lifecycle: create, schedule, launch (compare-and-set), pause, resume, finish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, joinedload

from campaigns.audience import segments
from campaigns.config import Caps
from campaigns.db import require
from campaigns.delivery import automations, ledger
from campaigns.delivery import caps as capping
from campaigns.errors import InvalidTransition, ValidationError
from campaigns.letters import approvals, authoring
from campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    OPEN_STATES,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryState,
    LetterVersion,
    Segment,
    SegmentKind,
    SegmentTarget,
)
from campaigns.models.letters import LetterNeeds

DEFAULT_MAX_LATENESS = timedelta(hours=24)
# A campaign's points grant, column by column (None throughout: no grant).
GRANT_COLUMNS = ("grant_points", "grant_loyal_points", "grant_loyal_years", "grant_expires_days")


class Choices(TypedDict, total=False):
    """What a user chooses for a broadcast; everything but the segment and letter is optional."""

    segment_id: Required[int]
    letter_version_id: Required[int]
    holdout_percent: int
    rate_per_minute: int | None
    priority: int
    cap_per_week: int | None
    cap_gap_hours: int | None
    grant: Grant | None


def create_campaign(
    session: Session, name: str, *, created_by_id: int | None = None, **choices: Unpack[Choices]
) -> Campaign:
    """Create a draft broadcast of one letter version to one segment (optionally paced).

    Who wins a slot the frequency caps contest is decided by the letter's kind first (legal
    > renewal/expiry > welcome > other), then by `priority` (higher first).
    """
    columns = _checked(session, name, **choices)
    campaign = Campaign(**columns, created_by_id=created_by_id, status=CampaignStatus.DRAFT)
    session.add(campaign)
    session.flush()
    return campaign


def update_draft(
    session: Session, campaign_id: int, name: str, **choices: Unpack[Choices]
) -> Campaign:
    """Change everything a draft was created with, checked as at creation.

    Only a draft: once scheduled its audience may already be in the ledger. A compare-and-set
    on the status makes an edit that races a scheduling lose cleanly (InvalidTransition).
    """
    campaign = get_campaign(session, campaign_id)
    if campaign.status != CampaignStatus.DRAFT:
        raise InvalidTransition(f"a {campaign.status} campaign cannot be edited; duplicate it "
                                "to send it again changed")  # fmt: skip
    return _set_if(session, campaign, CampaignStatus.DRAFT, _checked(session, name, **choices))


def _checked(
    session: Session, name: str, *, segment_id: int, letter_version_id: int,
    holdout_percent: int = 0, rate_per_minute: int | None = None, priority: int = 0,
    cap_per_week: int | None = None, cap_gap_hours: int | None = None,
    grant: Grant | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A campaign's columns from what a user chose, each checked; the first refusal raises."""
    if not name.strip():
        raise ValidationError("a campaign needs a name", field="name")
    if not 0 <= holdout_percent <= 50:
        raise ValidationError("the holdout must be between 0 and 50 percent", field="holdout")
    if rate_per_minute is not None and not 1 <= rate_per_minute <= 1_000_000:
        raise ValidationError("the rate must be at least 1 letter a minute, or empty for none",
                              field="rate_per_minute")  # fmt: skip
    if not -100 <= priority <= 100:
        raise ValidationError("the priority must be between -100 and 100", field="priority")
    if cap_per_week is not None and not 0 <= cap_per_week <= 100:
        raise ValidationError("the campaign's weekly cap must be 0 to 100 marketing letters, "
                              "or empty for the settings'", field="cap_per_week")  # fmt: skip
    if cap_gap_hours is not None and not 0 <= cap_gap_hours <= 720:
        raise ValidationError("the campaign's gap must be 0 to 720 hours, or empty for the "
                              "settings'", field="cap_gap_hours")  # fmt: skip
    if grant is not None:
        grant.check()
    version = authoring.get_version(session, letter_version_id)
    approvals.check_usable(version)
    check_pairing(segments.get_segment(session, segment_id), version)
    return {
        "name": name.strip(), "segment_id": segment_id, "letter_version_id": letter_version_id,
        "holdout_percent": holdout_percent, "rate_per_minute": rate_per_minute,
        "priority": priority, "cap_per_week": cap_per_week, "cap_gap_hours": cap_gap_hours,
        **(grant.columns() if grant is not None else dict.fromkeys(GRANT_COLUMNS)),
    }  # fmt: skip


@dataclass(frozen=True)
class Grant:
    """Service points a campaign's letter gives each recipient when it is sent: `points`,
    or `loyal_points` for customers of at least `loyal_years` years; they expire
    `expires_days` after the letter (None: never)."""

    points: int
    loyal_points: int | None = None
    loyal_years: int | None = None
    expires_days: int | None = None

    def check(self) -> None:
        if not 1 <= self.points <= 1000:
            raise ValidationError("the points given must be 1 to 1,000 a letter",
                                  field="grant_points")  # fmt: skip
        if (self.loyal_points is None) != (self.loyal_years is None):
            raise ValidationError("give both the loyal customers' points and the years that "
                                  "make a customer loyal, or neither",
                                  field="grant_loyal_points")  # fmt: skip
        if self.loyal_points is not None and not 1 <= self.loyal_points <= 1000:
            raise ValidationError("the loyal customers' points must be 1 to 1,000",
                                  field="grant_loyal_points")  # fmt: skip
        if self.loyal_years is not None and not 1 <= self.loyal_years <= 100:
            raise ValidationError("the years that make a customer loyal must be 1 to 100",
                                  field="grant_loyal_years")  # fmt: skip
        if self.expires_days is not None and not 1 <= self.expires_days <= 3650:
            raise ValidationError("the points must expire 1 to 3,650 days after the letter, "
                                  "or never (leave it empty)",
                                  field="grant_expires_days")  # fmt: skip

    def columns(self) -> dict[str, int | None]:
        values = (self.points, self.loyal_points, self.loyal_years, self.expires_days)
        return dict(zip(GRANT_COLUMNS, values, strict=True))

    def describe(self) -> str:
        """ "3 points (5 for customers of 5 years or more), expiring 365 days after the letter"."""
        said = f"{self.points} point{'' if self.points == 1 else 's'}"
        if self.loyal_points is not None:
            said += f" ({self.loyal_points} for customers of {self.loyal_years} years or more)"
        if self.expires_days:
            said += f", expiring {self.expires_days} days after the letter"
        return said

    @classmethod
    def of(cls, campaign: Campaign) -> Grant | None:
        if not campaign.grant_points:
            return None
        return cls(campaign.grant_points, campaign.grant_loyal_points,
                   campaign.grant_loyal_years, campaign.grant_expires_days)  # fmt: skip


def check_pairing(segment: Segment, version: LetterVersion) -> None:
    """Refuse a letter that needs a contract for a segment whose rows carry none."""
    if version.needs != LetterNeeds.CONTRACT:
        return
    if segment.kind == SegmentKind.DYNAMIC and segment.target == SegmentTarget.CONTRACTS:
        return
    uses = ", ".join(f"{{{{ {use} }}}}" for use in authoring.contract_uses(version)[:3])
    raise ValidationError(
        f"the letter {version.label} needs a contract (it uses {uses or 'the contract'}), but "
        f"the segment {segment.name!r} targets contacts, who come without one; choose a "
        "segment that targets contracts, or a letter that uses only the contact (or guards "
        "its contract fields with {% if contract %})",
        field="segment_id",
    )


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    return require(session, Campaign, campaign_id, what="campaign")


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id.desc())))


def _move(
    session: Session, campaign: Campaign, to: CampaignStatus, *, reason: str = ""
) -> Campaign:
    """Change status through the transition table, guarded by a compare-and-set.

    The CAS (`WHERE status = <what we read>`) makes concurrent movers safe: only one of two
    schedulers, or a scheduler and an admin, wins; the loser gets InvalidTransition.
    """
    current = CampaignStatus(campaign.status)
    if to not in CAMPAIGN_TRANSITIONS[current]:
        raise InvalidTransition(f"a {current} campaign cannot become {to}")
    return _set_if(session, campaign, current, {"status": to, "status_reason": reason})


def _set_if(
    session: Session, campaign: Campaign, status: CampaignStatus, values: dict[str, Any]
) -> Campaign:
    """Write `values` only if the campaign is still in `status` (a compare-and-set); a
    campaign that moved meanwhile raises InvalidTransition."""
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise InvalidTransition(f"campaign #{campaign.id} changed meanwhile; reload and retry")
    session.refresh(campaign)
    return campaign


def schedule(session: Session, campaign_id: int, *, send_at: datetime) -> Campaign:
    """Schedule a draft campaign; the scheduler launches it once `send_at` has come."""
    campaign = get_campaign(session, campaign_id)
    # Checked again: a rejection since the draft was made withdraws the approval.
    approvals.check_usable(campaign.letter_version)
    campaign.send_at = send_at
    return _move(session, campaign, CampaignStatus.SCHEDULED)


def pause(session: Session, campaign_id: int, *, reason: str = "paused by a user") -> Campaign:
    """Stop claiming new rows; letters already handed to SMTP finish."""
    return _move(session, get_campaign(session, campaign_id), CampaignStatus.PAUSED, reason=reason)


def resume(session: Session, campaign_id: int) -> list[list[int]]:
    """Resume a paused campaign; return the batches of still-queued rows to enqueue."""
    campaign = _move(session, get_campaign(session, campaign_id), CampaignStatus.RUNNING)
    return queued_batches(session, campaign.id)


def resend_failed(session: Session, campaign_id: int, *, now: datetime) -> list[list[int]]:
    """Queue the campaign's failed rows again (fresh attempts); return batches to enqueue.

    A completed campaign runs again for them; a paused one keeps them for its resume.
    Contacts that hard-bounced meanwhile are suppressed when their row is claimed.
    """
    campaign = get_campaign(session, campaign_id)
    if campaign.status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED,
                               CampaignStatus.COMPLETED):  # fmt: skip
        raise InvalidTransition(f"a {campaign.status} campaign has nothing to resend")
    result = session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.state == DeliveryState.FAILED)
        .values(state=DeliveryState.QUEUED, reason="", attempts=0, due_at=now)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        raise ValidationError("no failed letters to resend", field="campaign")
    if campaign.status == CampaignStatus.COMPLETED:
        campaign.completed_at = None
        _move(session, campaign, CampaignStatus.RUNNING, reason="resending to failed")
    if campaign.status == CampaignStatus.PAUSED:
        return []
    return queued_batches(session, campaign_id)


def cancel(session: Session, campaign_id: int) -> Campaign:
    """Cancel: nothing more is sent; queued rows stay queued and are never claimed."""
    campaign = get_campaign(session, campaign_id)
    return _move(session, campaign, CampaignStatus.CANCELLED, reason="cancelled by a user")


@dataclass(frozen=True)
class Launch:
    campaign_id: int
    added: int
    batches: list[list[int]]


def launch_due(
    session: Session,
    *,
    now: datetime,
    batch_size: int = 200,
    max_lateness: timedelta = DEFAULT_MAX_LATENESS,
    caps: Caps | None = None,
) -> list[Launch]:
    """Launch every scheduled campaign whose time has come; safe when several ticks run."""
    launched = (_launch(session, campaign, now=now, batch_size=batch_size,
                        max_lateness=max_lateness, caps=caps)
                for campaign in due_campaigns(session, now=now))  # fmt: skip
    return [launch for launch in launched if launch is not None]


def due_campaigns(session: Session, *, now: datetime) -> list[Campaign]:
    """Scheduled campaigns whose time has come, the highest priority first."""
    due = session.scalars(
        select(Campaign)
        .where(Campaign.status == CampaignStatus.SCHEDULED, Campaign.send_at <= now)
        .options(joinedload(Campaign.letter_version).joinedload(LetterVersion.letter))
    ).all()
    return sorted(due, key=lambda c: (-campaign_rank(c), -c.priority, c.send_at or now, c.id))


def campaign_rank(campaign: Campaign) -> int:
    letter = campaign.letter_version.letter
    return capping.rank(letter.category, letter.kind)


def _launch(
    session: Session, campaign: Campaign, *, now: datetime, batch_size: int,
    max_lateness: timedelta, caps: Caps | None,
) -> Launch | None:  # fmt: skip
    """Move a due campaign to running (compare-and-set) and write its ledger rows.

    A campaign more than `max_lateness` overdue (a restored backup, a long outage) is not
    sent automatically: it goes back to draft with the reason shown in the admin.
    """
    try:
        if campaign.send_at is not None and now - campaign.send_at > max_lateness:
            _move(session, campaign, CampaignStatus.DRAFT, reason=(
                f"not sent: it was due {campaign.send_at:%Y-%m-%d %H:%M} UTC, more than "
                f"{max_lateness} ago; check it and schedule it again"
            ))  # fmt: skip
            return None
        _move(session, campaign, CampaignStatus.RUNNING)
    except InvalidTransition:
        return None  # another tick got there first
    campaign.started_at = now
    added = ledger.materialise(session, campaign, now=now, caps=caps)
    launch = Launch(campaign.id, added, queued_batches(session, campaign.id, size=batch_size))
    complete_if_done(session, campaign.id, now=now)
    return launch


@dataclass(frozen=True)
class Tick:
    """What one scheduler tick decided: campaigns launched, automation letters written
    (per step), deferred letters queued or given up, and the batches to enqueue."""

    launches: list[Launch]
    written: dict[int, int]
    released: int
    given_up: int
    renewed: int
    batches: list[list[int]]


def run_tick(
    session: Session, *, now: datetime, caps: Caps, batch_size: int = 200,
    max_lateness: timedelta = DEFAULT_MAX_LATENESS, with_automations: bool = True,
) -> Tick:  # fmt: skip
    """Decide everything due now, in priority order, in one transaction.

    Automation letters that waited for a slot go first; then campaigns and automation steps
    by priority (legal > renewal/expiry > welcome > other marketing), so the caps give a
    contested slot to the more important letter. Safe when several ticks run: campaigns
    move by compare-and-set, and ledger rows have unique keys. `with_automations=False`
    launches campaigns only (automations are decided less often: see workers.scheduler).
    """
    steps = automations.enabled_steps(session) if with_automations else []
    zones = automations.time_zones(session) if steps else []
    renewed = automations.drop_renewed(session) if with_automations else 0
    released = given_up = 0
    for step in steps:
        queued, gone = automations.reconsider(session, step, now=now, caps=caps, zones=zones)
        released, given_up = released + queued, given_up + gone
    work: list[tuple[int, int, Campaign | automations.Step]] = [
        (campaign_rank(c), c.priority, c) for c in due_campaigns(session, now=now)
    ]
    work += [(step.rank, 0, step) for step in steps]
    launches: list[Launch] = []
    written: dict[int, int] = {}
    for _rank, _priority, item in sorted(work, key=lambda w: (-w[0], -w[1])):
        if isinstance(item, Campaign):
            launch = _launch(session, item, now=now, batch_size=batch_size,
                             max_lateness=max_lateness, caps=caps)  # fmt: skip
            launches += [launch] if launch is not None else []
        else:
            written[item.timing.step.id] = automations.fire(
                session, item, now=now, caps=caps, zones=zones
            )
    batches = automations.queued_now(session, now=now, size=batch_size) if steps else []
    return Tick(launches, written, released, given_up, renewed, batches)


def queued_batches(session: Session, campaign_id: int, *, size: int = 200) -> list[list[int]]:
    """Return the campaign's queued ledger ids in batches of `size`."""
    ids = list(session.scalars(
        select(Delivery.id)
        .where(Delivery.campaign_id == campaign_id, Delivery.state == DeliveryState.QUEUED)
        .order_by(Delivery.id)
    ))  # fmt: skip
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def complete_if_done(session: Session, campaign_id: int, *, now: datetime) -> bool:
    """Mark a running campaign completed once no row is queued or sending."""
    still_open = session.scalar(
        select(exists().where(Delivery.campaign_id == campaign_id, Delivery.state.in_(OPEN_STATES)))
    )
    if still_open:
        return False
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.RUNNING)
        .values(status=CampaignStatus.COMPLETED, completed_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def is_sending(session: Session, campaign_id: int | None) -> bool:
    """Whether rows of this campaign may be claimed (automation rows always may)."""
    if campaign_id is None:
        return True
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    return status == CampaignStatus.RUNNING
