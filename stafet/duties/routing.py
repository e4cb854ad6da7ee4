"""Who must be told what, and why: the network's rule table applied to the store.

The rules live in one place, ``stafet/duties/rules.yaml`` (or ``routing_rules`` named in the
network config), read at start and validated. Each rule routes record kinds to a
recipient on a **legal basis**: a duty (no consent needed) or the youth's consent
(the record kinds' scopes must be covered; uncovered parts are left out, not the
whole package blocked). Every decision — send, partial, held — carries its rule,
basis and reason, and is audited by :func:`stafet.exchange.outbox.plan_handovers`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stafet.core.config import Network
from stafet.core.cpr import age_on
from stafet.core.errors import ConfigError
from stafet.core.models import HISTORY_SCOPES, Organisation, OrgKind
from stafet.duties import consent as consent_rules
from stafet.duties.moves import targets as move_targets
from stafet.store import Session, records, youths
from stafet.store import consents as consent_store

# Which payload fields a scope guards inside a record that is otherwise sent.
SCOPE_FIELDS = {"stoettebehov": ("support_needs", "support_other"), "fravaer": ("absence_pct",),
                "afbrudsaarsag": ("reason_code", "reason_text")}
# Which record kinds a covered scope lets travel as history (with `historik`).
SCOPE_KINDS = HISTORY_SCOPES  # from the registry of record kinds (stafet.core.models.RECORD_KINDS)


@dataclass(frozen=True)
class Rule:
    """One row of the rule table."""

    id: str
    kinds: tuple[str, ...]
    when: dict[str, Any]
    sender: str
    recipient: str
    basis: str  # duty | consent
    legal_basis: str
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    history: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    situation: str = ""  # consent rules: the situation a consent must be for ("" = any)


@dataclass(frozen=True)
class Decision:
    """One handover to make (or hold), with its reason."""

    sender: str
    recipient: str
    youth: str
    record_ids: tuple[int, ...]
    rule: str
    legal_basis: str
    consent_ref: str = ""
    status: str = "send"  # send | partial | held
    reason: str = ""
    omitted: tuple[tuple[str, str], ...] = ()


def load_rules(path: str | Path | None = None) -> tuple[Rule, ...]:
    """Read and validate the rule table; every problem is reported at once."""
    text = (Path(path).read_text(encoding="utf-8") if path else
            resources.files("stafet.duties").joinpath("rules.yaml").read_text(encoding="utf-8"))
    return _parse_rules(text, str(path or "stafet/duties/rules.yaml"))


@cache
def default_rules() -> tuple[Rule, ...]:
    """The rule table shipped in the repo (read once per process)."""
    return load_rules()


def _parse_rules(text: str, name: str) -> tuple[Rule, ...]:
    from stafet.core.models import RECORD_TYPES

    data = yaml.safe_load(text) or {}
    problems, rules = [], []
    for i, r in enumerate(data.get("rules") or []):
        where = f"{name}: rules[{i}]" + (f" ({r.get('id')})" if isinstance(r, dict) else "")
        if not isinstance(r, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        for key in ("id", "kinds", "sender", "recipient", "basis", "legal_basis"):
            if not r.get(key):
                problems.append(f"{where}: '{key}' is required")
        kinds = tuple(r.get("kinds") or ())
        for k in kinds:
            if k not in RECORD_TYPES:
                problems.append(f"{where}: unknown record kind {k!r}")
        if r.get("basis") not in ("duty", "consent"):
            problems.append(f"{where}: basis must be duty or consent")
        scopes = {str(k): tuple(v) for k, v in (r.get("scopes") or {}).items()}
        for k, v in scopes.items():
            for sc in v:
                if sc not in consent_rules.SCOPES:
                    problems.append(f"{where}: unknown consent scope {sc!r} for {k}")
        if r.get("basis") == "consent" and not all(k in scopes for k in kinds):
            problems.append(f"{where}: a consent rule needs scopes for every kind")
        for k in r.get("history") or ():
            if k not in RECORD_TYPES:
                problems.append(f"{where}: unknown record kind {k!r} in history")
        if r.get("situation") is not None and (r.get("basis") != "consent"
                                               or not str(r["situation"]).strip()):
            problems.append(f"{where}: situation is a non-empty text, on a consent rule only")
        if not re.match(r"^(field:|guidance_of:|unit_of:|job_centre_of:)\w+$", str(r.get("recipient", ""))):
            problems.append(f"{where}: recipient must be field:, guidance_of:, unit_of: or job_centre_of:<field>")  # noqa: E501
        if not re.match(r"^(field:\w+|\w+@file)$", str(r.get("sender", ""))):
            problems.append(f"{where}: sender must be field:<field> or <org kind>@file")
        if problems:
            continue
        rules.append(Rule(id=r["id"], kinds=kinds, when=dict(r.get("when") or {}), sender=r["sender"],
                          recipient=r["recipient"], basis=r["basis"], legal_basis=" ".join(
                              str(r["legal_basis"]).split()), scopes=scopes,
                          history=tuple(r.get("history") or ()), units=dict(r.get("units") or {}),
                          situation=" ".join(str(r.get("situation") or "").split())))
    if not rules and not problems:
        problems.append(f"{name}: no rules")
    if problems:
        raise ConfigError("the routing rules are not valid:\n  " + "\n  ".join(problems))
    return tuple(rules)


NO_LINK: dict[str, Any] = {"order_municipality": None, "interview": False}


def _applies(rule: Rule, p: dict[str, Any], kind: str, born: date, today: date,
             link: dict[str, Any] = NO_LINK) -> bool:
    """Whether the rule's ``when`` holds for a record (``link``: the youth's ties to a job centre)."""
    w = rule.when
    if "inquiry" in w and bool(link.get("inquiry")) != bool(w["inquiry"]):
        return False  # a rule for answering inquiries only (:func:`answer_decisions`)
    if "moved" in w and bool(p.get("moved_to") and p.get("move_day")
                             and date.fromisoformat(p["move_day"]) <= today) != bool(w["moved"]):
        return False  # a move known, into a known municipality, on or before today
    event = p.get("event_date") or p.get("status_date") or p.get("updated") or p.get("move_day")
    when = date.fromisoformat(event) if event else today
    if "age_under" in w and age_on(born, when) >= int(w["age_under"]):
        return False
    if "age_from" in w and age_on(born, when) < int(w["age_from"]):
        return False
    if "active_order" in w and bool(link["order_municipality"] is not None) != bool(w["active_order"]):
        return False
    if "known_to_job_centre" in w and \
            bool(link["order_municipality"] is not None or link["interview"]) != bool(w["known_to_job_centre"]):  # noqa: E501
        return False
    if kind == "concern_flag" and "concern_max_age_days" in w and \
            (today - when) > timedelta(days=int(w["concern_max_age_days"])):
        return False  # a concern flag counts for 3 months, then it expires
    if "status" in w and p.get("status") != w["status"]:
        return False
    for key, f in w.items():
        if key.startswith("field_present") and not p.get(f):
            return False
    return not ("receiver_in" in w and p.get("receiver") not in w["receiver_in"])


def _member_of_kind(network: Network, kind: str, municipality: str) -> Organisation | None:
    if kind == OrgKind.GUIDANCE.value:
        return network.guidance_for(municipality)
    return next((o for o in network.members.values()
                 if o.kind.value == kind and o.municipality == municipality), None)


def _sender(rule: Rule, network: Network, p: dict[str, Any], municipality: str) -> Organisation | None:
    """The member that sent the record: a field of it, or by the municipality of its provenance."""
    if rule.sender.startswith("field:"):
        return network.members.get(str(p.get(rule.sender[6:], "")))
    return _member_of_kind(network, rule.sender.split("@")[0], municipality) if municipality else None


def _recipient(rule: Rule, network: Network, p: dict[str, Any],
               sender: Organisation | None, link: dict[str, Any] = NO_LINK) -> Organisation | None:
    how, _, f = rule.recipient.partition(":")
    value = str(p.get(f, ""))
    if how == "guidance_of":
        return network.guidance_for(value)
    if how == "job_centre_of":  # the job centre of the active order's export, or of a municipality field
        muni = str(link["order_municipality"] or "") if f == "order" else value
        return _member_of_kind(network, OrgKind.JOB_CENTRE.value, muni) if muni else None
    if how == "field":
        return network.members.get(value)
    unit_kind = rule.units.get(value, "")
    return _member_of_kind(network, unit_kind, sender.municipality) if sender and unit_kind else None


def consents_of(s: Session, youth: str) -> list[dict[str, Any]]:
    """The youth's consents as payload dicts (withdrawal date from the row)."""
    out = []
    for c in consent_store.of_youth(s, youth):
        p = dict(c.payload)
        p["ref"] = c.ref
        if c.withdrawn_date:
            p["withdrawn_date"] = c.withdrawn_date.isoformat()
        out.append(p)
    return out


def route(s: Session, network: Network, today: date,
          rules: tuple[Rule, ...] | None = None,
          recipients: Collection[str] | None = None) -> list[Decision]:
    """Apply the rule table to every live record; one decision per (rule, sender, recipient, youth).

    ``recipients`` (``stafet send --to``): only the decisions for these; the others are not made.
    """
    rules = rules or default_rules()
    by_kind: dict[str, list[Rule]] = defaultdict(list)
    for r in rules:
        for k in r.kinds:
            by_kind[k].append(r)
    rows = records.routable(s, list(by_kind))
    links = records.job_centre_links(s) if any(
        "active_order" in r.when or "known_to_job_centre" in r.when for r in rules) else {}
    groups: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    births: dict[str, date] = {}
    refs: dict[tuple[str, str, str, str], str] = {}
    out: list[Decision] = []
    moved = move_targets((rid, youth, payload) for rid, kind, youth, payload, *_ in rows
                          if kind == "registration") if "registration" in by_kind else {}
    for rid, kind, youth, payload, origin_municipality, born in rows:
        births[youth] = born
        if rid in moved:  # routing reads where the youth moved to and when (move_targets)
            payload = {**payload, "moved_to": moved[rid][0], "move_day": moved[rid][1].isoformat()}
        for rule in by_kind[kind]:
            link = links.get(youth, NO_LINK)
            if not _applies(rule, payload, kind, born, today, link):
                continue
            sender = _sender(rule, network, payload, origin_municipality)
            recipient = _recipient(rule, network, payload, sender, link)
            if recipients is not None and (recipient is None or recipient.id not in recipients):
                continue
            if "moved" in rule.when and sender is not None and recipient is not None \
                    and sender.id == recipient.id:
                continue  # moved between two municipalities the same UU serves: nobody to hand over to
            if sender is None or recipient is None:
                reason = ("modtager findes ikke i netværket" if recipient is None
                          else "afsender findes ikke i netværket")
                out.append(Decision(sender.id if sender else "?", recipient.id if recipient else "?",
                                    youth, (rid,), rule.id, rule.legal_basis, status="held", reason=reason))
                continue
            key = (rule.id, sender.id, recipient.id, youth)
            groups[key].append(rid)
            if payload.get("consent_ref"):
                refs.setdefault(key, str(payload["consent_ref"]))
    rules_by_id = {r.id: r for r in rules}
    kinds_of = {rid: kind for rid, kind, *_ in rows}
    for key, ids in groups.items():
        rule = rules_by_id[key[0]]
        if rule.basis == "duty":
            out.append(Decision(key[1], key[2], key[3], tuple(ids), rule.id, rule.legal_basis))
            continue
        out.append(_consent_decision(s, network, rule, key, ids, kinds_of, births[key[3]], today,
                                     refs.get(key, "")))
    return out


INQUIRY_LINK: dict[str, Any] = {**NO_LINK, "inquiry": True}


def answer_decisions(s: Session, network: Network, youth: str, guidance: str, asker: str, today: date,
                     rules: tuple[Rule, ...] | None = None) -> list[Decision]:
    """What the UU ``guidance`` may tell ``asker`` about ``youth`` in answer to an inquiry (issue 18).

    The same rules as a handover: every decision :func:`route` makes today from ``guidance``
    to ``asker`` about the youth, and the rules for inquiries only (``when: {inquiry: true}``,
    the asker as recipient) decided like any other rule on duty or consent. Held decisions
    are returned too (their reason says why there is no basis); none at all: no rule applies.
    """
    rules = rules or default_rules()
    out = [d for d in route(s, network, today, rules)
           if d.youth == youth and d.sender == guidance and d.recipient == asker]
    asked = [r for r in rules if r.when.get("inquiry")]
    kinds = sorted({k for r in asked for k in r.kinds})
    recipient = network.members.get(asker)
    if not asked or recipient is None:
        return out
    rows = [r for r in records.routable(s, kinds) if r[2] == youth]
    for rule in asked:
        ids = [rid for rid, kind, _, p, muni, born in rows if kind in rule.kinds
               and _applies(rule, p, kind, born, today, INQUIRY_LINK)
               and (snd := _sender(rule, network, p, muni)) is not None and snd.id == guidance]
        if not ids:
            continue
        key = (rule.id, guidance, asker, youth)
        if rule.basis == "duty":
            out.append(Decision(guidance, asker, youth, tuple(ids), rule.id, rule.legal_basis))
            continue
        kinds_of = {rid: kind for rid, kind, *_ in rows}
        ref = next((str(p["consent_ref"]) for rid, _, _, p, *_ in rows
                    if rid in ids and p.get("consent_ref")), "")
        out.append(_consent_decision(s, network, rule, key, ids, kinds_of, rows[0][5], today, ref))
    return out


def needed_scopes(rule: Rule, kinds: set[str]) -> set[str]:
    """Every consent scope the rule's records would need for a full handover."""
    return {sc for k in kinds for sc in rule.scopes.get(k, ())}


def _consent_decision(s: Session, network: Network, rule: Rule, key: tuple[str, str, str, str],
                      ids: list[int], kinds_of: dict[int, str], born: date, today: date,
                      ref: str) -> Decision:
    recipient = network.members[key[2]]
    kinds = {kinds_of[i] for i in ids}
    needed = needed_scopes(rule, kinds)
    verdict = consent_rules.best(consents_of(s, key[3]), born, recipient, needed, today, ref,
                                 rule.situation)
    base = {rule.scopes[k][0] for k in kinds}
    if not verdict.usable or not base <= verdict.covered:
        reason = verdict.reason or "samtykke dækker ikke " + ", ".join(
            consent_rules.SCOPE_DA[b] for b in sorted(base - verdict.covered))
        return Decision(key[1], key[2], key[3], tuple(ids), rule.id, rule.legal_basis,
                        consent_ref=verdict.ref or ref, status="held", reason=reason)
    missing = needed - verdict.covered
    omitted = tuple((sc, f"samtykke dækker ikke {consent_rules.SCOPE_DA[sc]}") for sc in sorted(missing))
    return Decision(key[1], key[2], key[3], tuple(ids), rule.id, rule.legal_basis,
                    consent_ref=verdict.ref, status="partial" if omitted else "send",
                    reason="; ".join(r for _, r in omitted), omitted=omitted)


@dataclass(frozen=True)
class Scope:
    """What a package may carry, decided again when it is built (consent may have changed)."""

    usable: bool
    reason: str
    strip_fields: tuple[str, ...] = ()
    history_kinds: tuple[str, ...] = ()
    omitted: tuple[tuple[str, str], ...] = ()


def package_scope(s: Session, network: Network, rule_id: str, youth: str, recipient: str,
                  kinds: set[str], consent_ref: str, today: date,
                  rules: tuple[Rule, ...] | None = None) -> Scope:
    """Re-check the legal basis at send time: a withdrawn or expired consent stops the send.

    ``rules``: the rule table (default: :func:`default_rules`); a rule's ``situation`` is
    checked again here too.
    """
    return package_scope_with(network, rule_id, recipient, kinds, consent_ref, today,
                              lambda: (youths.birth_date_of(s, youth), consents_of(s, youth)), rules)


def package_scope_with(network: Network, rule_id: str, recipient: str, kinds: set[str], consent_ref: str,
                       today: date, facts: Callable[[], tuple[date, list[dict[str, Any]]]],
                       rules: tuple[Rule, ...] | None = None) -> Scope:
    """:func:`package_scope` with the youth's ``facts`` read by the caller (a send reads a batch's at once).

    ``facts()``: the youth's birth date and consents (:func:`consents_of`), called only for
    a consent rule, where :func:`package_scope` reads them.
    """
    rule = {r.id: r for r in rules or default_rules()}.get(rule_id)
    if rule is None:
        return Scope(False, f"ukendt regel {rule_id}")
    if rule.basis == "duty":
        return Scope(True, "", history_kinds=rule.history)
    born, youth_consents = facts()
    consents = [c for c in youth_consents if c["ref"] == consent_ref]
    needed = needed_scopes(rule, kinds)
    verdict = consent_rules.best(consents, born, network.member(recipient), needed | {"historik"},
                                 today, consent_ref, rule.situation)
    base = {rule.scopes[k][0] for k in kinds if k in rule.scopes}
    if not verdict.usable:
        return Scope(False, verdict.reason)
    if not base <= verdict.covered:
        return Scope(False, "samtykke dækker ikke " + ", ".join(
            consent_rules.SCOPE_DA[b] for b in sorted(base - verdict.covered)))
    missing = needed - verdict.covered
    strip = tuple(f for sc in sorted(missing) for f in SCOPE_FIELDS.get(sc, ()))
    history: tuple[str, ...] = ()
    if "historik" in verdict.covered:
        history = tuple(sorted({SCOPE_KINDS[sc] for sc in verdict.covered if sc in SCOPE_KINDS}))
    omitted = tuple((sc, f"samtykke dækker ikke {consent_rules.SCOPE_DA[sc]}") for sc in sorted(missing))
    return Scope(True, "", strip, history, omitted)


def concern_window_days(rules: tuple[Rule, ...] | None = None) -> int:
    """How long a concern flag counts (days): ``concern_max_age_days`` of the rule routing flags.

    rules.yaml is the only copy of the number (92, "3 months"); a table without it is an error.
    """
    for r in rules or default_rules():
        if "concern_flag" in r.kinds and "concern_max_age_days" in r.when:
            return int(r.when["concern_max_age_days"])
    raise ConfigError("the routing rules give no concern_max_age_days for concern_flag")


def dropouts_without_concern(s: Session, today: date,
                             rules: tuple[Rule, ...] | None = None) -> list[dict[str, Any]]:
    """Dropouts with no concern flag from the same institution in the window before.

    Randers: "no dropout without a prior concern flag to UU"; listed per institution.
    The window is the one a concern flag counts for (:func:`concern_window_days`).
    """
    window = timedelta(days=concern_window_days(rules))
    flags: dict[tuple[str, str], list[date]] = defaultdict(list)
    for youth, p in records.concern_flags(s):
        flags[(youth, p["institution"])].append(date.fromisoformat(p["event_date"]))
    out = []
    for rid, youth, p in records.own_dropouts(s):
        d = date.fromisoformat(p["event_date"])
        prior = [f for f in flags.get((youth, p["institution"]), []) if d - window <= f <= d]
        if not prior:
            out.append({"record": rid, "youth": youth, "institution": p["institution"],
                        "dropout_date": p["event_date"]})
    return out
