"""Segments as a user meets them: refused trees name the place, contract rules mean one contract."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, select

from campaigns.audience import contacts, segments
from campaigns.db import Database, utcnow
from campaigns.errors import ValidationError
from campaigns.models import Contact, ContractStatus, SegmentKind, SegmentTarget

TODAY = utcnow().date()


def tree(*conditions: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"match": match, "conditions": list(conditions)}


ACTIVE = {"field": "contract.status", "op": "eq", "value": "active"}
ENDS_SOON = {"field": "contract.ends_on", "op": "in_next_days", "value": 30}


def customer(s: Any, email: str, *contracts: tuple[str, int], **fields: Any) -> int:
    """A contact with contracts given as (status, days until the end)."""
    contact = contacts.create_contact(s, email, **fields)
    for status, days in contracts:
        contract = contacts.add_contract(
            s, contact.id, product="Support", plan="Basic", starts_on=date(2020, 1, 1),
            ends_on=TODAY + timedelta(days=days),
        )  # fmt: skip
        contract.status = ContractStatus(status)
    s.flush()
    return contact.id


@pytest.mark.parametrize(
    ("rules", "place", "complaint"),
    [
        (tree({"field": "contact.shoe_size", "op": "eq", "value": "42"}),
         "rules.conditions[0].field", "unknown field 'contact.shoe_size'"),
        (tree(ACTIVE, ENDS_SOON, {"field": "contact.lifetime_spend", "op": "gt", "value": "lots"}),
         "rules.conditions[2].value", "must be a number"),
        (tree(tree({"field": "contract.ends_on", "op": "between", "value": ["2026-01-01", 5]})),
         "rules.conditions[0].conditions[0].value[1]", "must be a date"),
        (tree({"field": "contract.status", "op": "eq", "value": "active' OR '1'='1"}),
         "rules.conditions[0].value", "is not one of"),
        (tree({"field": "contact.email", "op": "gt", "value": "a"}),
         "rules.conditions[0].op", "does not apply to text"),
        (tree({"field": "contact.attributes.size", "op": "eq", "value": 3}),
         "rules.conditions[0].type", "needs a type"),
        (tree({"field": "contact.attributes.a;drop", "type": "text", "op": "eq", "value": "x"}),
         "rules.conditions[0].field", "attribute name"),
        (tree({"engagement": "opened", "days": 14, "letter_kind": "flyer"}),
         "rules.conditions[0].letter_kind", "Input should be"),
        (tree({"field": "contact.email", "op": "eq", "value": "a\x00b"}),
         "rules.conditions[0].value", "cannot be stored"),
        (tree({"field": "contact.email", "op": "eq", "value": "a", "sql": "DROP TABLE"}),
         "rules.conditions[0].sql", "Extra inputs"),
        (tree({"what": 1}), "rules.conditions[0]", "a condition needs one of"),
        (tree(match="sometimes"), "rules.match", "Input should be 'all', 'any' or 'none'"),
        ({"match": "all", "conditions": [tree(tree(tree(tree(tree(tree()))))) ]},
         "rules" + ".conditions[0]" * 6, "deeper than 6"),
    ],
)  # fmt: skip
def test_a_bad_tree_is_refused_naming_its_place(
    db: Database, rules: dict[str, Any], place: str, complaint: str
) -> None:
    with db.unit_of_work() as s, pytest.raises(ValidationError) as refused:
        segments.create_segment(s, "Bad", rules=rules)
    assert str(refused.value).startswith(f"{place}: "), str(refused.value)
    assert complaint in str(refused.value)
    assert refused.value.field == place


def test_a_segment_that_would_include_itself_is_refused_directly_or_through_others(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        a = segments.create_segment(s, "A", rules=tree())
        b = segments.create_segment(s, "B", rules=tree({"segment": a.id}))
        c = segments.create_segment(s, "C", rules=tree(ACTIVE, {"segment": b.id}))
    for rules in (tree({"segment": a.id}), tree(ACTIVE, tree({"segment": c.id}, match="none"))):
        with db.unit_of_work() as s, pytest.raises(ValidationError) as refused:
            segments.update_segment(s, a.id, name="A", rules=rules)
        assert "may not include itself" in str(refused.value)
    assert "rules.conditions[1].conditions[0].segment: this segment → C → B → this segment" in \
        str(refused.value)  # fmt: skip
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="no segment #999"):
        segments.create_segment(s, "D", rules=tree({"segment": 999}))


def test_values_that_look_like_sql_are_compared_as_plain_text(db: Database) -> None:
    evil = "x'); DROP TABLE contacts; --"
    with db.unit_of_work() as s:
        customer(s, "evil@example.com", first_name=evil)
        customer(s, "plain@example.com", first_name="x")
        seg = segments.create_segment(s, "Evil", rules=tree(
            {"field": "contact.first_name", "op": "eq", "value": evil},
            {"field": "contact.last_name", "op": "not_in", "value": ["%", "_", "' OR 1=1 --"]},
            match="all"))  # fmt: skip
        assert [m.email for m in segments.list_members(s, seg)] == ["evil@example.com"]
        like = segments.create_segment(s, "Like", rules=tree(
            {"field": "contact.first_name", "op": "contains", "value": "%"}))  # fmt: skip
        assert segments.list_members(s, like) == []
        exact = segments.create_segment(s, "Exact", rules=tree(
            {"field": "contact.first_name", "op": "eq", "value": evil}))  # fmt: skip
        assert [m.email for m in segments.list_members(s, exact)] == ["evil@example.com"]
        assert "contacts" in inspect(s.connection()).get_table_names()


def test_contract_conditions_in_one_group_are_about_the_same_contract(db: Database) -> None:
    with db.unit_of_work() as s:
        both = customer(s, "both@example.com", ("active", 10))
        # An active contract ending late and an expired one ending soon: no single contract.
        customer(s, "split@example.com", ("active", 200), ("expired", 10))
        contacts_seg = segments.create_segment(s, "Contacts", rules=tree(ACTIVE, ENDS_SOON))
        contracts_seg = segments.create_segment(s, "Contracts", rules=tree(ACTIVE, ENDS_SOON),
                                                target=SegmentTarget.CONTRACTS)  # fmt: skip
        assert [c.id for c in segments.list_members(s, contacts_seg)] == [both]
        assert segments.count_members(s, contracts_seg) == 1
        (pair,) = s.execute(segments.pairs(contracts_seg)).all()
        assert pair.contact_id == both


def test_a_contracts_segment_yields_every_matching_contract_and_counts_pairs(db: Database) -> None:
    with db.unit_of_work() as s:
        two = customer(s, "two@example.com", ("active", 5), ("active", 20), ("active", 90))
        one = customer(s, "one@example.com", ("active", 1))
        customer(s, "none@example.com", ("cancelled", 5))
        seg = segments.create_segment(s, "Ending", rules=tree(ACTIVE, ENDS_SOON),
                                      target=SegmentTarget.CONTRACTS)  # fmt: skip
        assert segments.count_members(s, seg) == 3
        assert sorted(r.contact_id for r in s.execute(segments.pairs(seg))) == [two, two, one]
        # For the ledger, the segment's contacts: those with at least one matching contract.
        members = s.scalars(select(Contact.id).where(segments.membership(seg))).all()
        assert sorted(members) == sorted([two, one])
        sample = segments.sample(s, seg)
        assert [(m.contact.id, m.contract and m.contract.ends_on) for m in sample] == [
            (one, TODAY + timedelta(days=1)), (two, TODAY + timedelta(days=5)),
            (two, TODAY + timedelta(days=20))]  # fmt: skip


def test_none_and_any_groups_with_contract_conditions_in_a_contacts_segment(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        lapsed = customer(s, "lapsed@example.com", ("expired", -90))
        active = customer(s, "active@example.com", ("active", 100), ("expired", -400))
        bare = customer(s, "bare@example.com")
        no_active = segments.create_segment(s, "No active contract", rules=tree(
            {"field": "contract.status", "op": "eq", "value": "active"}, match="none"))  # fmt: skip
        assert sorted(c.id for c in segments.list_members(s, no_active)) == sorted([lapsed, bare])
        lapsed_window = segments.create_segment(s, "Out of cover 60–180 days", rules=tree(
            {"field": "contract.ends_on", "op": "days_ago_between", "value": [60, 180]},
            {"aggregate": "active_contracts", "op": "eq", "value": 0}))  # fmt: skip
        assert [c.id for c in segments.list_members(s, lapsed_window)] == [lapsed]
        either = segments.create_segment(s, "Either", rules=tree(
            ENDS_SOON, {"field": "contract.ends_on", "op": "more_than_days_ago", "value": 300},
            match="any"))  # fmt: skip
        assert [c.id for c in segments.list_members(s, either)] == [active]


def test_erased_contacts_are_in_no_segment(db: Database) -> None:
    with db.unit_of_work() as s:
        gone = customer(s, "gone@example.com", ("active", 10))
        kept = customer(s, "kept@example.com", ("active", 10))
        s.get_one(Contact, gone).erased_at = utcnow()
        dynamic = segments.create_segment(s, "All", rules=tree(), target=SegmentTarget.CONTRACTS)
        static, _ = segments.create_static_segment(s, "List", lines=["kept@example.com"])
        segments.add_members(s, static.id, [gone])
        for seg in (dynamic, static):
            assert [c.id for c in segments.list_members(s, seg)] == [kept]
            assert segments.count_members(s, seg) == 1


def test_a_static_segment_from_a_list_reports_the_lines_that_name_no_contact(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        ann = customer(s, "ann@example.com", external_id="CRM-1")
        bob = customer(s, "bob@example.com", external_id="CRM-2")
        seg, missing = segments.create_static_segment(
            s, "Fair visitors", lines=[" ANN@example.com ", "", "nobody@example.com", "not mail"]
        )
        assert seg.kind == SegmentKind.STATIC
        assert missing == ["not mail", "nobody@example.com"]
        assert [c.id for c in segments.list_members(s, seg)] == [ann]
        by_id, missing = segments.create_static_segment(
            s, "From CRM", lines=["CRM-2", "CRM-9"], by="external_id"
        )
        assert missing == ["CRM-9"]
        assert [c.id for c in segments.list_members(s, by_id)] == [bob]


def test_a_segment_may_use_another_and_a_used_one_cannot_be_deleted(db: Database) -> None:
    with db.unit_of_work() as s:
        vip = customer(s, "vip@example.com", ("active", 10), customer_since=date(2001, 1, 1))
        customer(s, "new@example.com", ("active", 10), customer_since=TODAY)
        loyal = segments.create_segment(s, "Loyal", rules=tree(
            {"field": "contact.customer_since", "op": "more_than_years_ago", "value": 5},
        ))  # fmt: skip
        ending = segments.create_segment(s, "Loyal and ending", rules=tree(
            ENDS_SOON, {"segment": loyal.id}), target=SegmentTarget.CONTRACTS)  # fmt: skip
        assert [m.contact.id for m in segments.sample(s, ending)] == [vip]
        with pytest.raises(ValidationError, match="used by segment 'Loyal and ending'"):
            segments.delete_segment(s, loyal.id)
        segments.delete_segment(s, ending.id)
        segments.delete_segment(s, loyal.id)
        assert segments.list_segments(s) == []


def test_preview_counts_rules_that_are_not_saved(db: Database) -> None:
    with db.unit_of_work() as s:
        customer(s, "a@example.com", ("active", 3), ("active", 4))
        shown = segments.preview(s, tree(ENDS_SOON), target=SegmentTarget.CONTRACTS)
        assert shown.count == 2 and len(shown.sample) == 2
        shown = segments.preview(s, tree(ENDS_SOON), target=SegmentTarget.CONTACTS)
        assert shown.count == 1
        assert segments.list_segments(s) == []
