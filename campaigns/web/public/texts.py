"""The words of the customer-facing pages, in each language they are offered in.

A page is shown in the contact's locale (`de-AT` reads German), else in English. Add a
language by adding its table; a key it lacks falls back to English.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "unsubscribe.title": "Unsubscribe",
        "unsubscribe.ask.marketing": "Stop receiving offers and news from {company} at {email}?",
        "unsubscribe.ask.kind": "Stop receiving {kind} from {company} at {email}?",
        "unsubscribe.button": "Unsubscribe",
        "unsubscribe.done.marketing": "You are unsubscribed. {email} will receive no more offers "
        "or news from {company}.",
        "unsubscribe.done.kind": "Done. {email} will receive no more {kind} from {company}.",
        "unsubscribe.legal": "This letter is a legal notice about your contract. We must send "
        "such notices to every customer, so they cannot be turned off.",
        "unsubscribe.undo": "Changed your mind?",
        "resubscribe.button": "Subscribe again",
        "resubscribe.done": "You are subscribed again.",
        "preferences.link": "Choose what you receive",
        "preferences.title": "Your email preferences",
        "preferences.intro": "Choose which letters {company} sends to {email}.",
        "preferences.marketing": "Offers and news",
        "preferences.legal": "Always sent: we must send legal notices about your contract to "
        "every customer.",
        "preferences.save": "Save my choices",
        "preferences.saved": "Your choices are saved.",
        "kind.welcome": "welcome letters",
        "kind.expiry": "reminders before your cover ends",
        "kind.renewal": "renewal offers",
        "kind.policy": "policy and terms notices",
        "kind.survey": "satisfaction surveys",
        "kind.other": "other letters",
        "ack.title": "Please confirm you have read this",
        "ack.intro": "“{letter}”, version {version} ({language}), sent to {email} on {date}.",
        "ack.button": "I have read and accept",
        "ack.done": "Thank you. You accepted this letter on {date}.",
        "ack.fingerprint": "Fingerprint of the text you accepted",
        "ack.open": "Open the letter on its own page",
        "ack.points": "Your service points when this letter was sent: {balance}.",
        "ack.points_granted": "Your service points when this letter was sent: {balance}, "
        "including {granted} given with it.",
        "survey.title": "Your rating",
        "survey.thanks": "Thank you!",
        "survey.recorded": "You rated us {score} out of {highest}.",
        "survey.changed": "Your rating is now {score} out of {highest}.",
        "survey.confirm.intro": "You chose {score} out of {highest}. Confirm it, and it is "
        "recorded.",
        "survey.confirm.why": "We ask because mail scanners open every link of a letter: your "
        "click alone does not tell us that it was you.",
        "survey.confirm.button": "Confirm my rating",
        "survey.confirm.current": "Your rating so far: {score} out of {highest}.",
        "survey.comment.label": "Anything you would like to tell us? (optional)",
        "survey.comment.button": "Send my comment",
        "survey.comment.saved": "Thank you: your comment is recorded.",
        "survey.change": "Changed your mind? Choose another rating:",
        "survey.until": "You can change your rating until {date}.",
        "survey.closed": "You rated us {score} out of {highest} on {date}. A rating can be "
        "changed for 7 days after it is given, so this one is final.",
        "survey.your_comment": "Your comment",
        "survey.scale.csat": "1 means very unhappy, 5 means very happy.",
        "survey.scale.nps": "0 means not at all likely, 10 means extremely likely.",
        "survey.preview": "You are signed in to the admin: nothing was recorded.",
        "footer": "You receive this page because {company} wrote to {email}.",
    },
    "de": {
        "unsubscribe.title": "Abmelden",
        "unsubscribe.ask.marketing": "Keine Angebote und Neuigkeiten von {company} mehr an "
        "{email} senden?",
        "unsubscribe.ask.kind": "Keine {kind} von {company} mehr an {email} senden?",
        "unsubscribe.button": "Abmelden",
        "unsubscribe.done.marketing": "Sie sind abgemeldet. {email} erhält keine Angebote oder "
        "Neuigkeiten von {company} mehr.",
        "unsubscribe.done.kind": "Erledigt. {email} erhält keine {kind} von {company} mehr.",
        "unsubscribe.legal": "Dieser Brief ist ein rechtlicher Hinweis zu Ihrem Vertrag. Solche "
        "Hinweise müssen wir allen Kunden senden; sie lassen sich nicht abbestellen.",
        "unsubscribe.undo": "Doch anders entschieden?",
        "resubscribe.button": "Wieder anmelden",
        "resubscribe.done": "Sie sind wieder angemeldet.",
        "preferences.link": "Auswählen, was Sie erhalten",
        "preferences.title": "Ihre E-Mail-Einstellungen",
        "preferences.intro": "Wählen Sie, welche Briefe {company} an {email} sendet.",
        "preferences.marketing": "Angebote und Neuigkeiten",
        "preferences.legal": "Immer gesendet: rechtliche Hinweise zu Ihrem Vertrag müssen wir "
        "allen Kunden senden.",
        "preferences.save": "Auswahl speichern",
        "preferences.saved": "Ihre Auswahl ist gespeichert.",
        "kind.welcome": "Willkommensbriefe",
        "kind.expiry": "Erinnerungen vor dem Ende Ihres Vertrags",
        "kind.renewal": "Verlängerungsangebote",
        "kind.policy": "Hinweise zu Richtlinien und Bedingungen",
        "kind.survey": "Zufriedenheitsumfragen",
        "kind.other": "sonstigen Briefe",
        "ack.title": "Bitte bestätigen Sie, dass Sie dies gelesen haben",
        "ack.intro": "„{letter}“, Version {version} ({language}), gesendet an {email} am {date}.",
        "ack.button": "Ich habe es gelesen und akzeptiere",
        "ack.done": "Vielen Dank. Sie haben diesen Brief am {date} akzeptiert.",
        "ack.fingerprint": "Fingerabdruck des akzeptierten Textes",
        "ack.open": "Den Brief auf eigener Seite öffnen",
        "ack.points": "Ihre Servicepunkte, als dieser Brief versandt wurde: {balance}.",
        "ack.points_granted": "Ihre Servicepunkte, als dieser Brief versandt wurde: {balance}, "
        "davon {granted} mit ihm geschenkt.",
        "survey.title": "Ihre Bewertung",
        "survey.thanks": "Vielen Dank!",
        "survey.recorded": "Sie haben uns mit {score} von {highest} bewertet.",
        "survey.changed": "Ihre Bewertung ist jetzt {score} von {highest}.",
        "survey.confirm.intro": "Sie haben {score} von {highest} gewählt. Bestätigen Sie es, "
        "dann ist Ihre Bewertung gespeichert.",
        "survey.confirm.why": "Wir fragen nach, weil E-Mail-Scanner jeden Link eines Briefs "
        "öffnen: Ein Klick allein sagt uns nicht, dass Sie es waren.",
        "survey.confirm.button": "Meine Bewertung bestätigen",
        "survey.confirm.current": "Ihre bisherige Bewertung: {score} von {highest}.",
        "survey.comment.label": "Möchten Sie uns noch etwas sagen? (freiwillig)",
        "survey.comment.button": "Kommentar senden",
        "survey.comment.saved": "Vielen Dank: Ihr Kommentar ist gespeichert.",
        "survey.change": "Doch anders entschieden? Wählen Sie eine andere Bewertung:",
        "survey.until": "Sie können Ihre Bewertung bis {date} ändern.",
        "survey.closed": "Sie haben uns am {date} mit {score} von {highest} bewertet. Eine "
        "Bewertung lässt sich 7 Tage lang ändern; diese ist nun endgültig.",
        "survey.your_comment": "Ihr Kommentar",
        "survey.scale.csat": "1 bedeutet sehr unzufrieden, 5 bedeutet sehr zufrieden.",
        "survey.scale.nps": "0 bedeutet sehr unwahrscheinlich, 10 bedeutet äußerst wahrscheinlich.",
        "survey.preview": "Sie sind im Admin angemeldet: Es wurde nichts gespeichert.",
        "footer": "Sie sehen diese Seite, weil {company} an {email} geschrieben hat.",
    },
}


class Texts:
    """The page words of one locale: `texts("key", name=value)`; dates in that locale."""

    def __init__(self, locale: str | None, time_zone: str = "UTC") -> None:
        self.locale = _supported(locale)
        self._table = TEXTS[self.locale]
        try:
            self._zone = ZoneInfo(time_zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            self._zone = ZoneInfo("UTC")

    def __call__(self, key: str, **values: object) -> str:
        text = self._table.get(key) or TEXTS["en"][key]
        return text.format(**values) if values else text

    def date(self, moment: datetime | None) -> str:
        """A time in the contact's time zone and language ("Nov 23, 2026, 5:34 PM")."""
        if moment is None:
            return ""
        return format_datetime(moment, "medium", tzinfo=self._zone, locale=self.locale)

    def language(self, tag: str | None) -> str:
        """The name of a language, in this page's language ("German", "Deutsch")."""
        try:
            name = Locale.parse((tag or "en").replace("-", "_")).get_display_name(self.locale)
        except (UnknownLocaleError, ValueError):
            name = None
        return name or tag or ""


def _supported(locale: str | None) -> str:
    language = (locale or "en").replace("_", "-").split("-")[0].lower()
    return language if language in TEXTS else "en"
