"""The `campaigns` command: run everything, or each part separately in production."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import click
from sqlalchemy import func, select

from campaigns import schema
from campaigns.accounts import users as accounts
from campaigns.audience import csvfiles, importer, imports, mappings
from campaigns.config import (
    OUTBOX_FLAG,
    SECRET_KEY_FILE,
    Settings,
    load_or_create_secret_key,
    local_url,
)
from campaigns.db import Database, utcnow
from campaigns.delivery.sending import RETURN_PATH_USER
from campaigns.embedded import demo
from campaigns.embedded.services import RedisServer, SMTPCatcher, free_port, port_open
from campaigns.errors import CampaignsError
from campaigns.models import Contact, ImportMode, ImportStatus, Role, User

DEMO_ADMIN = "admin@example.com"


def _settings(*, signing: bool = False) -> Settings:
    """Read the settings; `signing` parts (web, worker) also need a real SECRET_KEY."""
    try:
        settings = Settings.from_env()
        if signing:
            settings.require_secret_key()
    except CampaignsError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


@click.group()
def main() -> None:
    """Outbound communications and campaign manager for contracts and service plans."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (creates the SQLite file on first run)."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    schema.upgrade(settings.database_url)
    click.echo("database is at the latest revision")


@main.group()
def users() -> None:
    """Admin users."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.VIEWER.value)
@click.password_option()
def users_create(email: str, name: str, role: str, password: str) -> None:
    """Create a user who can log in to the admin."""
    database = Database(_settings().database_url)
    try:
        with database.unit_of_work() as session:
            user = accounts.create_user(session, email, password, role=Role(role), name=name)
            click.echo(f"created {user.role} {user.email}")
    except CampaignsError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def contacts() -> None:
    """Contacts and their contracts."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--contracts",
    "contracts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A second file of contracts, one per row, with the contact's e-mail (or external id).",
)
@click.option("--mapping", "mapping_name", help="A column mapping saved in the admin.")
@click.option(
    "--match",
    type=click.Choice(["email", "external_id"]),
    help="Find existing contacts by e-mail (default) or by external id.",
)
@click.option(
    "--valid-rows",
    is_flag=True,
    help="Import the valid rows when some are bad (default: import nothing then).",
)
@click.option("--dry-run", is_flag=True, help="Check and count only; write nothing.")
def contacts_import(
    file: Path, contracts_file: Path | None, mapping_name: str | None, match: str | None,
    valid_rows: bool, dry_run: bool,
) -> None:  # fmt: skip
    """Import contacts and their contracts from a CSV file (and a file of contracts), in one
    transaction."""
    settings = _settings()
    database = Database(settings.database_url)
    try:
        with file.open("rb") as stream:
            stored = imports.store_upload(settings.data_dir, stream)
        if contracts_file is not None:
            with contracts_file.open("rb") as stream:
                imports.store_upload(settings.data_dir, stream, contracts_of=stored)
        second_name = contracts_file.name if contracts_file else ""
        with database.unit_of_work() as session:
            job = imports.create_job(session, stored, filename=file.name, user_id=None,
                                     contracts_filename=second_name)  # fmt: skip
            previews = [imports.preview(job)]
            if second_name:
                previews.append(imports.preview(job, contracts=True))
            saved = mappings.get_mapping(session, mapping_name).mapping if mapping_name else None
            # A saved mapping with nothing for a file leaves that file's suggestion.
            chosen = [
                (mappings.applied(saved, preview.header, contracts_file=second) if saved else {})
                or mappings.suggest(preview.header, preview.sample, contracts_file=second)
                for second, preview in zip((False, True), previews, strict=False)
            ]  # fmt: skip
            match = match or (saved or {}).get("match", "email")
            mode = ImportMode.VALID_ROWS if valid_rows else ImportMode.ALL_OR_NOTHING
            imports.configure(session, job.id, chosen[0], match=match or "email",
                              dry_run=dry_run, mode=mode,
                              contracts_columns=chosen[1] if second_name else None)  # fmt: skip
            job_id, total = job.id, job.total_rows
        for name, preview, columns in zip((file.name, second_name), previews, chosen,
                                          strict=False):  # fmt: skip
            delimiter = csvfiles.DELIMITER_NAMES.get(preview.delimiter, preview.delimiter)
            click.echo(f"{name}: {preview.encoding}, {delimiter}-separated")
            for column, spec in columns.items():
                click.echo(f"  {column} → {spec}")
        click.echo(f"about {total} rows")
        label = "checking" if dry_run else "importing"
        with click.progressbar(length=max(total, 1), label=label, show_pos=True) as bar:

            def advance(processed: int, length: int) -> None:
                bar.length = max(length, 1)
                if processed >= length:  # every row read: the one transaction writes them
                    bar.label = f"{label}: every row read, writing"
                bar.update(processed - bar.pos)

            result = importer.run(database, job_id, on_progress=advance)
        with database.unit_of_work() as session:
            report = imports.imports_dir(settings.data_dir) / f"job-{job_id}-errors.csv"
            errors = imports.write_errors_file(session, job_id, report)
            first = imports.row_errors(session, job_id, limit=10)
            ended = imports.get_job(session, job_id)
            where = [f"{imports.file_name(ended, e)} " if second_name else "" for e in first]
    except CampaignsError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    if result is None:
        raise click.ClickException(f"import {job_id} did not run")
    click.echo(f"{result.status}: {result.message}")
    for error, name in zip(first, where, strict=True):
        click.echo(f"  {name}line {error.line}, {error.column or '(row)'}: {error.value!r} "
                   f"{error.reason}")  # fmt: skip
    if errors:
        click.echo(f"all {errors} row errors: {report}")
    checked = dry_run and result.status == ImportStatus.CHECKED
    if result.status != ImportStatus.DONE and not checked:
        sys.exit(1)


@main.command()
# One process per core, four threads each: the best of the layouts measured on this 2-core
# machine with bench/campaign_send (README, Benchmarks), with room for a slower relay.
@click.option("--processes", default=os.cpu_count() or 1, show_default="one per core")
@click.option("--threads", default=4, show_default=True)
def worker(processes: int, threads: int) -> None:
    """Run Dramatiq workers that send letters (scale out: run more on other machines)."""
    settings = _settings(signing=True)
    os.environ.update(settings.metrics_environment())
    args = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", str(processes),
            "--threads", str(threads)]  # fmt: skip
    os.execvp(args[0], args)


@main.command()
@click.option("--once", is_flag=True, help="Run a single tick and exit.")
def scheduler(once: bool) -> None:
    """Launch due campaigns every TICK_SECONDS (safe to run on several machines)."""
    _settings()
    from workers import scheduler as loop

    if once:
        decided = loop.tick()
        written = sum(decided.written.values())
        click.echo(f"launched {len(decided.launches)} campaign(s); automations wrote {written} "
                   f"ledger row(s) and queued {decided.released} deferred letter(s)")  # fmt: skip
    else:
        loop.run_forever()


@main.command()
def web() -> None:
    """Serve the admin, the public endpoints and the API with waitress."""
    from waitress import serve

    from campaigns.web import create_app

    settings = _settings(signing=True)
    # SIGTERM (systemd, `campaigns run`) ends it like Ctrl-C: the hits answered but not yet
    # written are written at exit (campaigns.tracking.hits.flush_all), not lost.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(create_app(settings), host=settings.web_host, port=settings.web_port, threads=8,
          ident="campaigns")  # fmt: skip


@main.command("bounces")
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read the bounce mail in this Maildir once, then exit.",
)
@click.option("--imap", "imap_url", metavar="URL",
              help="Read an IMAP folder once (imaps://user@host/INBOX; the password in "
                   "BOUNCE_IMAP_PASSWORD), then exit.")  # fmt: skip
def bounces_command(maildir: Path | None, imap_url: str | None) -> None:
    """Take bounce and complaint mail over SMTP on BOUNCE_SMTP_HOST:BOUNCE_SMTP_PORT, or
    read a bounce mailbox once (docs/bounces.md)."""
    from campaigns.tracking import mailboxes

    settings = _settings(signing=True)
    database = Database(settings.database_url)
    receiver = mailboxes.Receiver(database, settings)
    try:
        if maildir is not None or imap_url:
            if maildir is not None:
                tally = mailboxes.read_maildir(receiver, maildir)
            else:
                password = os.environ.get("BOUNCE_IMAP_PASSWORD", "")
                tally = mailboxes.read_imap(receiver, str(imap_url), password=password)
            click.echo(str(tally))
            for failure in tally.failed:
                click.echo(f"  left in the mailbox: {failure}", err=True)
            sys.exit(1 if tally.failed else 0)
        rules = settings.bounces
        server = mailboxes.BounceServer(receiver, host=rules.smtp_host, port=rules.smtp_port)
        server.start()
        click.echo(f"taking bounce mail for {RETURN_PATH_USER}+…@{rules.domain} on {server.url}")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        stopped.wait()
        server.stop()
    except CampaignsError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()


@main.command("demo")
def demo_command() -> None:
    """Load demo contacts, letters and a campaign scheduled for now."""
    settings = _settings()
    database = Database(settings.database_url)
    with database.unit_of_work() as session:
        campaign = demo.load(session, today=utcnow().date(), now=utcnow())
        click.echo(f"demo loaded; campaign {campaign.name!r} is scheduled for now")


@main.command()
@click.option("--demo/--no-demo", "with_demo", default=True, show_default=True,
              help="Load demo data into an empty database.")  # fmt: skip
def run(with_demo: bool) -> None:
    """Set up and start everything in one process group: web, worker, scheduler, bounce
    receiver, mail catcher."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CAMPAIGNS_DATA_DIR=str(settings.data_dir),
               DATABASE_URL=settings.database_url)  # fmt: skip
    if not settings.secret_key:
        # One machine on embedded defaults: a random key made on first start, kept (0600)
        # in the data dir and reused, so sessions and sent links survive a restart.
        try:
            env["SECRET_KEY"] = load_or_create_secret_key(settings.data_dir)
        except CampaignsError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"signing key: {_short(settings.data_dir / SECRET_KEY_FILE)}")
    services: list[RedisServer | SMTPCatcher] = []
    redis = urlsplit(settings.redis_url)
    host, port = redis.hostname or "127.0.0.1", redis.port or 6379
    if not port_open(host, port):
        if host not in ("127.0.0.1", "localhost"):
            raise click.ClickException(f"Redis at {settings.redis_url} does not answer")
        click.echo(f"starting redis-server on {host}:{port}")
        services.append(RedisServer(port=port, directory=settings.data_dir / "redis").start())
    schema.upgrade(settings.database_url)
    login = _ensure_admin(settings, with_demo=with_demo)
    if not settings.smtp_url:
        catcher = SMTPCatcher(maildir=settings.outbox_dir).start()
        services.append(catcher)
        env["SMTP_URL"], env[OUTBOX_FLAG] = catcher.url, "1"
        click.echo(f"no SMTP_URL: letters go to the local catcher ({catcher.url}), see Outbox")
    bounce_port = settings.bounces.smtp_port
    if "BOUNCE_SMTP_PORT" not in os.environ and port_open(settings.bounces.smtp_host, bounce_port):
        bounce_port = free_port()  # the default port is taken: any other will do on one machine
        env["BOUNCE_SMTP_PORT"] = str(bounce_port)
    children = [
        subprocess.Popen([sys.executable, "-m", "campaigns.cli", part], env=env)
        for part in ("web", "worker", "scheduler", "bounces")
    ]
    url = local_url(settings.web_host, settings.web_port) + "/"
    for _ in range(100):
        if port_open(settings.web_host, settings.web_port):
            break
        time.sleep(0.1)
    click.echo("")
    click.echo(f"  Admin:  {url}")
    click.echo(f"  Login:  {login}")
    click.echo(f"  Links:  letters link to {settings.public_url} (set PUBLIC_URL to change)")
    click.echo(f"  Bounces: smtp://{settings.bounces.smtp_host}:{bounce_port} takes mail for "
               f"{RETURN_PATH_USER}+…@{settings.bounces.domain} (docs/bounces.md)")  # fmt: skip
    click.echo("  Stop:   Ctrl-C")
    click.echo("")
    _supervise(children, services)


def _ensure_admin(settings: Settings, *, with_demo: bool) -> str:
    """Create the first admin (and demo data) on an empty database; say how to log in."""
    database = Database(settings.database_url)
    secret_file = settings.data_dir / "admin-password.txt"
    try:
        with database.unit_of_work() as session:
            if session.scalar(select(func.count(User.id))) == 0:
                password = secrets.token_urlsafe(12)
                accounts.create_user(session, DEMO_ADMIN, password, role=Role.ADMIN, name="Admin")
                secret_file.write_text(password + "\n")
                secret_file.chmod(0o600)
            if with_demo and session.scalar(select(func.count(Contact.id))) == 0:
                demo.load(session, today=utcnow().date(), now=utcnow())
    finally:
        database.dispose()
    if secret_file.exists():
        return f"{DEMO_ADMIN} / {secret_file.read_text().strip()}  (from {_short(secret_file)})"
    return "an existing user (create one with `campaigns users create`)"


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _supervise(
    children: list[subprocess.Popen[bytes]], services: list[RedisServer | SMTPCatcher]
) -> None:
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                click.echo(f"a part exited with code {child.returncode}; stopping", err=True)
                stopping, exit_code = True, 1
        time.sleep(0.3)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    for service in services:
        service.stop()
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
