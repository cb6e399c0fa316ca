"""`campaigns bounces`: reads a bounce Maildir and files what it read, or takes bounce mail
over SMTP until stopped; `campaigns run` starts it with the other parts."""

from __future__ import annotations

import mailbox
import signal
import subprocess
import sys
from pathlib import Path

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import RedisServer, SMTPCatcher, free_port, port_open
from campaigns.models import ContactStatus, EventKind
from tests.conftest import ROOT, run_command, wait_until
from tests.factories import launch_now, schedule_campaign
from tests.tracking.conftest import contact_status, events_of, letter_to, mail, report_mail

ANN, BOB = "ann@example.com", "bob@example.com"


def send_letters(db: Database, settings: Settings, smtp_server: SMTPCatcher) -> None:
    schedule_campaign(db, "Offer", [ANN, BOB])
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings)
    mailer.close()


def about(smtp_server: SMTPCatcher, address: str, fixture: str) -> bytes:
    letter = letter_to(smtp_server, address)
    return report_mail(fixture, verp=letter.sender, recipient=address,
                       message_id=str(letter.message["Message-ID"]))  # fmt: skip


def bounces_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "campaigns.cli", "bounces", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_command_reads_a_maildir_records_it_and_files_each_message(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    send_letters(db, settings, smtp_server)
    path = tmp_path / "bounces"
    box = mailbox.Maildir(path, create=True)
    box.add(about(smtp_server, BOB, "dsn_postfix_user_unknown"))
    box.add(about(smtp_server, ANN, "arf_abuse"))
    box.add(about(smtp_server, ANN, "out_of_office"))
    box.add(report_mail("dsn_postfix_user_unknown", verp="bounces@example.com", recipient=BOB,
                        message_id="<never-sent@example.com>"))  # fmt: skip

    done = bounces_command(env, "--maildir", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("2 recorded, 0 already known, 1 for no letter of ours, "
                                   "1 not a bounce or complaint, 0 failed")  # fmt: skip
    assert [e.kind for e in events_of(db, BOB)] == [EventKind.BOUNCE]
    assert [e.kind for e in events_of(db, ANN)] == [EventKind.COMPLAINT]
    assert contact_status(db, BOB) == ContactStatus.BOUNCED
    assert contact_status(db, ANN) == ContactStatus.COMPLAINED
    box = mailbox.Maildir(path, create=False)
    assert (len(box), len(box.get_folder("handled")), len(box.get_folder("unmatched"))) == (0, 2, 2)

    again = bounces_command(env, "--maildir", str(path))
    assert again.stdout.startswith("0 recorded"), again.stdout
    assert bounces_command(env, "--maildir", str(tmp_path / "nothing")).returncode == 1


def test_the_command_takes_bounce_mail_over_smtp_until_stopped(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    send_letters(db, settings, smtp_server)
    port = free_port()
    log = tmp_path / "bounces.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaigns.cli", "bounces"], cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT, env={**env, "BOUNCE_SMTP_PORT": str(port)},
        )  # fmt: skip
    try:
        wait_until(lambda: port_open("127.0.0.1", port), what="the bounce receiver")
        mail(port, about(smtp_server, BOB, "dsn_postfix_user_unknown"),
             to=letter_to(smtp_server, BOB).sender)  # fmt: skip
        assert contact_status(db, BOB) == ContactStatus.BOUNCED
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, log.read_text()
    assert "taking bounce mail for bounces+…@example.com" in log.read_text()


def test_campaigns_run_starts_the_bounce_receiver(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    with run_command(tmp_path, redis_server, "--no-demo", BOUNCE_SMTP_PORT=str(port)) as (_, log):
        assert f"Bounces: smtp://127.0.0.1:{port} takes mail for bounces+" in log.read_text()
        wait_until(lambda: port_open("127.0.0.1", port), what="the bounce receiver of run")
