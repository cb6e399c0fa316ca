"""The landing page: what is going on right now."""

from __future__ import annotations

from flask import Blueprint, render_template

from campaigns.audience import contacts
from campaigns.db import utcnow
from campaigns.delivery import readiness, scheduling
from campaigns.embedded import outbox
from campaigns.models import Role
from campaigns.tracking import compliance, reports
from campaigns.web.auth import requires
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@requires(Role.VIEWER)
def index() -> str:
    with unit_of_work() as s:
        return render_template(
            "admin/dashboard.html",
            contact_count=contacts.count_contacts(s),
            campaigns=scheduling.list_campaigns(s)[:8],
            funnels=reports.campaign_funnels(s)[:8],
            outbox_count=outbox.count(settings().outbox_dir),
            watch=compliance.watch(s, sender_domain=settings().sender_domain, now=utcnow()),
            ceiling=compliance.CEILING,
            warn_at=compliance.WARN_AT,
            gaps=readiness.gaps(settings()),
        )
