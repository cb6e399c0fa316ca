"""A legal letter's version is used only after a second user approved it."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from campaigns.accounts import users
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.errors import PermissionDenied, ValidationError
from campaigns.letters import approvals, authoring
from campaigns.models import AuditEntry, LetterCategory, LetterKind, LetterVersion, Role
from tests.factories import make_contact, make_segment

POLICY = (
    "<p>Dear {{ contact.first_name }}, email support stays free; priority phone support is "
    'charged per incident.</p><p><a href="https://example.com/terms">Our terms</a></p>'
    '<p><a href="{{ acknowledge_url }}">I have read the terms</a></p>'
)


def _people(db: Database) -> tuple[int, int, int]:
    with db.unit_of_work() as s:
        author = users.create_user(s, "author@example.com", "a long password", role=Role.EDITOR)
        second = users.create_user(s, "second@example.com", "a long password", role=Role.ADMIN)
        viewer = users.create_user(s, "viewer@example.com", "a long password", role=Role.VIEWER)
        return author.id, second.id, viewer.id


def _policy_version(db: Database, author_id: int) -> tuple[int, int]:
    with db.unit_of_work() as s:
        make_contact(s, "ada@example.com", first_name="Ada")
        letter = authoring.create_letter(
            s, "Policy", kind=LetterKind.POLICY, category=LetterCategory.LEGAL
        )
        version = authoring.add_version(
            s, letter.id, subject="Our support terms", html=POLICY, created_by_id=author_id
        )
        return version.id, make_segment(s).id


def test_a_policy_version_cannot_be_scheduled_before_a_second_user_approves_it(
    db: Database,
) -> None:
    author, second, _ = _people(db)
    version_id, segment_id = _policy_version(db, author)
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="awaits approval"):
        scheduling.create_campaign(s, "Terms", segment_id=segment_id, letter_version_id=version_id)

    with db.unit_of_work() as s:
        approvals.approve(s, version_id, user_id=second, comment="Legal checked it")
    with db.unit_of_work() as s:
        campaign = scheduling.create_campaign(
            s, "Terms", segment_id=segment_id, letter_version_id=version_id
        )
        scheduled = scheduling.schedule(s, campaign.id, send_at=utcnow())
        assert scheduled.status == "scheduled"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action.like("letter_version.%")))
        (audited,) = entry.all()
        assert (audited.action, audited.user_id, audited.target_id) == (
            "letter_version.approved", second, version_id,
        )  # fmt: skip


def test_the_author_cannot_approve_their_own_version_nor_can_a_viewer(db: Database) -> None:
    author, _, viewer = _people(db)
    version_id, _ = _policy_version(db, author)
    with db.unit_of_work() as s, pytest.raises(PermissionDenied, match="another editor"):
        approvals.approve(s, version_id, user_id=author)
    with db.unit_of_work() as s, pytest.raises(PermissionDenied, match="editor or an admin"):
        approvals.approve(s, version_id, user_id=viewer)
    with db.unit_of_work() as s:
        assert approvals.status(authoring.get_version(s, version_id)).state == "awaiting approval"


def test_a_rejection_keeps_its_comment_and_withdraws_an_earlier_approval(db: Database) -> None:
    author, second, _ = _people(db)
    version_id, segment_id = _policy_version(db, author)
    with db.unit_of_work() as s:
        approvals.approve(s, version_id, user_id=second)
        campaign_id = scheduling.create_campaign(
            s, "Terms", segment_id=segment_id, letter_version_id=version_id
        ).id
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="say why"):
        approvals.reject(s, version_id, user_id=second, comment="  ")
    with db.unit_of_work() as s:
        approvals.reject(s, version_id, user_id=second, comment="The phone fee is wrong")

    with db.unit_of_work() as s:
        (row, earlier) = approvals.decisions(s, authoring.get_version(s, version_id).letter_id)
        assert (row.decision, row.comment, row.user) == (
            "rejected", "The phone fee is wrong", "second@example.com",
        )  # fmt: skip
        assert earlier.decision == "approved"
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="The phone fee is wrong"):
        scheduling.schedule(s, campaign_id, send_at=utcnow())


def test_letters_that_are_not_legal_need_no_approval(db: Database) -> None:
    author, second, _ = _people(db)
    with db.unit_of_work() as s:
        letter = authoring.create_letter(
            s, "Hello", kind=LetterKind.WELCOME, category=LetterCategory.SERVICE
        )
        version = authoring.add_version(s, letter.id, subject="Hi", html="<p>Hi</p>",
                                        created_by_id=author)  # fmt: skip
        assert approvals.why_not_usable(version) is None
        with pytest.raises(ValidationError, match="needs no approval"):
            approvals.approve(s, version.id, user_id=second)


def test_saved_versions_cannot_be_changed(db: Database) -> None:
    author, _, _ = _people(db)
    version_id, _ = _policy_version(db, author)
    with pytest.raises(ValidationError, match="cannot be changed"), db.unit_of_work() as s:
        authoring.get_version(s, version_id).subject = "Changed"
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="cannot be updated"):
        s.execute(update(LetterVersion).values(html_source="<p>sneaky</p>"))
    # Raw SQL meets the database's trigger.
    with pytest.raises(Exception, match="cannot be changed"), db.unit_of_work() as s:
        s.execute(text("UPDATE letter_versions SET requires_approval = false"))
    with db.unit_of_work() as s:
        version = authoring.get_version(s, version_id)
        assert (version.subject, version.requires_approval) == ("Our support terms", True)
