"""Hosted relays' bounce and complaint notifications: Amazon SES through SNS, signed by AWS.

A message counts only when its SNS signature checks out against Amazon's certificate
(fetched over https from an `sns.<region>.amazonaws.com` host, then kept) and it comes
from a topic named in SES_SNS_TOPICS: anyone can make SNS sign messages of their own topics.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from campaigns.errors import TokenInvalid, ValidationError
from campaigns.models import EventKind
from campaigns.tracking import bounces
from campaigns.tracking.bounces import Report

AMAZON_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
# The fields each message type signs, in this order (AWS: "Verifying the signatures of
# Amazon SNS messages").
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}  # fmt: skip
DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
Fetch = Callable[[str], bytes]


def fetch(url: str) -> bytes:
    """GET an Amazon URL (a signing certificate, a subscription's confirmation)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (https only)
        return bytes(response.read())


def amazon_url(url: str) -> bool:
    """Whether a URL is https on an SNS host of Amazon's, so it is safe to fetch."""
    parts = urlsplit(url)
    return parts.scheme == "https" and AMAZON_HOST.fullmatch(parts.hostname or "") is not None


class SnsVerifier:
    """Checks SNS messages: signed by Amazon (SignatureVersion 1 or 2), from our topics."""

    def __init__(self, topics: tuple[str, ...], *, fetch: Fetch = fetch) -> None:
        self.topics = frozenset(topics)
        self.fetch = fetch
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def verify(self, message: dict[str, Any]) -> None:
        """Raise TokenInvalid unless Amazon signed this message of one of our topics."""
        kind, version = message.get("Type"), str(message.get("SignatureVersion", ""))
        if kind not in SIGNED or version not in DIGESTS:
            raise TokenInvalid("not an SNS message this endpoint takes")
        if message.get("TopicArn") not in self.topics:
            raise TokenInvalid("this SNS topic is not one of SES_SNS_TOPICS")
        signed = "".join(f"{field}\n{message[field]}\n" for field in SIGNED[str(kind)]
                         if field in message)  # fmt: skip
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
            key = self._key(str(message.get("SigningCertURL", "")))
            key.verify(signature, signed.encode(), padding.PKCS1v15(), DIGESTS[version]())
        except (InvalidSignature, ValueError) as exc:
            raise TokenInvalid(f"the SNS signature does not check out: {exc}") from None

    def _key(self, url: str) -> rsa.RSAPublicKey:
        if not amazon_url(url) or not urlsplit(url).path.endswith(".pem"):
            raise ValueError("the signing certificate is not on an Amazon SNS host")
        with self._lock:
            if url not in self._keys:
                cert = x509.load_pem_x509_certificate(self.fetch(url))
                now = datetime.now(UTC)
                if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                    raise ValueError("the signing certificate has expired")
                key = cert.public_key()
                if not isinstance(key, rsa.RSAPublicKey):
                    raise ValueError("the signing certificate holds no RSA key")
                self._keys[url] = key
            return self._keys[url]


def receive(body: bytes, *, verifier: SnsVerifier) -> Report | None:
    """Check an SNS POST; confirm a subscription; return the SES bounce or complaint it
    notifies, or None (a confirmation, a delivery notice)."""
    try:
        message = json.loads(body)
    except ValueError:
        raise ValidationError("the body is not an SNS message (JSON)") from None
    if not isinstance(message, dict):
        raise ValidationError("the body is not an SNS message (JSON)")
    verifier.verify(message)
    if message["Type"] == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        if not amazon_url(url):
            raise TokenInvalid("the subscription's confirmation URL is not Amazon's")
        verifier.fetch(url)  # visiting it confirms the subscription
        return None
    if message["Type"] != "Notification":
        return None
    try:
        return ses_report(json.loads(str(message.get("Message", ""))))
    except ValueError:
        raise ValidationError("the notification carries no SES JSON") from None


def ses_report(note: dict[str, Any]) -> Report | None:
    """The Report of an SES Bounce or Complaint notification (or event); others: None."""
    kind = note.get("notificationType") or note.get("eventType")
    mail = note.get("mail") or {}
    headers = {h.get("name", "").lower(): h.get("value", "") for h in mail.get("headers") or []}
    message_ids = tuple(v for v in (headers.get("message-id"),) if v)
    tokens = tuple(m.group(1) for m in bounces.VERP.finditer(str(mail.get("source", ""))))
    if kind == "Bounce":
        bounce = note.get("bounce") or {}
        [first, *_] = bounce.get("bouncedRecipients") or [{}]
        status = bounces.STATUS.search(str(first.get("status", "")))
        return Report(
            kind=EventKind.BOUNCE, source="ses",
            severity=bounces.HARD if bounce.get("bounceType") == "Permanent" else bounces.SOFT,
            status=".".join(status.groups()) if status else "",
            diagnostic=str(first.get("diagnosticCode", ""))[:500],
            recipient=str(first.get("emailAddress", "")),
            feedback_type=str(bounce.get("bounceSubType", "")),
            report_id=str(bounce.get("feedbackId", "")), tokens=tokens, message_ids=message_ids,
        )  # fmt: skip
    if kind == "Complaint":
        complaint = note.get("complaint") or {}
        [first, *_] = complaint.get("complainedRecipients") or [{}]
        return Report(
            kind=EventKind.COMPLAINT, source="ses",
            feedback_type=str(complaint.get("complaintFeedbackType") or "abuse"),
            recipient=str(first.get("emailAddress", "")),
            report_id=str(complaint.get("feedbackId", "")), tokens=tokens,
            message_ids=message_ids,
        )  # fmt: skip
    return None
