"""Survey letters, their ledger rows and people's ratings, written straight into the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from campaigns.audience import contacts
from campaigns.letters import authoring
from campaigns.models import Letter, LetterCategory, LetterKind
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
