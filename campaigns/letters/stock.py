"""The stock letters a new database starts with: files in templates/letters/, seeded as versions.

Each letter's own content is English (templates/letters/*.html, subjects below); each other
locale has a folder of the same body files and a letters.toml of subjects and preheaders
(templates/letters/de/), seeded as that locale's variant of the same first version.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from campaigns.letters import authoring
from campaigns.models import LetterCategory, LetterKind, LetterVersion

STOCK_DIR = Path(__file__).resolve().parents[2] / "templates" / "letters"
LAYOUT_FILE = "layout.html"
# The locales each stock letter is translated into, besides its default (English).
LOCALES = ("de",)


@dataclass(frozen=True)
class StockLetter:
    """One stock letter: its body file (ours, never user input) and what goes with it."""

    file: str
    name: str
    kind: LetterKind
    category: LetterCategory
    subject: str
    preheader: str

    def html(self) -> str:
        return (STOCK_DIR / self.file).read_text(encoding="utf-8")

    def variant(self, locale: str) -> authoring.Content:
        """This letter in `locale` (one of LOCALES): subject, preheader and HTML body."""
        texts = _locale_texts(locale)[self.file]
        return authoring.Content(
            subject=texts["subject"], preheader=texts["preheader"],
            html=(STOCK_DIR / locale / self.file).read_text(encoding="utf-8"),
        )  # fmt: skip

    def variants(self) -> dict[str, authoring.Content]:
        return {locale: self.variant(locale) for locale in LOCALES}


@functools.cache
def _locale_texts(locale: str) -> dict[str, dict[str, str]]:
    with (STOCK_DIR / locale / "letters.toml").open("rb") as file:
        return tomllib.load(file)


# Whole sentences in each branch, never pieces glued together, so each translates as a whole.
STOCK_LETTERS = (
    StockLetter(
        "welcome.html", "Welcome", LetterKind.WELCOME, LetterCategory.SERVICE,
        subject="Welcome to {{ contract.product }}",
        preheader="Your cover runs until {{ format_date(contract.ends_on) }}. Here is what it "
                  "includes and how to reach us.",
    ),
    StockLetter(
        "expiry.html", "Expiry reminder", LetterKind.EXPIRY, LetterCategory.SERVICE,
        subject="{% if contract.days_left > 7 %}Your {{ contract.product }} cover ends on "
                "{{ format_date(contract.ends_on) }}{% else %}Last reminder: your "
                "{{ contract.product }} cover ends on {{ format_date(contract.ends_on) }}"
                "{% endif %}",
        preheader="Renew in one click and keep your support without a gap.",
    ),
    StockLetter(
        "renewal.html", "Renewal offer", LetterKind.RENEWAL, LetterCategory.MARKETING,
        subject="{% if contract.discount %}Renew {{ contract.product }} with "
                "{{ contract.discount.percent }}% off{% else %}Keep your {{ contract.product }} "
                "cover going{% endif %}",
        preheader="{% if contract.discount %}A loyalty discount for you: renew for "
                  "{{ format_money(contract.discount.price, contract.currency) }}.{% else %}"
                  "Renew for {{ format_money(contract.price, contract.currency) }} in one "
                  "click.{% endif %}",
    ),
    StockLetter(
        "policy.html", "Policy re-statement", LetterKind.POLICY, LetterCategory.LEGAL,
        subject="Our support terms, re-stated",
        preheader="Email support stays free; priority phone support is charged per incident. "
                  "Please confirm you have read this.",
    ),
    StockLetter(
        "survey.html", "Satisfaction survey", LetterKind.SURVEY, LetterCategory.SERVICE,
        subject="How did we do?",
        preheader="One click is all it takes: rate our support from "
                  "{% if survey_scale == 'nps' %}0 to 10{% else %}1 to 5{% endif %}.",
    ),
    # The upsell of the "points balance dropped to N" trigger: the settings' packages.
    StockLetter(
        "points_low.html", "Points running low", LetterKind.OTHER, LetterCategory.MARKETING,
        subject="{% if contact.service_points == 1 %}You have 1 service point left"
                "{% elif contact.service_points > 1 %}You have {{ contact.service_points }} "
                "service points left{% else %}Your service points are used up{% endif %}",
        preheader="{% if service.packages %}Top up now and keep priority phone support at "
                  "hand.{% else %}Reply to this letter to top up and keep priority phone "
                  "support at hand.{% endif %}",
    ),
)  # fmt: skip


def layout_html() -> str:
    return (STOCK_DIR / LAYOUT_FILE).read_text(encoding="utf-8")


def load(session: Session, *, layout_name: str = "Standard") -> dict[LetterKind, LetterVersion]:
    """Create the stock layout and letters, each with a first version; return them by kind.

    The first version carries every translation as a variant (see translations.content_for),
    so a new database sends each letter in English and in German from the start.
    """
    layout = authoring.create_layout(session, layout_name, layout_html())
    versions = {}
    for stock in STOCK_LETTERS:
        letter = authoring.create_letter(session, stock.name, kind=stock.kind,
                                         category=stock.category)  # fmt: skip
        versions[stock.kind] = authoring.add_version(
            session, letter.id, subject=stock.subject, preheader=stock.preheader,
            html=stock.html(), layout_id=layout.id, variants=stock.variants(),
        )  # fmt: skip
    return versions
