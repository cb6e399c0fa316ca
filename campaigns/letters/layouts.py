"""Layouts: the shared frame (header, footer, address, unsubscribe line) letters render into.

Editing a layout changes the letters saved from then on: a saved version keeps the layout it
was compiled with (versions are immutable), so a letter already approved or sent never
changes under anyone's feet.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts import audit
from campaigns.db import require
from campaigns.errors import ValidationError
from campaigns.letters import rendering
from campaigns.models import Layout

BODY_SLOT = re.compile(r"{{\s*body\s*}}")


def save_layout(
    session: Session, layout_id: int | None, *, name: str, html: str, user_id: int | None
) -> Layout:
    """Create a layout (`layout_id` None) or change one; refuse what would not render."""
    name = name.strip()
    if not name:
        raise ValidationError("a layout needs a name", field="name")
    taken = session.scalar(select(Layout.id).where(Layout.name == name, Layout.id != layout_id))
    if taken is not None:
        raise ValidationError(f"a layout named {name!r} already exists", field="name")
    if not BODY_SLOT.search(html):
        raise ValidationError("a layout must contain {{ body }} where the letter goes",
                              field="html")  # fmt: skip
    rendering.parse(html, field="html")
    if layout_id is None:
        layout = Layout(name=name, html=html)
        session.add(layout)
    else:
        layout = require(session, Layout, layout_id, what="layout")
        layout.name, layout.html = name, html
    session.flush()
    audit.record(session, "layout.saved", user_id=user_id, target_type="layout",
                 target_id=layout.id, name=name)  # fmt: skip
    return layout


def get_layout(session: Session, layout_id: int) -> Layout:
    return require(session, Layout, layout_id, what="layout")
