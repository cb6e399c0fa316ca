"""Survey letters, their ledger rows and people's ratings, written straight into the database."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from campaigns.audience import contacts, segments
from campaigns.db import Database
from campaigns.delivery import automations, scheduling
from campaigns.letters import authoring
from campaigns.models import (
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Letter,
    LetterCategory,
    LetterKind,
    SurveyResponse,
)
from campaigns.service import surveys
from campaigns.tracking.machines import Hit, judge_click
from tests.tracking.ledger_rows import letter

SURVEY_BODY = "<p>How did we do?</p>" + "".join(
    f'<a href="{{{{ rating_url({n}) }}}}">{n}</a> ' for n in range(1, 6)
)
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0 Safari/537.36")  # fmt: skip
PERSON = surveys.Client("203.0.113.7", BROWSER)


def survey_version(s: Session, *, scale: str = "csat", name: str | None = None) -> int:
    """A survey letter on `scale` with one version; the version's id."""
    made = authoring.create_letter(s, name or f"Survey ({scale})", kind=LetterKind.SURVEY,
                                   category=LetterCategory.SERVICE)  # fmt: skip
    version = authoring.add_version(s, made.id, subject="How did we do?", html=SURVEY_BODY)
    s.get_one(Letter, made.id).survey_scale = scale  # its links (1–5) are on either scale
    s.flush()
    return version.id


def survey_row(s: Session, email: str, version_id: int, at: datetime, **fields: object) -> int:
    """A survey letter sent to a new contact `email` at `at`: the ledger row's id."""
    contact = contacts.create_contact(s, email, first_name=email.partition("@")[0].title())
    return letter(s, contact.id, None, version_id, at, **fields)  # type: ignore[arg-type]


def person_clicks(
    s: Session, delivery_id: int, score: int, at: datetime, *, agent: str = BROWSER
) -> surveys.Answer:
    """A click on a rating link, judged by the machine-traffic rules as the web edge does."""
    hit = Hit("GET", "203.0.113.7", agent)

    def judge(**seen: object) -> tuple[str | None, set[int]]:
        return judge_click(hit, **seen)  # type: ignore[arg-type]

    return surveys.click(s, delivery_id, score, judge=judge,
                         client=surveys.Client("203.0.113.7", agent), now=at)  # fmt: skip


GOLD_SCORES = (5, 5, 4, 3, 1, 2)  # g0–g5, CSAT
GOLD_COMMENTS = {0: "Quick fix, thank you", 4: "=Waited three days for a call back", 5: ""}
NPS_SCORES = (10, 9, 9, 8, 7, 6, 0)  # n0–n6
NPS_COMMENTS = {6: "Nobody called back"}


def results_data(db: Database, start: datetime) -> dict[str, int]:
    """Survey letters from `start` (a UTC midnight) on, and what people made of them:

    - campaign "Gold survey" (CSAT) to the segment "Gold": g0–g9 sent on days 0–4 (g_i on
      day i % 5, 09:00); g0–g5 rated 5, 5, 4, 3, 1, 2 the day after, g4 and g0 with a comment;
      a scanner followed every rating link of g9 (5 clicks discarded); g10 failed.
    - automation "After the end" (NPS), its step "14 days after the end", to no segment:
      n0–n7 sent on day 7; n0–n6 rated 10, 9, 9, 8, 7, 6, 0 on day 8 (n6: "Nobody called
      back"); two machine clicks on n7's links.

    By hand: Gold sent 10, 6 responses (60 %), CSAT 3/6 = 50.0 %, 2 to follow up (1 and 2);
    the step: sent 8, 7 responses, NPS (3 promoters − 2 detractors) / 7 = 14.3, 2 to follow
    up; all: 18 sent, 13 responses (72.2 %), 7 clicks discarded, 4 detractors.
    """
    with db.unit_of_work() as s:
        gold = segments.create_segment(s, "Gold", rules={"match": "all", "conditions": []})
        csat, nps = survey_version(s, name="Support survey"), survey_version(s, scale="nps")
        campaign = scheduling.create_campaign(s, "Gold survey", segment_id=gold.id,
                                              letter_version_id=csat)  # fmt: skip
        series = automations.create_automation(
            s, "After the end", trigger="after_end", steps=[automations.StepInput(14, nps)]
        )
        step = series.steps[0].id
        for i in range(11):
            at = start + timedelta(days=i % 5, hours=9)
            state = DeliveryState.FAILED if i == 10 else DeliveryState.SENT
            row = survey_row(s, f"g{i}@example.com", csat, at, state=state, segment_id=gold.id,
                             campaign_id=campaign.id)  # fmt: skip
            if i < len(GOLD_SCORES):
                respond(s, row, "csat", GOLD_SCORES[i], at + timedelta(days=1),
                         GOLD_COMMENTS.get(i, ""))  # fmt: skip
            if i == 9:
                for n in range(5):
                    _rating_click(s, row, at + timedelta(hours=1, seconds=0.2 * n), n + 1)
        for i in range(8):
            at = start + timedelta(days=7, hours=9)
            row = survey_row(s, f"n{i}@example.com", nps, at, automation_step_id=step)
            if i < len(NPS_SCORES):
                respond(s, row, "nps", NPS_SCORES[i], at + timedelta(days=1, minutes=i),
                         NPS_COMMENTS.get(i, ""))  # fmt: skip
            else:
                _rating_click(s, row, at + timedelta(seconds=2), 0)
                _rating_click(s, row, at + timedelta(seconds=2.5), 10)
        return {"gold": gold.id, "campaign": campaign.id, "automation": series.id, "step": step}


def respond(s: Session, delivery_id: int, scale: str, score: int, at: datetime,
             comment: str) -> None:  # fmt: skip
    row = s.get_one(Delivery, delivery_id)
    s.add(SurveyResponse(
        delivery_id=delivery_id, contact_id=row.contact_id, scale=scale, score=score,
        comment=comment, responded_at=at,
        detractor_at=at if surveys.is_detractor(scale, score) else None,
    ))  # fmt: skip
    s.flush()


def _rating_click(s: Session, delivery_id: int, at: datetime, score: int) -> None:
    row = s.get_one(Delivery, delivery_id)
    s.add(Event(kind=EventKind.RATING, delivery_id=delivery_id, contact_id=row.contact_id,
                occurred_at=at, is_machine=True,
                detail={"score": score, "machine": "links-together"}))  # fmt: skip
    s.flush()
