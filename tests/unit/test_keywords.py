"""SM-1 keywords and the opt-out wording of emails (suppression.keywords)."""

from __future__ import annotations

import pytest

from suppression import keywords
from suppression.keywords import (
    MAIL_ERASURE,
    MAIL_OBJECTION,
    MAIL_UNCLEAR,
    MAIL_UNSUBSCRIBE,
    SMS_HELP,
    SMS_OPT_IN,
    SMS_OPT_OUT,
    SMS_OTHER,
    SMS_REFUSAL,
    classify_mail,
    classify_sms,
)

SM1_KEYWORDS = [
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
]


def test_the_keyword_list_is_exactly_the_one_sm1_names() -> None:
    assert set(SM1_KEYWORDS) == keywords.OPT_OUT_KEYWORDS


@pytest.mark.parametrize("word", SM1_KEYWORDS)
@pytest.mark.parametrize(
    "spelling",
    [
        "{w}",
        "{l}",
        "{t}",
        "  {w}  ",
        "{l}.",
        "{w}!",
        "\n{t}\n",
        '"{l}"',
        "{w} 🙏",
        "...{t}?!",
        "\u00a0{w}\u00a0",
    ],
)
def test_sm1_every_keyword_in_any_case_with_spaces_and_punctuation_is_an_opt_out(
    word: str, spelling: str
) -> None:
    text = spelling.format(w=word, l=word.lower(), t=word.title())
    assert classify_sms(text) == SMS_OPT_OUT


@pytest.mark.parametrize("text", ["OPT-OUT", "opt_out", "Stop-all", "stopp–"])
def test_sm1_hyphens_inside_the_one_word_are_ignored_too(text: str) -> None:
    assert classify_sms(text) == SMS_OPT_OUT


@pytest.mark.parametrize("text", ["START", "start", " Unstop ", "yes!", "Yes."])
def test_all5_start_unstop_and_yes_are_only_opt_in_requests(text: str) -> None:
    assert classify_sms(text) == SMS_OPT_IN


@pytest.mark.parametrize("text", ["HELP", "info", "Hjelp?"])
def test_help_words_are_recognised_as_help(text: str) -> None:
    assert classify_sms(text) == SMS_HELP


@pytest.mark.parametrize(
    "text",
    [
        "stop sending me this",
        "Please STOP",
        "STOP STOP",
        "ikke send meg mer",
        "Ikke send meg flere meldinger!",
        "Slutt å sende meg reklame",
        "Jeg vil ikke ha flere SMS fra dere",
        "remove me from your list",
        "Nei takk",
        "la meg være i fred",
        "don't text me again",
        "Hvordan avmelder jeg meg?",
        "Slett nummeret mitt",
        "not interested",
    ],
)
def test_sm1_a_longer_text_that_looks_like_a_refusal_goes_to_review(text: str) -> None:
    assert classify_sms(text) == SMS_REFUSAL


@pytest.mark.parametrize(
    "text", ["Takk for sist!", "Hva koster alarmen?", "OK", "Når kommer montøren?", "", "   "]
)
def test_an_ordinary_reply_is_only_recorded(text: str) -> None:
    assert classify_sms(text) == SMS_OTHER


def test_a_keyword_inside_a_longer_word_is_not_a_keyword() -> None:
    assert classify_sms("Stoppeklokke") == SMS_OTHER
    assert classify_sms("Alarmen stopper ikke å pipe") == SMS_OTHER


# --- email ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Avmelding", ""),
        ("", "Avmeld meg, takk."),
        ("Hei", "Vennligst meld meg av nyhetsbrevet.\n\nMvh Ola"),
        ("unsubscribe", ""),
        ("", "Please remove me from your mailing list."),
        ("", "Ikke send meg mer e-post."),
        ("Stopp", ""),
        ("", "STOPP\n\nHilsen Kari"),
        ("", "Stop sending me emails"),
        ("Opt out", ""),
    ],
)
def test_unsubscribe_wording_in_an_email_is_an_email_unsubscribe(subject: str, body: str) -> None:
    assert classify_mail(subject, body) == MAIL_UNSUBSCRIBE


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("", "Ikke kontakt meg igjen."),
        ("Reservasjon", "Jeg reserverer meg mot all markedsføring."),
        ("", "Reservér meg mot henvendelser fra dere."),
        ("", "Ikke ring meg mer."),
        ("", "I object to direct marketing."),
        ("", "Do not contact me again"),
        ("", "Jeg protesterer mot at dere bruker opplysningene mine til markedsføring."),
        ("", "Ingen flere henvendelser, takk."),
    ],
)
def test_all1_objection_wording_in_an_email_is_an_objection(subject: str, body: str) -> None:
    assert classify_mail(subject, body) == MAIL_OBJECTION


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Slett meg", ""),
        ("", "Slett alle mine opplysninger og ikke kontakt meg mer."),
        ("", "Jeg ber om sletting av mine personopplysninger."),
        ("", "Please delete my data."),
        ("", "I invoke my right to be forgotten."),
        ("GDPR", "Erase my personal data."),
    ],
)
def test_erasure_wording_wins_over_everything_else(subject: str, body: str) -> None:
    assert classify_mail(subject, body) == MAIL_ERASURE


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Spørsmål", "Når kommer montøren? Alarmen piper og vil ikke stoppe."),
        ("", "When will the noise stop? It has been beeping all night long, please help."),
        ("Faktura", "Jeg har fått feil faktura."),
        ("", ""),
    ],
)
def test_anything_not_clearly_a_no_is_unclear_and_goes_to_a_person(subject: str, body: str) -> None:
    assert classify_mail(subject, body) == MAIL_UNCLEAR


def test_the_quoted_original_of_a_reply_is_not_read_as_the_senders_words() -> None:
    body = (
        "Takk, det høres bra ut!\n\n"
        "Den tir. 4. juni 2024 kl. 10:00 skrev Trygg Hjem Alarm AS <post@example.no>:\n"
        "> Vil du ikke ha flere tilbud? Avmeld deg her: https://example.no/u/abc\n"
    )
    assert classify_mail("SV: Sommertilbud", body) == MAIL_UNCLEAR


def test_the_subject_of_a_reply_repeats_our_subject_and_is_ignored() -> None:
    assert classify_mail("SV: Stopp tyven før han kommer inn!", "Hva koster det?") == MAIL_UNCLEAR
    assert classify_mail("Re: Stop burglars", "Avmeld meg") == MAIL_UNSUBSCRIBE


def test_quoted_lines_are_dropped_and_own_words_kept() -> None:
    body = "Avmeld meg.\n> gammel tekst\nOn Mon, 3 Jun 2024, Shop wrote:\n> more"
    assert keywords.fresh_text(body) == "Avmeld meg."


# --- SM-1: the spellings people actually send ----------------------------------------

# Real-world replies to a marketing SMS, in nb and en, and what each one is. An opt-out is
# a ledger entry; a refusal text or any other reply goes to a person in the review queue
# (campaigns.optouts.twilio); START and HELP words are recorded.
SPELLINGS = [
    # letters spaced out
    ("S T O P", SMS_OPT_OUT),
    ("s t o p p", SMS_OPT_OUT),
    ("S.T.O.P.", SMS_OPT_OUT),
    ("S-T-O-P", SMS_OPT_OUT),
    ("E N D", SMS_OPT_OUT),
    # diacritics and Ø
    ("STØPP", SMS_OPT_OUT),
    ("Støp", SMS_OPT_OUT),
    ("stöpp", SMS_OPT_OUT),
    ("Stópp!", SMS_OPT_OUT),
    ("ＳＴＯＰ", SMS_OPT_OUT),
    # digits and signs for letters
    ("st0p", SMS_OPT_OUT),
    ("ST0PP", SMS_OPT_OUT),
    ("5TOP", SMS_OPT_OUT),
    ("$top", SMS_OPT_OUT),
    ("QU1T", SMS_OPT_OUT),
    ("C4NC3L", SMS_OPT_OUT),
    ("0pt0ut", SMS_OPT_OUT),
    ("3nd", SMS_OPT_OUT),
    # one typo: two letters swapped, one dropped, one added, one changed
    ("Stpo", SMS_OPT_OUT),
    ("Sotp", SMS_OPT_OUT),
    ("Tsop", SMS_OPT_OUT),
    ("Sropp", SMS_OPT_OUT),
    ("Stoppe", SMS_OPT_OUT),
    ("Stopps", SMS_OPT_OUT),
    ("Avmled", SMS_OPT_OUT),
    ("Avmelde", SMS_OPT_OUT),
    ("avmeldt", SMS_OPT_OUT),
    ("Avslut", SMS_OPT_OUT),
    ("Avsltut", SMS_OPT_OUT),
    ("AVSLUTTE", SMS_OPT_OUT),
    ("Unsubscibe", SMS_OPT_OUT),
    ("unsubcribe", SMS_OPT_OUT),
    ("Unsubscribed", SMS_OPT_OUT),
    ("Cancle", SMS_OPT_OUT),
    ("cancell", SMS_OPT_OUT),
    ("Qiut", SMS_OPT_OUT),
    ("Revoek", SMS_OPT_OUT),
    # emphasis, and words run apart
    ("Stooooop", SMS_OPT_OUT),
    ("STOPPPPP!!!", SMS_OPT_OUT),
    ("Stop all", SMS_OPT_OUT),
    ("Opt out", SMS_OPT_OUT),
    ("Stopp 🛑", SMS_OPT_OUT),
    # stop signs
    ("🛑", SMS_OPT_OUT),
    ("⛔", SMS_OPT_OUT),
    ("⛔️", SMS_OPT_OUT),
    ("🚫", SMS_OPT_OUT),
    ("✋", SMS_OPT_OUT),
    ("✋🏻", SMS_OPT_OUT),
    ("🙅‍♂️", SMS_OPT_OUT),
    ("🛑🛑🛑", SMS_OPT_OUT),
    ("🔕", SMS_OPT_OUT),
    # START and HELP, spelt out too; never fuzzy
    ("S T A R T", SMS_OPT_IN),
    ("st4rt", SMS_OPT_IN),
    ("h j e l p", SMS_HELP),
    ("Info?", SMS_HELP),
    # wording that may be a no: review
    ("Stopp takk", SMS_REFUSAL),
    ("ikke send mer", SMS_REFUSAL),
    ("Ikke send meg flere SMS", SMS_REFUSAL),
    ("Nei takk!", SMS_REFUSAL),
    ("Slutt", SMS_REFUSAL),
    ("Stans", SMS_REFUSAL),
    ("Stopp med dette", SMS_REFUSAL),
    ("Avmelding", SMS_REFUSAL),
    ("Fjern meg fra lista deres", SMS_REFUSAL),
    ("Please stop", SMS_REFUSAL),
    ("Stop texting me", SMS_REFUSAL),
    ("unsubscribe me please", SMS_REFUSAL),
    ("not interested", SMS_REFUSAL),
    # ordinary words one edit from a keyword, short words, other signs: review, not a no
    ("SHOP", SMS_OTHER),
    ("Step", SMS_OTHER),
    ("Stor", SMS_OTHER),
    ("stol", SMS_OTHER),
    ("Topp", SMS_OTHER),
    ("sopp", SMS_OTHER),
    ("Quite", SMS_OTHER),
    ("Quiet", SMS_OTHER),
    ("suit", SMS_OTHER),
    ("SH0P", SMS_OTHER),
    ("STP", SMS_OTHER),
    ("Ende", SMS_OTHER),
    ("and", SMS_OTHER),
    ("Ja", SMS_OTHER),
    ("Takk", SMS_OTHER),
    ("Ring meg", SMS_OTHER),
    ("5709", SMS_OTHER),
    ("👍", SMS_OTHER),
    ("❌", SMS_OTHER),
    ("🛑😡", SMS_OTHER),
    ("s t o p takk", SMS_OTHER),
]


@pytest.mark.parametrize(("text", "expected"), SPELLINGS)
def test_sm1_spellings_people_send_are_read_as_the_keyword_they_spell(
    text: str, expected: str
) -> None:
    assert classify_sms(text) == expected


def test_the_spelling_table_is_a_real_table() -> None:
    assert len(SPELLINGS) >= 60
    assert len({text for text, _ in SPELLINGS}) == len(SPELLINGS)


@pytest.mark.parametrize("word", sorted(keywords.NEAR_MISSES))
def test_every_near_miss_is_one_edit_from_a_keyword_and_not_an_opt_out(word: str) -> None:
    assert any(keywords._one_edit_apart(word, k) for k in keywords.OPT_OUT_KEYWORDS)
    assert classify_sms(word) == SMS_OTHER
    assert classify_sms(word.title() + "!") == SMS_OTHER


@pytest.mark.parametrize("word", ["END", "YES"])
def test_a_keyword_shorter_than_four_letters_needs_an_exact_match(word: str) -> None:
    for typo in (word[1:], word[0] + word[2], word[::-1], word + "S", "A" + word[1:]):
        assert classify_sms(typo) not in (SMS_OPT_OUT, SMS_OPT_IN), typo


@pytest.mark.parametrize("word", sorted(keywords.OPT_IN_KEYWORDS | keywords.HELP_KEYWORDS))
def test_start_and_help_words_are_never_read_as_an_opt_out(word: str) -> None:
    assert classify_sms(word) != SMS_OPT_OUT
