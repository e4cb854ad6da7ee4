"""Consent validity is computed, each refusal with its reason (FORMATS.md §6, Thy)."""

from datetime import date

import pytest
from seeds import assert_quoted

from stafet.core.models import Organisation, OrgKind
from stafet.duties.consent import CO_SIGNED, SIGNERS, best, check, situation_matches, validity

SEED_SIGNERS = ("Er den unge fyldt 18 år, underskrives samtykkeerklæringen af den unge og tovholderen. "
                "Er den unge ikke fyldt 18 år, underskrives samtykket af forældre eller indehaveren af "
                "forældremyndigheden.")
SEED_CO_SIGNED = "af den unge og tovholderen"
SEED_TIME_LIMITED = "Samtykket gøres tidsbegrænset efter situationen."
SEED_SITUATIONS = "hvad den unges tovholder i afklaringsforløbet må fortælle til hvem og i hvilke situationer"

MERCANTEC = Organisation("779008", OrgKind.INSTITUTION, "Mercantec", "791", "folder:x", "m@x.dk")
UU = Organisation("uu-viborg", OrgKind.GUIDANCE, "UU Viborg", "791", "folder:y", "u@x.dk")
BORN = date(2008, 3, 12)  # 18 on 2026-03-12


def consent(**kw):
    c = {"ref": "S-1", "signed_by": "ung", "signed_date": "2026-11-19", "valid_from": "2026-11-19",
         "valid_to": "2027-02-28", "recipients": ["779008"], "scopes": ["uddannelsesplan", "stoettebehov"],
         "withdrawn_date": None}
    c.update(kw)
    return c


@pytest.mark.parametrize("quote", [SEED_SIGNERS, SEED_CO_SIGNED, SEED_TIME_LIMITED, SEED_SITUATIONS])
def test_each_quote_is_in_a_seed_document(quote: str) -> None:
    assert_quoted(quote)


def test_the_old_misquote_is_not_in_the_seeds() -> None:
    with pytest.raises(AssertionError):  # seed 003 says "indehaveren", not "indehaver"
        assert_quoted("underskrives samtykket af forældre eller indehaver af forældremyndigheden")


# SEED_SIGNERS (Thy)
@pytest.mark.parametrize(("signed_by", "signed", "ok"), [
    ("ung", "2026-03-11", False),        # 17 years 364 days
    ("ung", "2026-03-12", True),         # 18 years that day
    ("foraelder", "2026-03-11", True),
    ("foraelder", "2026-03-12", False),
    ("vaerge", "2026-03-11", True),
    ("vaerge", "2027-01-01", False),
    ("nabo", "2026-03-11", False),
])
def test_who_may_sign_depends_on_age_at_signing(signed_by, signed, ok) -> None:
    why = validity(consent(signed_by=signed_by, signed_date=signed), BORN)
    assert (why == "") is ok
    if not ok:
        assert why.startswith("underskrevet af forkert part")


# SEED_CO_SIGNED (Thy): the youth of 18 or over signs together with the coordinator (tovholder)
@pytest.mark.parametrize(("signed", "ok"), [
    ("2026-03-11", False),   # 17 years 364 days: the custody holder signs, not the youth
    ("2026-03-12", True),    # the 18th birthday
])
def test_co_signed_by_youth_and_tovholder_from_18(signed, ok) -> None:
    assert CO_SIGNED == "ung+tovholder" and CO_SIGNED in SIGNERS
    why = validity(consent(signed_by=CO_SIGNED, signed_date=signed), BORN)
    assert (why == "") is ok
    if not ok:
        assert why == "underskrevet af forkert part (den unge var under 18 år)"
    assert check(consent(signed_by=CO_SIGNED, signed_date=signed), BORN, MERCANTEC, {"uddannelsesplan"},
                 date(2026, 12, 1)).usable is ok


# SEED_TIME_LIMITED / SEED_SITUATIONS (Thy): where a rule names a situation, the consent must be for it
@pytest.mark.parametrize(("given", "reason"), [
    ("Omvalg til smed", ""),
    ("  omvalg   TIL Smed ", ""),                    # white space and case aside
    ("Start på tømreruddannelsen",
     "samtykket gælder en anden situation («Start på tømreruddannelsen», reglen kræver «Omvalg til smed»)"),
    ("", "samtykket nævner ingen situation (reglen kræver «Omvalg til smed»)"),
])
def test_situation_named_by_a_rule_is_enforced(given, reason) -> None:
    c = consent(situation=given)
    assert situation_matches(c, "Omvalg til smed") == reason
    r = check(c, BORN, MERCANTEC, {"uddannelsesplan"}, date(2026, 12, 1), situation="Omvalg til smed")
    assert r.usable is (reason == "") and r.reason == reason
    # no situation in the rule: any situation (or none) will do
    assert check(c, BORN, MERCANTEC, {"uddannelsesplan"}, date(2026, 12, 1)).usable
    b = best([c], BORN, MERCANTEC, {"uddannelsesplan"}, date(2026, 12, 1), situation="Omvalg til smed")
    assert b.reason == reason


# SEED_TIME_LIMITED (Thy)
@pytest.mark.parametrize(("at", "reason"), [
    (date(2026, 11, 18), "ikke gyldigt endnu (fra 2026-11-19)"),
    (date(2026, 11, 19), ""),
    (date(2027, 2, 28), ""),
    (date(2027, 3, 1), "udløbet 2027-02-28"),
])
def test_time_limited(at, reason) -> None:
    r = check(consent(), BORN, MERCANTEC, {"uddannelsesplan"}, at)
    assert r.reason == reason and r.usable is (reason == "")


def test_withdrawn_from_its_date() -> None:
    c = consent(withdrawn_date="2026-12-01")
    assert check(c, BORN, MERCANTEC, {"uddannelsesplan"}, date(2026, 11, 30)).usable
    r = check(c, BORN, MERCANTEC, {"uddannelsesplan"}, date(2026, 12, 1))
    assert not r.usable and r.reason == "tilbagekaldt 2026-12-01"


def test_recipient_by_id_or_kind() -> None:
    assert not check(consent(), BORN, UU, {"uddannelsesplan"}, date(2026, 12, 1)).usable
    assert check(consent(recipients=["guidance"]), BORN, UU, {"uddannelsesplan"}, date(2026, 12, 1)).usable


def test_scopes_partial_and_none() -> None:
    r = check(consent(scopes=["uddannelsesplan"]), BORN, MERCANTEC, {"uddannelsesplan", "stoettebehov"},
              date(2026, 12, 1))
    assert r.usable and r.covered == {"uddannelsesplan"}
    r = check(consent(scopes=["paalaeg"]), BORN, MERCANTEC, {"uddannelsesplan"}, date(2026, 12, 1))
    assert not r.usable and r.reason == "samtykke dækker ikke uddannelsesplan"


def test_best_prefers_the_referenced_consents_refusal_and_says_no_consent() -> None:
    assert best([], BORN, MERCANTEC, {"paalaeg"}, date(2026, 12, 1)).reason == "ingen samtykke"
    expired = consent(ref="S-2", valid_to="2026-10-01")
    r = best([consent(scopes=["overgang"]), expired], BORN, MERCANTEC, {"uddannelsesplan"},
             date(2026, 12, 1), preferred_ref="S-2")
    assert r.ref == "S-2" and r.reason == "udløbet 2026-10-01"


def test_danish_kind_names_in_the_consent_form() -> None:
    jc = Organisation("jobcenter-viborg", OrgKind.JOB_CENTRE, "Jobcenter Viborg", "791", "folder:z", "j@x.dk")
    c = consent(recipients=["jobcenter"], scopes=["overgang"])
    assert check(c, BORN, jc, {"overgang"}, date(2026, 12, 1)).usable
    assert not check(c, BORN, UU, {"overgang"}, date(2026, 12, 1)).usable
