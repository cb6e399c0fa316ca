"""Amazon SES bounce and complaint notifications through SNS: only messages Amazon signed,
of our topics, count; a forged one is refused and changes nothing.

AWS cannot run here: a key and certificate made in the test stand in for Amazon's, served
by the one fetch the endpoint makes (the only stand-in of the suite).
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import ContactStatus, EventKind
from campaigns.tracking.relays import SIGNED
from tests.factories import launch_now, schedule_campaign
from tests.tracking.conftest import contact_status, events_of, letter_to
from tests.web.conftest import create_test_app

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789.pem"
BOB = "bob@example.com"


def make_key(name: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))  # fmt: skip
    return key, cert.public_bytes(serialization.Encoding.PEM)


AMAZON = make_key("sns.amazonaws.com")
FORGER = make_key("sns.amazonaws.com")  # the same name, not Amazon's key


def signed(message: dict[str, Any], *, version: str = "1", key: rsa.RSAPrivateKey = AMAZON[0],
           cert_url: str = CERT_URL) -> dict[str, Any]:  # fmt: skip
    """Sign an SNS message as Amazon does (SignatureVersion 1: SHA1, 2: SHA256)."""
    message = {"MessageId": "2f6f1d52-0000-4000-8000-000000000001", "TopicArn": TOPIC,
               "Timestamp": "2026-03-10T10:00:00.000Z", **message}  # fmt: skip
    text = "".join(f"{k}\n{message[k]}\n" for k in SIGNED[message["Type"]] if k in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), digest)
    return {**message, "SignatureVersion": version, "SigningCertURL": cert_url,
            "Signature": base64.b64encode(signature).decode()}  # fmt: skip


def notification(note: dict[str, Any], **options: Any) -> dict[str, Any]:
    return signed({"Type": "Notification", "Message": json.dumps(note)}, **options)


def ses_bounce(source: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                   "feedbackId": "0102018e2a-bounce-1", "timestamp": "2026-03-10T10:00:00.000Z",
                   "bouncedRecipients": [{"emailAddress": BOB, "action": "failed",
                                          "status": "5.1.1",
                                          "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"source": source, "destination": [BOB], "messageId": "0102018e2a-mail-1"},
    }  # fmt: skip


@pytest.fixture
def fetched() -> list[str]:
    return []


@pytest.fixture
def client(settings: Settings, db: Database, fetched: list[str]) -> FlaskClient:
    settings = replace(settings, bounces=replace(settings.bounces, ses_topics=(TOPIC,)))
    app: Flask = create_test_app(settings, db)

    def fetch(url: str) -> bytes:  # Amazon's certificate, and its confirmation URLs
        fetched.append(url)
        return AMAZON[1] if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    app.config["SNS_FETCH"] = fetch
    return app.test_client()


@pytest.fixture
def return_path(db: Database, settings: Settings, smtp_server: SMTPCatcher) -> str:
    """Send Bob a letter; return its envelope sender (SES reports it as mail.source)."""
    schedule_campaign(db, "Offer", [BOB])
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings)
    mailer.close()
    return letter_to(smtp_server, BOB).sender


def test_a_signed_ses_bounce_bounces_the_address_once(
    client: FlaskClient, db: Database, return_path: str, fetched: list[str]
) -> None:
    body = notification(ses_bounce(return_path))
    assert client.post("/hooks/ses", json=body).status_code == 204
    assert client.post("/hooks/ses", json=body).status_code == 204  # SNS retries: once
    [event] = events_of(db, BOB)
    assert (event.kind, event.detail["source"], event.detail["severity"]) == (
        EventKind.BOUNCE, "ses", "hard")  # fmt: skip
    assert event.detail["status"] == "5.1.1"
    assert contact_status(db, BOB) == ContactStatus.BOUNCED
    assert fetched == [CERT_URL]  # the certificate is fetched once, then kept


def test_a_signed_ses_complaint_with_signature_version_2_is_recorded(
    client: FlaskClient, db: Database, return_path: str
) -> None:
    note = {"notificationType": "Complaint", "mail": {"source": return_path},
            "complaint": {"complainedRecipients": [{"emailAddress": BOB}],
                          "complaintFeedbackType": "abuse", "feedbackId": "0102-c-1"}}  # fmt: skip
    assert client.post("/hooks/ses", json=notification(note, version="2")).status_code == 204
    [event] = events_of(db, BOB)
    assert event.kind == EventKind.COMPLAINT
    assert contact_status(db, BOB) == ContactStatus.COMPLAINED


def test_forged_or_foreign_notifications_are_refused_and_change_nothing(
    client: FlaskClient, db: Database, return_path: str, fetched: list[str]
) -> None:
    good = notification(ses_bounce(return_path))
    tampered = {**good, "Message": json.dumps(ses_bounce(return_path, "Transient"))}
    forged = notification(ses_bounce(return_path), key=FORGER[0])
    evil_cert = notification(
        ses_bounce(return_path),
        key=FORGER[0],
        cert_url="https://evil.example.com/sns.eu-west-1.amazonaws.com.pem",
    )
    plain_http = {**good, "SigningCertURL": CERT_URL.replace("https:", "http:")}
    foreign = notification(ses_bounce(return_path))
    foreign = {**foreign, "TopicArn": "arn:aws:sns:eu-west-1:999999999999:theirs"}
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    for body in (tampered, forged, evil_cert, plain_http, foreign, unsigned):
        answer = client.post("/hooks/ses", json=body)
        assert 400 <= answer.status_code < 500, answer.get_data(as_text=True)
    assert client.post("/hooks/ses", data=b"not json").status_code == 400
    assert events_of(db, BOB) == []
    assert contact_status(db, BOB) == ContactStatus.ACTIVE
    assert all(url == CERT_URL for url in fetched)  # nothing fetched from elsewhere


def test_a_subscription_is_confirmed_only_at_amazon(
    client: FlaskClient, fetched: list[str]
) -> None:
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    confirmation = {"Type": "SubscriptionConfirmation", "Token": "abc",
                    "Message": "You chose to subscribe", "SubscribeURL": subscribe}  # fmt: skip
    assert client.post("/hooks/ses", json=signed(confirmation)).status_code == 204
    assert fetched == [CERT_URL, subscribe]
    elsewhere = {**confirmation, "SubscribeURL": "https://evil.example.com/?amazonaws.com"}
    assert client.post("/hooks/ses", json=signed(elsewhere)).status_code == 404
    assert fetched == [CERT_URL, subscribe]


def test_the_endpoint_is_off_without_topics(db: Database, settings: Settings) -> None:
    client = create_test_app(settings, db).test_client()
    answer = client.post("/hooks/ses", json=notification(ses_bounce("bounces@example.com")))
    assert answer.status_code == 404
