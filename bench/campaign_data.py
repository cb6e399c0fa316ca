"""A campaign to everyone in a fresh database: N contacts, one ~10 KB letter, scheduled now."""

from __future__ import annotations

from sqlalchemy import Integer, String, Table, cast, insert, literal, literal_column, select

from campaigns.audience.segments import create_segment
from campaigns.db import Database, UTCDateTime, utcnow
from campaigns.delivery.scheduling import create_campaign, schedule
from campaigns.letters.authoring import add_version, create_letter
from campaigns.models import Contact, LetterCategory, LetterKind


def insert_contacts(database: Database, count: int) -> None:
    """Insert `count` active contacts with one INSERT … SELECT over a recursive counter."""
    one = literal_column("1", Integer)
    numbers = select(one.label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.n + one).where(numbers.c.n < count))
    number = cast(numbers.c.n, String)
    table = Contact.__table__
    assert isinstance(table, Table)
    now = literal(utcnow(), UTCDateTime())
    rows = select(
        literal("contact") + number + literal("@example.com"),
        literal("Customer"),
        literal("No. ") + number,
        literal("en"),
        literal("UTC"),
        literal("active"),
        literal({}, table.c.attributes.type),
        literal(0, table.c.lifetime_spend.type),
        now,
        now,
    )
    columns = ["email", "first_name", "last_name", "locale", "time_zone", "status",
               "attributes", "lifetime_spend", "created_at", "updated_at"]  # fmt: skip
    with database.unit_of_work() as session:
        session.execute(insert(table).from_select(columns, rows))


def letter_html() -> str:
    """Return about 10 KB of letter HTML with merge fields and one link."""
    rows = "\n".join(
        f'<tr><td style="padding:4px 8px;border-bottom:1px solid #dddddd">SC-{n:05d}</td>'
        f'<td style="padding:4px 8px;border-bottom:1px solid #dddddd">On-site support for '
        f"unit {n * 37 % 1000:03d}, renewal due in {n % 12 + 1} months</td></tr>"
        for n in range(50)
    )
    return f"""<html><head><style>p {{ font-family: Arial, sans-serif; color: #333333; }}</style>
</head><body>
<p>Dear {{{{ contact.first_name }}}} {{{{ contact.last_name }}}},</p>
<p>These are the service contracts registered for {{{{ contact.email }}}}:</p>
<table>
{rows}
</table>
<p><a href="https://example.com/contracts">See your contracts</a></p>
<p>Kind regards,<br>{{{{ sender_name }}}}</p>
</body></html>"""


def scheduled_campaign(database: Database) -> int:
    """Create a segment of everyone, a service letter and a campaign scheduled for now."""
    with database.unit_of_work() as session:
        segment = create_segment(
            session, "Everyone (bench)", rules={"match": "all", "conditions": []}
        )
        letter = create_letter(
            session, "Service notice (bench)", kind=LetterKind.OTHER,
            category=LetterCategory.SERVICE,
        )  # fmt: skip
        version = add_version(
            session, letter.id, subject="Your service contracts, {{ contact.first_name }}",
            html=letter_html(),
        )  # fmt: skip
        campaign = create_campaign(
            session, "Campaign send (bench)", segment_id=segment.id, letter_version_id=version.id
        )
        schedule(session, campaign.id, send_at=utcnow())
        return campaign.id
