"""Typed models, one module per aggregate; importing this package registers them all."""

from campaigns.models.accounts import ApiKey, ApiScope, AuditEntry, LoginAttempt, Role, User
from campaigns.models.campaigns import (
    CAMPAIGN_TRANSITIONS,
    Automation,
    AutomationStep,
    AutomationTrigger,
    Campaign,
    CampaignStatus,
)
from campaigns.models.contacts import (
    Contact,
    ContactStatus,
    ContactStatusChange,
    Contract,
    ContractStatus,
    ContractTerm,
    Suppression,
)
from campaigns.models.deliveries import (
    DELIVERY_TRANSITIONS,
    OPEN_STATES,
    Delivery,
    DeliveryState,
    WorkerHeartbeat,
)
from campaigns.models.events import Conversion, Event, EventKind
from campaigns.models.imports import (
    ImportJob,
    ImportMapping,
    ImportMode,
    ImportRowError,
    ImportStatus,
)
from campaigns.models.letters import (
    Layout,
    Letter,
    LetterCategory,
    LetterKind,
    LetterVersion,
    Link,
    LinkKind,
)
from campaigns.models.segments import Segment, SegmentKind, SegmentMember, SegmentTarget

__all__ = [
    "WorkerHeartbeat",
    "CAMPAIGN_TRANSITIONS",
    "DELIVERY_TRANSITIONS",
    "OPEN_STATES",
    "ApiKey",
    "ApiScope",
    "ContactStatusChange",
    "ContractTerm",
    "ImportJob",
    "ImportMapping",
    "ImportMode",
    "ImportRowError",
    "ImportStatus",
    "SegmentTarget",
    "Suppression",
    "AuditEntry",
    "Automation",
    "AutomationStep",
    "AutomationTrigger",
    "Campaign",
    "CampaignStatus",
    "Contact",
    "ContactStatus",
    "Contract",
    "ContractStatus",
    "Conversion",
    "Delivery",
    "DeliveryState",
    "Event",
    "EventKind",
    "Layout",
    "Letter",
    "LetterCategory",
    "LetterKind",
    "LetterVersion",
    "Link",
    "LinkKind",
    "LoginAttempt",
    "Role",
    "Segment",
    "SegmentKind",
    "SegmentMember",
    "User",
]
