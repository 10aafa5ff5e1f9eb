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


# SM-1 "spellings people actually send". A reply that is only stop signs is an opt-out:
# 🛑 stop sign, ⛔ no entry, 🚫 prohibited, ✋ 🤚 a raised hand, 🙅 the "no" gesture,
# 📵 no mobile phones, 🔕 no notifications. Skin tones, gender signs and variation
# selectors may ride along. ❌ and 👎 are not among them: "wrong" and "bad" are not a no
# to marketing by themselves (such a reply goes to a person, see campaigns.optouts.twilio).
STOP_EMOJI: Final = frozenset(
    "\U0001f6d1\u26d4\U0001f6ab\u270b\U0001f91a\U0001f645\U0001f4f5\U0001f515"
)
_EMOJI_RIDERS: Final = frozenset("\u200d\u2640\u2642\ufe0e\ufe0f") | frozenset(
    chr(c) for c in range(0x1F3FB, 0x1F400)
)

# Digits and signs written for letters ("st0p", "5TOP", "$top"). A 1 stands for I or L:
# both readings are tried. Only in a word that also has a letter: "5709" is a number
# (a postal code), not "STOG", one letter away from STOP.
_FOR_LETTERS: Final = {
    "0": "O",
    "3": "E",
    "4": "A",
    "5": "S",
    "7": "T",
    "8": "B",
    "$": "S",
    "@": "A",
}
_ONE: Final = ("I", "L")
# Letters that Unicode does not decompose into a base letter and a mark ("STØPP").
_BASE_LETTERS: Final = str.maketrans(
    {"Ø": "O", "Æ": "AE", "Œ": "OE", "Ð": "D", "Þ": "TH", "Ł": "L", "Đ": "D"}
)
_RUN = re.compile(r"(.)\1{2,}")  # a letter three times or more is emphasis: "STOOOOP"
_A_TO_Z = re.compile(r"[A-Z]+")
# Between the words: anything but a letter, a digit or one of the signs above.
_BETWEEN_WORDS = re.compile(r"(?:(?![^\W_])[^$@])+")

# One edit (Damerau: a letter added, dropped or changed, or two neighbours swapped) of an
# opt-out keyword is still that keyword ("STPO", "AVMLED", "UNSUBSCIBE"), but only when
# both the keyword and the reply have at least this many letters: one edit of a shorter
# word reaches too many ordinary ones (END: AND, ENDE, EN, ...), so END needs an exact
# match. Opt-in and help words need an exact match too: reading a typo as START or HELP
# would take a reply out of the review queue, the less strict direction.
FUZZY_MIN_LETTERS: Final = 4
# Ordinary words of nb and en one edit from an opt-out keyword. We decided: these are
# words, not typos ("SHOP" is a reply to an offer, not "STOP"), so they are no opt-out
# by themselves; the reply still goes to a person in the review queue.
NEAR_MISSES: Final = frozenset(
    {
        # STOP
        "ATOP", "SHOP", "SLOP", "STEP", "STUP", "STOW", "STOR", "STOL", "STOD", "STOA",
        "STOK", "STOOP", "STROP", "STOMP",
        # STOPP
        "STEPP", "STROPP", "TOPP", "SOPP",
        # QUIT
        "SUIT", "QUIZ", "QUID", "QUIP", "QUITE", "QUILT", "QUOIT", "QUIET",
        # CANCEL
        "CANCER",
    }
)  # fmt: skip


def _letters(word: str) -> str:
    """Upper case, accents off, Ø Æ Œ spelt out: "Støpp" -> "STOPP"."""
    decomposed = unicodedata.normalize("NFKD", word.upper().translate(_BASE_LETTERS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _readings(word: str) -> set[str]:
    """The word in A-Z with its digits read as letters, each reading of its ones; empty when
    it is not a word (no letter, or letters outside A-Z)."""
    if not any(ch.isalpha() for ch in word):
        return set()
    word = "".join(_FOR_LETTERS.get(ch, ch) for ch in word)
    if word.count("1") > 4:
        return set()
    readings = {""}
    for ch in word:
        choices = _ONE if ch == "1" else (ch,)
        readings = {r + c for r in readings for c in choices}
    return {_RUN.sub(r"\1", r) for r in readings if _A_TO_Z.fullmatch(r)}


def _sms_words(text: str) -> tuple[set[str], bool]:
    """What a reply spells when read as one word (every reading of it), and whether it was
    written as one: a single word, or single letters spaced out ("S T O P"). Several words
    run together ("stop all", "opt out") are read too, but only an exact keyword counts then."""
    text = unicodedata.normalize("NFKC", text).translate(_INNER_JOINERS)
    tokens = [_letters(t) for t in _BETWEEN_WORDS.split(text) if t]
    if not tokens:
        return set(), False
    one_word = len(tokens) == 1 or all(len(t) == 1 for t in tokens)
    return _readings("".join(tokens)), one_word


def _one_edit_apart(a: str, b: str) -> bool:
    """Damerau-Levenshtein (optimal string alignment) distance at most one."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        i, j = diff[0], diff[-1]
        return len(diff) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def _is_stop_signs(text: str) -> bool:
    """Only stop emoji (with their riders), whitespace and punctuation; at least one sign."""
    kept = [ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] == "P")]
    signs = [ch for ch in kept if ch not in _EMOJI_RIDERS]
    return bool(signs) and all(ch in STOP_EMOJI for ch in signs)


def _near_opt_out(word: str) -> bool:
    if len(word) < FUZZY_MIN_LETTERS or word in NEAR_MISSES:
        return False
    return any(len(k) >= FUZZY_MIN_LETTERS and _one_edit_apart(word, k) for k in OPT_OUT_KEYWORDS)


def classify_sms(text: str) -> str:
    """SM-1: what an inbound SMS says, one of the SMS_* constants.

    A keyword counts in the spellings people send: any case, spaces and punctuation
    around it, letters spaced out ("S T O P"), accents and Ø ("STØPP"), digits for
    letters ("st0p"), repeated letters ("STOOOP"), one typo of an opt-out keyword of four
    letters or more ("Stpo"; not the ordinary words of NEAR_MISSES), or a reply of stop
    signs only (STOP_EMOJI). An opt-out reading wins over the others (the stricter one).
    """
    if _is_stop_signs(text):
        return SMS_OPT_OUT
    words, one_word = _sms_words(text)
    if words & OPT_OUT_KEYWORDS:
        return SMS_OPT_OUT
    if words & OPT_IN_KEYWORDS:
        return SMS_OPT_IN
    if words & HELP_KEYWORDS:
        return SMS_HELP
    if one_word and any(_near_opt_out(w) for w in words):
        return SMS_OPT_OUT
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
