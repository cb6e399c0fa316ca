"""The letter's bytes read back exactly as written, by a standard parser, after real SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest

from campaigns.delivery.mailer import Letter, PermanentSendError, SMTPMailer, build_message
from campaigns.embedded.services import SMTPCatcher

TEXT = "Dear Zoë,\n.a line that starts with a dot\n\n" + "long words " * 40 + "\ntrailing space \n"
HTML = "<p>Grüße — “quoted” € 480,00</p>\n<p>" + "x" * 300 + "</p>\n.<p>dot</p>"


def _letter(**changes: str) -> Letter:
    fields = {"sender_name": "Service Après-Vente", "sender_email": "care@example.com",
              "to": "zoe@example.com", "subject": "Ihre Verlängerung: " + "sehr lange " * 12,
              "html": HTML, "text": TEXT}  # fmt: skip
    fields.update(changes)
    return Letter(**fields)


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def test_a_letter_reads_back_exactly_headers_and_both_parts() -> None:
    letter = _letter()
    data = build_message(letter, message_id="<1@example.com>")
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    message = _parse(data)
    assert message["Subject"] == letter.subject
    assert message["From"].addresses[0].display_name == "Service Après-Vente"
    assert message["Message-ID"] == "<1@example.com>"
    assert message.get_content_type() == "multipart/alternative"
    assert _body(message, "plain") == TEXT
    assert _body(message, "html") == HTML + "\n"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Dear Ada,\n\nyour cover ends on 1 March.\n", "7bit"),
        ("Dear Ada,\r\n\twith a tab\r\n" + "x" * 998 + "\n", "7bit"),
        ("a line of " + "x" * 995 + "\n", "quoted-printable"),  # over 998 octets
        ("Dear Ada,\nFrom now on your cover is wider.\n", "quoted-printable"),
        ("Dear Zoë,\n", "quoted-printable"),
        ("a form feed \x0c here\n", "quoted-printable"),
    ],
)
def test_an_ascii_part_in_short_lines_goes_as_it_is_anything_else_quoted(
    text: str, encoding: str
) -> None:
    data = build_message(_letter(text=text, html="<p>ok</p>"), message_id="<5@example.com>")
    message = _parse(data)
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None and plain["Content-Transfer-Encoding"] == encoding
    assert _body(message, "plain") == text.replace("\r\n", "\n")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def catcher(request: pytest.FixtureRequest) -> Iterator[SMTPCatcher]:
    server = SMTPCatcher(pipelining=request.param).start()
    yield server
    server.stop()


def test_a_letter_survives_a_real_smtp_server_byte_for_byte(catcher: SMTPCatcher) -> None:
    data = build_message(_letter(), message_id="<2@example.com>")
    mailer = SMTPMailer(catcher.url)
    mailer.send("care@example.com", ["zoe@example.com"], data)
    assert mailer._conn is not None
    assert bool(mailer._conn.has_extn("pipelining")) == catcher.pipelining
    mailer.close()
    (received,) = catcher.wait_for(1)
    assert received.data.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")
    assert _body(_parse(received.data), "plain") == TEXT


def test_a_refused_recipient_fails_alone_and_the_next_letter_goes(catcher: SMTPCatcher) -> None:
    mailer = SMTPMailer(catcher.url)
    with pytest.raises(PermanentSendError, match="^553"):
        mailer.send("care@example.com", ["a@b@c"], b"Subject: x\r\n\r\nnever\r\n")
    data = build_message(_letter(), message_id="<3@example.com>")
    mailer.send("care@example.com", ["zoe@example.com"], data)
    mailer.close()
    (received,) = catcher.wait_for(1)
    assert received.recipients == ["zoe@example.com"]
    assert b"never" not in received.data


def test_an_address_with_a_line_break_is_refused_and_adds_no_recipient(
    catcher: SMTPCatcher,
) -> None:
    mailer = SMTPMailer(catcher.url)
    data = build_message(_letter(), message_id="<4@example.com>")
    for sender, to in (
        ("care@example.com", "zoe@example.com\r\nRCPT TO:<eve@example.com>"),
        ("care@example.com\r\nRCPT TO:<eve@example.com>", "zoe@example.com"),
    ):
        with pytest.raises(PermanentSendError, match="line break"):
            mailer.send(sender, [to], data)
    mailer.send("care@example.com", ["zoe@example.com"], data)  # the connection still works
    mailer.close()
    (received,) = catcher.wait_for(1)
    assert received.recipients == ["zoe@example.com"]


def test_lines_starting_with_a_dot_arrive_as_written(catcher: SMTPCatcher) -> None:
    mailer = SMTPMailer(catcher.url)
    data = b".first: header\r\n\r\n.body\r\nmiddle\r\n..two\r\n.\r\n.."
    mailer.send("care@example.com", ["zoe@example.com"], data)
    mailer.close()
    (received,) = catcher.wait_for(1)
    assert received.data.rstrip(b"\r\n") == data


def test_a_submitted_letters_reply_is_read_later_and_a_refusal_raises_then(
    catcher: SMTPCatcher,
) -> None:
    catcher.reply = lambda received: "554 5.7.1 rejected" if b"refuse me" in received.data else None
    mailer = SMTPMailer(catcher.url)
    accepted = mailer.submit("care@example.com", ["zoe@example.com"], b"Subject: a\r\n\r\nok\r\n")
    accepted()  # the server's 250, read now
    refusal = b"Subject: b\r\n\r\nrefuse me\r\n"
    if catcher.pipelining:  # the data went; its reply waits until asked for
        refused = mailer.submit("care@example.com", ["eve@example.com"], refusal)
        with pytest.raises(PermanentSendError, match="^554"):
            refused()
    else:  # without pipelining SMTP.data reads the reply as it sends
        with pytest.raises(PermanentSendError, match="^554"):
            mailer.submit("care@example.com", ["eve@example.com"], refusal)
    mailer.send("care@example.com", ["zoe@example.com"], b"Subject: c\r\n\r\nagain\r\n")
    mailer.close()
    received = catcher.wait_for(2)  # the refused letter is not kept
    assert [r.data.split(b"\r\n\r\n")[1] for r in received] == [b"ok\r\n", b"again\r\n"]
