"""Consent: is it valid, usable now, and what does it cover — each with its reason.

Validity is computed, never trusted from the source (FORMATS.md §6, Thy's shared
consent form): a consent signed by the youth (``ung``) while under 18 is invalid, and
so is one signed by a parent or custody holder (``foraelder``/``vaerge``) when the
youth was 18 or over. A valid consent is usable only between its from and to dates
and until it is withdrawn. Reasons are in Danish, as a data steward reads them.

Co-signature: "Er den unge fyldt 18 år, underskrives samtykkeerklæringen af den unge og
tovholderen" (Thy, seed 003). A consent signed by both is recorded as ``signed_by:
ung+tovholder`` (:data:`CO_SIGNED`) and is valid only when the youth was 18 or over at signing.

Situation: "Samtykket gøres tidsbegrænset efter situationen" (Thy). Where a routing rule
names a ``situation`` (rules.yaml), a consent for another situation, or for none, is
refused (:func:`situation_matches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from stafet.core.cpr import age_on
from stafet.core.models import Organisation

SCOPES = ("uddannelsesplan", "stoettebehov", "paalaeg", "overgang", "fravaer", "afbrudsaarsag",
          "historik")
CO_SIGNED = "ung+tovholder"
"""The youth and the youth's coordinator (tovholder) signed together: 18 or over only."""
SIGNERS = ("ung", "foraelder", "vaerge", CO_SIGNED)
SCOPE_DA = {"uddannelsesplan": "uddannelsesplan", "stoettebehov": "støttebehov", "paalaeg": "pålæg",
            "overgang": "overgang", "fravaer": "fravær", "afbrudsaarsag": "afbrudsårsag",
            "historik": "historik"}


@dataclass(frozen=True)
class ConsentCheck:
    """The verdict on one consent for one recipient at one date."""

    ref: str
    usable: bool
    reason: str  # "" when usable
    covered: frozenset[str] = frozenset()


def validity(c: dict[str, Any], birth_date: date) -> str:
    """Why the consent is invalid in itself ("" when valid). ``c`` is a consent payload."""
    signed = date.fromisoformat(c["signed_date"])
    age = age_on(birth_date, signed)
    if c["signed_by"] in ("ung", CO_SIGNED) and age < 18:
        return "underskrevet af forkert part (den unge var under 18 år)"
    if c["signed_by"] in ("foraelder", "vaerge") and age >= 18:
        return "underskrevet af forkert part (den unge var fyldt 18 år)"
    if c["signed_by"] not in SIGNERS:
        return "underskrevet af forkert part"
    if not c.get("valid_to"):
        return "mangler slutdato"
    return ""


# Danish names for organisation kinds seen in consent forms ("modtagere").
KIND_ALIASES = {"jobcenter": "job_centre", "uu": "guidance", "ungeindsats": "guidance", "kui": "guidance",
                "vejledning": "guidance", "uddannelsesinstitution": "institution", "skole": "institution",
                "grundskole": "primary_school", "familieafdeling": "family_services",
                "socialafdeling": "social_services"}


def covers_recipient(c: dict[str, Any], org: Organisation) -> bool:
    """True when the consent names the organisation's id or its kind (English or Danish)."""
    named = {str(r).strip().lower() for r in c.get("recipients", [])}
    named |= {KIND_ALIASES[n] for n in named if n in KIND_ALIASES}
    return org.id in named or org.kind.value in named


def _fold(text: Any) -> str:
    return " ".join(str(text or "").split()).casefold()


def situation_matches(c: dict[str, Any], situation: str) -> str:
    """Why the consent is not for ``situation`` ("" when it is, or when no situation is named).

    Compared with white space folded and case ignored: "Omvalg til smed" is "omvalg  til Smed".
    """
    if not _fold(situation):
        return ""
    given = _fold(c.get("situation"))
    if not given:
        return f"samtykket nævner ingen situation (reglen kræver «{' '.join(situation.split())}»)"
    if given != _fold(situation):
        return (f"samtykket gælder en anden situation («{' '.join(str(c['situation']).split())}», "
                f"reglen kræver «{' '.join(situation.split())}»)")
    return ""


def check(c: dict[str, Any], birth_date: date, recipient: Organisation, needed: set[str],
          at: date, situation: str = "") -> ConsentCheck:
    """Decide whether ``recipient`` may be told the ``needed`` scopes at ``at``.

    ``usable`` with ``covered`` ⊂ ``needed`` means a partial handover: the uncovered
    kinds are left out, not the whole package blocked. ``situation`` (a rule's) must be
    the consent's own (:func:`situation_matches`).
    """
    ref = str(c.get("ref", ""))
    why = validity(c, birth_date)
    if why:
        return ConsentCheck(ref, False, why)
    withdrawn = c.get("withdrawn_date")
    if withdrawn and date.fromisoformat(withdrawn) <= at:
        return ConsentCheck(ref, False, f"tilbagekaldt {withdrawn}")
    if at < date.fromisoformat(c["valid_from"]):
        return ConsentCheck(ref, False, f"ikke gyldigt endnu (fra {c['valid_from']})")
    if at > date.fromisoformat(c["valid_to"]):
        return ConsentCheck(ref, False, f"udløbet {c['valid_to']}")
    if not covers_recipient(c, recipient):
        return ConsentCheck(ref, False, f"samtykke dækker ikke modtageren {recipient.name}")
    other = situation_matches(c, situation)
    if other:
        return ConsentCheck(ref, False, other)
    covered = frozenset(needed & set(c.get("scopes", [])))
    if not covered:
        missing = ", ".join(SCOPE_DA.get(s, s) for s in sorted(needed))
        return ConsentCheck(ref, False, f"samtykke dækker ikke {missing}")
    return ConsentCheck(ref, True, "", covered)


def best(consents: list[dict[str, Any]], birth_date: date, recipient: Organisation, needed: set[str],
         at: date, preferred_ref: str = "", situation: str = "") -> ConsentCheck:
    """The most covering usable consent, or the most telling refusal.

    The consent the record itself refers to (``samtykke_ref``) is tried first and its
    refusal is the one reported; with no consent at all the reason is "ingen samtykke".
    """
    if not consents:
        return ConsentCheck(preferred_ref, False, "ingen samtykke")
    ordered = sorted(consents, key=lambda c: c.get("ref") != preferred_ref)
    checks = [check(c, birth_date, recipient, needed, at, situation) for c in ordered]
    usable = [c for c in checks if c.usable]
    if usable:
        return max(usable, key=lambda c: len(c.covered))
    return checks[0]
