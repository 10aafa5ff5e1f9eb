"""What a person's words mean: SMS keywords (SM-1) and opt-out wording in emails.

Pure functions over text, no I/O. The provider code in `campaigns.optouts` parses
the payloads and asks these functions what a text says; what happens next (a ledger
entry, a review item, a record only) is decided there.

Where the wording is ambiguous we choose the stricter reading: a text that might be a
no is never dropped; it goes to a person in the review queue.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# --- SMS (SM-1) ---------------------------------------------------------------------

# SM-1: one of these as the whole reply is an SMS opt-out.
OPT_OUT_KEYWORDS: Final = frozenset(
    {
        "STOP",
        "STOPP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "AVMELD",
        "AVSLUTT",
        "REVOKE",
        "OPTOUT",
    }
)
# ALL-5: these never lift a suppression by themselves; they are recorded.
OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO", "HJELP"})

# What an inbound SMS is, as stable strings (they land in the database).
SMS_OPT_OUT: Final = "opt_out"
SMS_OPT_IN: Final = "opt_in_request"
SMS_HELP: Final = "help"
SMS_REFUSAL: Final = "refusal_text"  # longer text that looks like a no: review queue
SMS_OTHER: Final = "other"

# Hyphens and underscores inside the one word are ignored too ("OPT-OUT", "stop_all"):
# the stricter reading of "one word".
_INNER_JOINERS = str.maketrans("", "", "-_\u2010\u2011\u2012\u2013\u2014")


def _is_edge_noise(char: str) -> bool:
    """Whitespace, punctuation, symbols (emoji) and control characters."""
    return unicodedata.category(char)[0] in "PSZC"


def keyword(text: str) -> str | None:
    """The one word of `text` in upper case, surrounding spaces and punctuation ignored;
    None when the text is empty or holds more than one word."""
    text = unicodedata.normalize("NFKC", text)
    start, end = 0, len(text)
    while start < end and _is_edge_noise(text[start]):
        start += 1
    while end > start and _is_edge_noise(text[end - 1]):
        end -= 1
    word = text[start:end]
    if not word or any(ch.isspace() for ch in word):
        return None
    return word.translate(_INNER_JOINERS).upper()


def classify_sms(text: str) -> str:
    """SM-1: what an inbound SMS says, one of the SMS_* constants."""
    word = keyword(text)
    if word is not None:
        if word in OPT_OUT_KEYWORDS:
            return SMS_OPT_OUT
        if word in OPT_IN_KEYWORDS:
            return SMS_OPT_IN
        if word in HELP_KEYWORDS:
            return SMS_HELP
    if looks_like_refusal(text):
        return SMS_REFUSAL
    return SMS_OTHER


# --- wording, in SMS and email ------------------------------------------------------


def _fold(text: str) -> str:
    """Lower case, accents off the Latin letters that are not Norwegian letters (é -> e),
    æøå kept, whitespace collapsed, so that patterns need one spelling."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = (
        text.replace("é", "e")
        .replace("è", "e")
        .replace("ê", "e")
        .replace("’", "'")
        .replace("‘", "'")
    )
    return " ".join(text.split())


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\wæøå])(?:" + "|".join(patterns) + r")(?![\wæøå])")


# Signals that something might be a no; alone they are not clear enough to act on.
_REFUSAL_SIGNALS = _words(
    r"stop+(?:all)?",
    r"stans",
    r"slutt",
    r"avmeld\w*",
    r"meld\w* (?:meg|oss) av",
    r"avslutt\w*",
    r"unsubscrib\w*",
    r"opt[ -]?out",
    r"cancel\w*",
    r"quit",
    r"revoke",
    r"remove (?:me|us)",
    r"take (?:me|us) off",
    r"fjern (?:meg|oss|nummeret|adressen)",
    r"ikke (?:send|kontakt|ring|skriv|plag)\w*",
    r"(?:vil|ønsker) ikke (?:å )?(?:ha|motta|få|bli)\w*",
    r"ikke (?:ha|motta|få) (?:flere|mer|noe)",
    r"(?:don'?t|do not|never|stop) (?:send|text|message|contact|call|email|mail)\w*",
    r"no (?:more|thanks|thank you)",
    r"nei takk",
    r"ingen (?:flere|mer)",
    r"leave (?:me|us) alone",
    r"la (?:meg|oss) (?:være|vaere) i fred",
    r"not interested",
    r"ikke interessert",
    r"reserv\w*",
    r"slett\w*",
    r"delete\w*",
    r"erase\w*",
    r"forget me",
    r"glem (?:meg|oss)",
    r"spam",
    r"object\w*",
    r"protest\w*",
)


def looks_like_refusal(text: str) -> bool:
    """Whether a text holds wording that might be a no ("stop sending me this",
    "ikke send meg mer"): such texts go to a person, never silently dropped."""
    return bool(_REFUSAL_SIGNALS.search(_fold(text)))


# --- email to the company (the mailbox) ---------------------------------------------

MAIL_ERASURE: Final = "erasure_request"  # objection (scope all) + review item for `forget`
MAIL_OBJECTION: Final = "objection"  # ALL-1: scope all
MAIL_UNSUBSCRIBE: Final = "unsubscribe"  # email channel
MAIL_UNCLEAR: Final = "unclear"  # review queue

_ERASURE = _words(
    r"slett (?:meg|oss)",
    r"slett (?:alt|all informasjon|alle (?:data|opplysninger)) (?:om|på) (?:meg|oss)",
    r"slett(?:e|ing av)? (?:alle )?(?:mine|våre|vaare|mine person|mine personlige) ?(?:data|opplysninger|personopplysninger|informasjon)",
    r"slett(?:e|ing av)? (?:alle )?personopplysning\w*",
    r"sletting av (?:meg|mine|data|opplysninger|personopplysninger)\w*",
    r"retten til (?:å|aa) bli glemt",
    r"glem (?:meg|oss)",
    r"delete (?:me|us)",
    r"delete (?:all )?(?:of )?(?:my|our) (?:personal )?(?:data|information|details|info)",
    r"erase (?:all )?(?:of )?(?:me|my|our) ?(?:personal )?(?:data|information|details)?",
    r"erasure",
    r"right to (?:be forgotten|erasure)",
    r"forget me",
    r"gdpr (?:art(?:icle|ikkel)?\.? ?)?17",
)
_OBJECTION = _words(
    r"ikke kontakt (?:meg|oss)",
    r"kontakt (?:meg|oss) ikke",
    r"ikke ring (?:meg|oss)",
    r"ønsker ikke (?:å bli kontaktet|å motta|mer|flere|noen)\w*",
    r"ingen (?:mer|flere) (?:reklame|markedsføring|henvendelser|tilbud)",
    r"(?:all|alle) (?:reklame|markedsføring|henvendelser)",
    r"reserv(?:er|erer|erte)? (?:meg|oss)",
    r"reservasjon\w*",
    r"protest\w*",
    r"motsetter meg",
    r"(?:do not|don'?t|never) (?:contact|call|text|email|e-mail|message) (?:me|us)",
    r"stop (?:contacting|calling|texting|emailing|marketing to) (?:me|us)",
    r"no (?:more )?(?:marketing|advertising|advertisements|ads)",
    r"all marketing",
    r"object(?:s|ing)? to",
    r"objection",
    r"gdpr (?:art(?:icle|ikkel)?\.? ?)?21",
    r"leave (?:me|us) alone",
    r"la (?:meg|oss) (?:være|vaere) i fred",
)
_UNSUBSCRIBE = _words(
    r"avmeld\w*",
    r"meld\w* (?:meg|oss) av",
    r"unsubscrib\w*",
    r"opt[ -]?out",
    r"remove (?:me|us|my)",
    r"take (?:me|us) off",
    r"fjern (?:meg|oss|min|mitt|adressen|e-?postadressen)",
    r"ikke send (?:meg|oss) (?:mer|flere|noe mer|e-?post)",
    r"ikke send (?:meg|oss)",
    r"(?:do not|don'?t) (?:send|email|e-mail|mail) (?:me|us)",
    r"stop (?:sending|emailing|mailing)",
    r"slutt (?:å|aa) sende",
    r"no more (?:emails?|e-mails?|mails?|newsletters?|messages)",
    r"ingen (?:flere|mer) (?:e-?post|eposter|e-?poster|nyhetsbrev|meldinger)",
)
# A short message that is only this keyword is clear, but the same word in a long mail
# ("when will the alarm stop?") is not.
_SHORT_WORDS = 8

# Where a reply's quoted original starts: from here on the words are not the sender's.
_QUOTE_STARTS = re.compile(
    r"^\s*(?:"
    r"on\b.{0,200}\bwrote:\s*$"
    r"|den\b.{0,200}\bskrev\b.{0,200}:\s*$"
    r"|.{0,200}\bskrev følgende:\s*$"
    r"|-{2,}\s*(?:original message|opprinnelig melding|forwarded message|videresendt melding)\s*-{2,}.*$"
    r"|(?:from|fra|sent|sendt|to|til|subject|emne):\s.*$"
    r"|_{10,}\s*$"
    r"|-- ?$"
    r"|(?:sent from my|sendt fra min)\b.*$"
    r")",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|sv|aw|fw|fwd|vs|wg|tr)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def fresh_text(body: str) -> str:
    """The sender's own words in a reply: quoted lines ("> ...") and the quoted original
    after "On ... wrote:" / "Den ... skrev:" / a forwarded header block are dropped, so a
    reply to a campaign is not read as the campaign's own "avmeld"-link wording."""
    kept: list[str] = []
    for line in body.splitlines():
        if line.lstrip().startswith(">"):
            continue
        if _QUOTE_STARTS.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def is_reply_subject(subject: str) -> bool:
    """A reply's or forward's subject repeats ours ("SV: Stopp tyven!"); it says nothing."""
    return bool(_REPLY_PREFIX.match(subject))


def classify_mail(subject: str, body: str) -> str:
    """What an email to the company asks for, one of the MAIL_* constants.

    `body` is the plain text of the mail; the quoted original of a reply is ignored, and
    so is the subject of a reply. Erasure wins over objection, objection over
    unsubscribe (ALL-1); anything not clearly one of them is MAIL_UNCLEAR.
    """
    own_subject = "" if is_reply_subject(subject) else subject
    text = _fold(own_subject + "\n" + fresh_text(body))
    if _ERASURE.search(text):
        return MAIL_ERASURE
    if _OBJECTION.search(text):
        return MAIL_OBJECTION
    if _UNSUBSCRIBE.search(text):
        return MAIL_UNSUBSCRIBE
    if len(text.split()) <= _SHORT_WORDS:
        for part in (own_subject, *fresh_text(body).splitlines()):
            word = keyword(part)
            if word is not None and word in OPT_OUT_KEYWORDS:
                return MAIL_UNSUBSCRIBE
    return MAIL_UNCLEAR
