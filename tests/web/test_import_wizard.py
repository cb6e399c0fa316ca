"""The import wizard: upload, map, check, report, choose, import — by form and in Chromium."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.audience import importer
from campaigns.db import Database
from campaigns.embedded.services import RedisServer
from campaigns.models import Contact, ImportJob, Role
from tests.audience.importfiles import BAD_LINES, MALFORMED, VALID_EMAILS
from tests.conftest import run_command
from tests.web.conftest import csrf_token, login

SHOTS = Path(os.environ.get("CAMPAIGNS_SCREENSHOTS", "/tmp/shots"))


@pytest.fixture
def queued(app: Flask) -> list[int]:
    jobs: list[int] = []
    app.extensions["campaigns"]["enqueue_import"] = jobs.append
    return jobs


def _upload(client: FlaskClient, text: bytes, name: str = "contacts.csv") -> str:
    answer = client.post("/contacts/import", data={
        "csrf_token": csrf_token(client, "/contacts/import"),
        "file": (io.BytesIO(text), name),
    }, content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return answer.headers["Location"]


def _mapping_form(page: str) -> dict[str, str]:
    form = {name: value for name, value in re.findall(
        r'<select id="((?:field|contracts)_\d+)" name="\w+">\s*<option value="">[^<]*</option>'
        r'(?:\s*<option value="[^"]*" >[^<]*</option>)*\s*<option value="([^"]*)" selected',
        page)}  # fmt: skip
    form["match"] = "email"
    return form


def test_viewers_may_not_import(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.VIEWER)
    assert client.get("/contacts/import").status_code == 403
    assert "Import a CSV file" not in client.get("/contacts").get_data(as_text=True)


def test_an_editor_checks_a_bad_file_reads_the_report_and_imports_the_valid_rows(
    app: Flask, db: Database, queued: list[int]
) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    assert "Import a CSV file" in client.get("/contacts").get_data(as_text=True)
    job_url = _upload(client, MALFORMED.encode("latin-1"))
    page = client.get(job_url).get_data(as_text=True)
    assert "cp1252, semicolon-separated" in page
    assert "célia@example.com" in page  # sample values, read as Latin-1
    form = _mapping_form(page)
    assert form["field_0"] == "contact.email" and form["field_6"] == "contract.ends_on"
    form["field_9"] = "contact.attributes.tier:number"

    # Nothing mapped to the e-mail: refused, with what was chosen kept.
    refused = client.post(job_url + "/mapping", data={**form, "field_0": "",
                          "csrf_token": csrf_token(client, job_url)})  # fmt: skip
    assert refused.status_code == 400
    assert "no column is mapped to contact.email" in refused.get_data(as_text=True)

    answer = client.post(job_url + "/mapping", data={**form, "save_as": "Shop export",
                         "csrf_token": csrf_token(client, job_url)})  # fmt: skip
    assert answer.status_code == 302
    (job_id,) = queued
    assert "Waiting for a worker" in client.get(job_url).get_data(as_text=True)
    importer.run(db, job_id)  # what the worker does

    report = client.get(job_url).get_data(as_text=True)
    assert "Import the 3 valid rows" in report
    for line in BAD_LINES:
        assert f'data-label="Line">{line}</td>' in report
    errors = client.get(job_url + "/errors.csv")
    assert errors.mimetype == "text/csv"
    assert errors.get_data(as_text=True).splitlines()[1] == (
        "4,E-mail,bob@example,is not a valid e-mail address"
    )
    progress = client.get(job_url + "/progress").get_json()
    assert (progress["status"], progress["rejected"]) == ("checked", len(BAD_LINES))

    client.post(job_url + "/choice", data={"choice": "valid_rows",
                                            "csrf_token": csrf_token(client, job_url)})  # fmt: skip
    assert queued == [job_id, job_id]
    importer.run(db, job_id)
    done = client.get(job_url).get_data(as_text=True)
    assert "See the contacts" in done
    with db.unit_of_work() as s:
        assert set(s.scalars(select(Contact.email))) == VALID_EMAILS
        assert s.get_one(ImportJob, job_id).status == "done"
    # The mapping was saved for the next file.
    second = _upload(client, MALFORMED.encode("latin-1"), "again.csv")
    assert '<option value="Shop export"' in client.get(second).get_data(as_text=True)


def test_a_file_that_is_no_csv_is_refused_with_a_message(app: Flask, queued: list[int]) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    answer = client.post("/contacts/import", data={
        "csrf_token": csrf_token(client, "/contacts/import"),
        "file": (io.BytesIO(b""), "empty.csv"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 400
    assert "the file is empty" in answer.get_data(as_text=True)


def test_contracts_in_a_second_file_are_mapped_checked_and_reported_by_file(
    app: Flask, db: Database, queued: list[int]
) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    answer = client.post("/contacts/import", data={
        "csrf_token": csrf_token(client, "/contacts/import"),
        "file": (io.BytesIO(b"Email,First name\nann@example.com,Ann\n"), "people.csv"),
        "contracts_file": (io.BytesIO(
            b"Customer email;Product;Starts on;Ends on\n"
            b"ann@example.com;Premium Support;2026-01-01;2027-01-01\n"
            b"zed@example.com;Premium Support;2026-01-01;2027-01-01\n"), "deals.csv"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 302, answer.get_data(as_text=True)
    job_url = answer.headers["Location"]
    page = client.get(job_url).get_data(as_text=True)
    assert "Map the columns of people.csv and deals.csv" in page
    assert "Read as utf-8, semicolon-separated" in page
    form = _mapping_form(page)
    assert form == {"field_0": "contact.email", "field_1": "contact.first_name",
                    "contracts_0": "contact.email", "contracts_1": "contract.product",
                    "contracts_2": "contract.starts_on", "contracts_3": "contract.ends_on",
                    "match": "email"}  # fmt: skip
    # A contact field in the contracts file is refused, naming the file and the column.
    refused = client.post(
        job_url + "/mapping",
        data={
            **form,
            "contracts_1": "contact.first_name",
            "csrf_token": csrf_token(client, job_url),
        },
    )
    assert refused.status_code == 400
    assert "deals.csv: column &#39;Product&#39; fills contact.first_name" in refused.get_data(
        as_text=True)  # fmt: skip
    client.post(job_url + "/mapping", data={**form, "csrf_token": csrf_token(client, job_url)})
    (job_id,) = queued
    importer.run(db, job_id)
    report = client.get(job_url).get_data(as_text=True)
    assert ('<td data-label="File">deals.csv</td><td class="num" data-label="Line">3</td>'
            in report)  # fmt: skip
    assert "matches no contact, neither in the contacts file nor stored" in report
    errors = client.get(job_url + "/errors.csv").get_data(as_text=True).splitlines()
    assert errors == ["file,line,column,value,reason", "deals.csv,3,Customer email,"
                      "zed@example.com,\"matches no contact, neither in the contacts file nor "
                      "stored\""]  # fmt: skip


@pytest.fixture
def product(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, str, str]]:
    with run_command(tmp_path, redis_server, "--no-demo") as (banner, _log):
        yield banner.group(1), banner.group(2), banner.group(3)


@pytest.mark.browser
def test_the_wizard_in_a_browser_imports_the_valid_rows_of_a_bad_file(
    product: tuple[str, str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    url, email, password = product
    source = tmp_path / "shop-export.csv"
    source.write_bytes(MALFORMED.encode("latin-1"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, height, tag in ((1280, 900, "laptop"), (390, 844, "phone")):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.get_by_label("E-mail").fill(email)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Log in").click()
            page.goto(url + "contacts")
            page.get_by_role("button", name="Import a CSV file").click()
            page.get_by_label("CSV file").set_input_files(str(source))
            page.screenshot(path=str(SHOTS / f"import-1-upload-{tag}.png"), full_page=True)
            page.get_by_role("button", name="Upload and map columns").click()
            expect(page.get_by_role("heading", name="Map the columns")).to_be_visible()
            expect(page.get_by_label("E-mail", exact=True)).to_have_value("contact.email")
            page.get_by_label("Tier").select_option("contact.attributes.tier:number")
            page.screenshot(path=str(SHOTS / f"import-2-mapping-{tag}.png"), full_page=True)
            page.get_by_role("button", name="Check the file").click()
            # The worker checks it; the page follows live and shows the report.
            expect(page.get_by_role("heading", name="What should be imported?")).to_be_visible(
                timeout=30_000
            )
            expect(page.locator("table.errors")).to_contain_text("bob@example")
            expect(page.locator("table.errors")).to_contain_text("duplicate in file")
            page.screenshot(path=str(SHOTS / f"import-3-report-{tag}.png"), full_page=True)
            page.get_by_role("button", name="Import the 3 valid rows").click()
            expect(page.get_by_role("button", name="See the contacts")).to_be_visible(
                timeout=30_000
            )
            page.screenshot(path=str(SHOTS / f"import-4-done-{tag}.png"), full_page=True)
            page.get_by_role("button", name="See the contacts").click()
            expect(page.locator("table")).to_contain_text("fay@example.com")
            expect(page.locator("table")).to_contain_text("ada@example.com")
            expect(page.locator("table")).not_to_contain_text("bob@example")
            page.screenshot(path=str(SHOTS / f"import-5-contacts-{tag}.png"), full_page=True)
            page.close()
        browser.close()
