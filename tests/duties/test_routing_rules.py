"""The rule table applied to records; each rule's test quotes the seed it comes from."""

from datetime import date, timedelta

import pytest
from seeds import assert_quoted
from sqlalchemy import select

from stafet import night
from stafet.core.errors import ConfigError
from stafet.core.models import ConcernFlag, Consent, Dropout, EducationOrder, EducationPlan, TransitionCase
from stafet.duties.routing import dropouts_without_concern, load_rules, route
from stafet.exchange.inbox import process_inbox
from stafet.exchange.withdrawals import withdraw_consent
from stafet.store.db import utcnow
from stafet.store.schema import ConsentRow, Handover, ImportedRecordRow, RecordRow

from .conftest import cpr, prov

TODAY = date.today()

SEED_DROPOUT_DUTY = ("Hvis en ung er frafaldstruet eller afbryder sin ungdomsuddannelse, skal uddannelsen "
                     "rette henvendelse til UU")
SEED_CONCERN_FIRST = ("aldrig sker et afbrud af uddannelse, uden at der har været sendt et "
                      "bekymringsmærke til UUR")
SEED_ORDER = ("fremgår det af uddannelsespålægget, som sendes til skolen, ligesom der også fremgår evt. "
              "andre oplysninger, som skolen skal have kendskab til, herunder kontaktoplysninger på "
              "sagsbehandler.")
SEED_PLAN = "Uddannelsesplanen sendes med sikkermail til relevant studievejleder"
SEED_TRANSITION = "overgangsmøder – senest ved det 17 år"
SEED_HISTORY = "den unge skal fortælle sin historie *igen og igen*, følger den unges historik med"
SEED_SITUATION = "Samtykket gøres tidsbegrænset efter situationen."
SEED_TOVHOLDER = "For hver enkelt ung udnævnes en gennemgående tovholder blandt samarbejdspartnerne."


@pytest.mark.parametrize("quote", [SEED_DROPOUT_DUTY, SEED_CONCERN_FIRST, SEED_ORDER, SEED_PLAN,
                                   SEED_TRANSITION, SEED_HISTORY, SEED_SITUATION, SEED_TOVHOLDER])
def test_each_quote_is_in_a_seed_document(quote: str) -> None:
    assert_quoted(quote)


def school(cls, c, muni, event, inst="779008", **kw):
    return cls(cpr=cpr(c), institution=inst, home_municipality=muni, event_date=event,
               programme_code="1640", programme_name="Tømrer", provenance=prov(), **kw)


def add_consent(ctx, c, ref, scopes, recipients, signed_by="ung", **kw):
    con = Consent(cpr=cpr(c), ref=ref, signed_by=signed_by, signed_date=kw.pop("signed", TODAY),
                  valid_from=kw.pop("valid_from", TODAY - timedelta(days=1)),
                  valid_to=kw.pop("valid_to", TODAY + timedelta(days=200)),
                  recipients=tuple(recipients), scopes=tuple(scopes), situation=kw.pop("situation", ""))
    with ctx.store.session() as s:
        y = ctx.store.ensure_youths(s, [con.cpr])[con.cpr.digits]
        s.add(ConsentRow(ref=ref, youth=y, payload=con.payload(), withdrawn_date=None, updated_at=utcnow()))


def store(ctx, *records, file="t.csv"):
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, list(records))


def decisions(ctx):
    with ctx.store.session() as s:
        return route(s, ctx.network, TODAY)


# SEED_DROPOUT_DUTY (Thy); DOMAIN: the duty covers youths under 25, routed to the UU of the
# municipality where the youth is registered.
@pytest.mark.parametrize(("birth", "sent"), [
    ("181101-4000", True),    # 24 years 364 days at the dropout on 2026-11-17
    ("171101-4000", False),   # 25 that day
])
def test_duty_stops_at_25(net, birth, sent) -> None:
    _, ctx = net
    store(ctx, school(Dropout, birth, "791", date(2026, 11, 17), reason_code="03"))
    ds = [d for d in decisions(ctx) if d.rule == "dropout_to_uu"]
    assert (len(ds) == 1) is sent


def test_cross_municipality_skive_youth_at_viborg_school_goes_to_uu_skive(net) -> None:
    _, ctx = net
    store(ctx, school(Dropout, "120308-4127", "779", TODAY - timedelta(days=2), inst="751001",
                      reason_code="05"))
    (d,) = decisions(ctx)
    assert (d.sender, d.recipient, d.status) == ("751001", "uu-skive", "send")
    assert "bopælskommune" in d.legal_basis


# SEED_CONCERN_FIRST (Randers); DOMAIN: a concern note counts for 3 months, then it expires.
def test_concern_flags_expire_and_dropouts_without_prior_flag_are_listed(net) -> None:
    _, ctx = net
    old = TODAY - timedelta(days=120)
    store(ctx, school(ConcernFlag, "120308-4127", "791", old),
          school(Dropout, "120308-4127", "791", TODAY - timedelta(days=1), reason_code="03"),
          school(ConcernFlag, "030409-4871", "791", TODAY - timedelta(days=30)),
          school(Dropout, "030409-4871", "791", TODAY - timedelta(days=1), reason_code="02"))
    ds = decisions(ctx)
    with ctx.store.session() as s:
        kinds = {d.youth: sorted(s.get(RecordRow, i).kind for i in d.record_ids) for d in ds}
        flagged = dropouts_without_concern(s, TODAY)
    assert sorted(kinds.values()) == [["concern_flag", "dropout"], ["dropout"]]
    assert len(flagged) == 1 and flagged[0]["institution"] == "779008"


# SEED_ORDER (Viborg)
def order(c, status="OPHOERT_UDDANNELSESSTART", ref="S-31"):
    return EducationOrder(cpr=cpr(c), order_id="UP-2026-0113", target_education="Smed",
                          target_institution="779008", deadline=TODAY + timedelta(days=40),
                          mentor_granted=True, mentor_name="Kim Brandt", caseworker_name="Lene Juhl",
                          status=status, status_date=TODAY, consent_ref=ref,
                          provenance=prov("jobcenter_791_paalaeg_20261121.csv"))


@pytest.mark.parametrize(("scopes", "recipients", "status", "reason"), [
    (["paalaeg"], ["779008"], "send", ""),
    (["paalaeg"], ["institution"], "send", ""),
    (["overgang"], ["779008"], "held", "samtykke dækker ikke pålæg"),
    (["paalaeg"], ["uu-viborg"], "held", "samtykke dækker ikke modtageren Mercantec"),
    (None, None, "held", "ingen samtykke"),
])
def test_education_order_needs_consent(net, scopes, recipients, status, reason) -> None:
    _, ctx = net
    store(ctx, order("1405024913"), order("0902034120", status="AKTIV"))
    if scopes:
        add_consent(ctx, "1405024913", "S-31", scopes, recipients)
    (d,) = decisions(ctx)
    assert (d.sender, d.recipient, d.rule) == ("jobcenter-viborg", "779008", "order_to_institution")
    assert (d.status, d.reason) == (status, reason)


def test_consent_signed_by_wrong_party_holds(net) -> None:
    _, ctx = net
    store(ctx, order("1405024913"))
    add_consent(ctx, "1405024913", "S-31", ["paalaeg"], ["779008"], signed_by="foraelder")
    (d,) = decisions(ctx)
    assert d.status == "held" and d.reason.startswith("underskrevet af forkert part")


def plan(c, institution="779008"):
    return EducationPlan(cpr=cpr(c), plan_id="UP-77812", updated=TODAY, goal_code="1650", goal_name="Smed",
                         goal_institution=institution, support_needs=("Mentor", "Ordblind"),
                         provenance=prov("uu_791_planer_20261120.xml"))


# SEED_PLAN (Randers / DOMAIN)
# — after consent; uncovered parts are left out, not the whole package blocked.
def test_plan_partial_when_consent_lacks_support_needs_and_package_says_so(net) -> None:
    path, ctx = net
    store(ctx, plan("120308-4127"))
    add_consent(ctx, "120308-4127", "S-50", ["uddannelsesplan"], ["779008"])
    (d,) = decisions(ctx)
    assert (d.sender, d.recipient, d.status) == ("uu-viborg", "779008", "partial")
    assert d.omitted == (("stoettebehov", "samtykke dækker ikke støttebehov"),)
    night.route(path, TODAY)
    assert night.send(path, ["779008"])["sent"] == 1
    night.receive(path, "779008")
    with ctx.store.session() as s:
        h = s.scalars(select(Handover)).one()
    from stafet.packages.package import _json_part as json_part
    from stafet.packages.package import decrypt_package, split_signed

    data = (ctx.home / h.package_path).read_bytes()  # the sender's copy, read with the recipient's key
    doc = json_part(split_signed(decrypt_package(data, ctx.keys.decryption_keys("779008")))[0])
    assert doc["omitted"] == [{"kind": "stoettebehov", "reason": "samtykke dækker ikke støttebehov"}]
    assert "support_needs" not in doc["records"][0]["data"]
    assert doc["records"][0]["data"]["goal_name"] == "Smed"


# SEED_TRANSITION (Viborg); the family department hands the youth to
# the job centre or social services after 18, with consent.
def test_transition_case_goes_to_the_named_unit(net) -> None:
    _, ctx = net
    store(ctx, TransitionCase(cpr=cpr("050609-4410"), case_no="F-2231", meeting_date=date(2026, 3, 14),
                              aftercare_sel76=True, support_sel85=False, receiver="jobcenter",
                              consent_ref="S-44", provenance=prov("familie_791_overgange_20261121.csv")),
          TransitionCase(cpr=cpr("300908-5527"), case_no="F-2240", aftercare_sel76=False,
                         support_sel85=True, receiver="socialafdeling",
                         provenance=prov("familie_791_overgange_20261121.csv")))
    add_consent(ctx, "050609-4410", "S-44", ["overgang", "historik"], ["job_centre"], signed_by="foraelder",
                signed=date(2026, 2, 1))
    ds = sorted(decisions(ctx), key=lambda d: d.recipient)
    assert [(d.sender, d.recipient, d.status) for d in ds] == [
        ("familie-viborg", "jobcenter-viborg", "send"), ("familie-viborg", "social-viborg", "held")]
    assert ds[1].reason == "ingen samtykke"


def test_the_sender_comes_from_the_records_provenance_not_its_file_name(net) -> None:
    """The family department's municipality is what ingest put in the provenance (stored with it)."""
    _, ctx = net
    store(ctx, TransitionCase(cpr=cpr("050609-4410"), case_no="F-2231", aftercare_sel76=False,
                              support_sel85=True, receiver="socialafdeling",
                              provenance=prov("renamed-by-hand.csv", municipality="791")),
          TransitionCase(cpr=cpr("300908-5527"), case_no="F-2240", aftercare_sel76=False,
                         support_sel85=True, receiver="socialafdeling",
                         provenance=prov("familie_791_overgange_20261121.csv", municipality="")))
    with ctx.store.session() as s:
        stored = {r.payload["case_no"]: r.origin_municipality for r in s.scalars(select(RecordRow))}
    assert stored == {"F-2231": "791", "F-2240": ""}
    ds = decisions(ctx)
    # F-2231's file name says nothing, its provenance says Viborg: routed from familie-viborg;
    # F-2240's file name says Viborg, its provenance nothing: no sender found ("?")
    assert sorted((d.sender, d.recipient) for d in ds) == [("?", "?"), ("familie-viborg", "social-viborg")]


def own_node(ctx, path, org):
    """``org`` running its own stafet: its own home, store and secret, its keys copied over."""
    import shutil

    from stafet.context import open_context
    from stafet.core.vault import load_secret

    home = ctx.home.parent / f"node-{org}"
    shutil.copytree(ctx.keys.org_dir(org), home / "keys" / org)
    load_secret(home, create=True)
    return open_context(path, home=home)


def test_withdrawal_stops_the_outbox_and_notifies_who_received(net) -> None:
    path, ctx = net
    store(ctx, order("1405024913"))
    add_consent(ctx, "1405024913", "S-31", ["paalaeg"], ["779008"])
    night.route(path, TODAY)
    assert night.send(path, ["779008"])["sent"] == 1
    mercantec = own_node(ctx, path, "779008")
    assert process_inbox(mercantec, "779008").imported == 1   # Mercantec imports and acknowledges
    night.receive(path, "jobcenter-viborg")
    # a second order waits in the outbox when the youth withdraws
    store(ctx, EducationOrder(cpr=cpr("1405024913"), order_id="UP-2026-0200", target_education="Smed",
                              target_institution="779008", deadline=TODAY, mentor_granted=False,
                              status="OPHOERT_UDDANNELSESSTART", status_date=TODAY, consent_ref="S-31",
                              provenance=prov("jobcenter_791_paalaeg_20261122.csv")))
    night.route(path, TODAY)
    counts = withdraw_consent(ctx, "S-31", TODAY, actor="steward")
    assert counts == {"cancelled": 1, "notices": 1}
    assert withdraw_consent(ctx, "S-31", TODAY, actor="steward") == {"cancelled": 0, "notices": 0}
    assert night.send(path, ["779008"])["sent"] == 1  # only the notice
    r = process_inbox(mercantec, "779008")
    assert r.withdrawn == 1 and r.receipts_sent == 1
    with mercantec.store.session() as s:
        assert [x.withdrawn for x in s.scalars(select(ImportedRecordRow))] == [True]
        assert list(s.scalars(select(RecordRow))) == []
    night.receive(path, "jobcenter-viborg")
    with ctx.store.session() as s:
        statuses = sorted((h.rule, h.status) for h in s.scalars(select(Handover)))
    assert statuses == [("order_to_institution", "acknowledged"), ("order_to_institution", "cancelled"),
                        ("withdrawal_notice", "acknowledged")]


def test_send_time_recheck_holds_an_expired_consent(net) -> None:
    path, ctx = net
    store(ctx, order("1405024913"))
    add_consent(ctx, "1405024913", "S-31", ["paalaeg"], ["779008"], valid_to=TODAY)
    night.route(path, TODAY)
    with ctx.store.session() as s:
        c = s.get(ConsentRow, "S-31")
        c.payload = {**c.payload, "valid_to": (TODAY - timedelta(days=1)).isoformat()}
    assert night.send(path, ["779008"])["held"] == 1
    with ctx.store.session() as s:
        h = s.scalars(select(Handover)).one()
    assert h.status == "held" and h.last_error.startswith("udløbet")


def test_rule_table_is_validated(tmp_path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text("rules:\n  - id: x\n    kinds: [dropout, nonsense]\n    sender: field:institution\n"
                 "    recipient: somewhere\n    basis: maybe\n    legal_basis: l\n")
    with pytest.raises(ConfigError) as e:
        load_rules(p)
    msg = str(e.value)
    assert "unknown record kind 'nonsense'" in msg and "basis must be duty or consent" in msg
    assert "recipient must be" in msg


def _sent_doc(ctx, recipient):
    from stafet.packages.package import _json_part as json_part
    from stafet.packages.package import decrypt_package, split_signed

    with ctx.store.session() as s:
        h = s.scalars(select(Handover).where(Handover.recipient == recipient)).one()
    data = (ctx.home / h.package_path).read_bytes()
    return json_part(split_signed(decrypt_package(data, ctx.keys.decryption_keys(recipient)))[0])


# SEED_HISTORY (Thy): the youth should not have to tell their story again and again; the history
# travels only as far as the legal basis allows.
def test_history_follows_the_legal_basis(net) -> None:
    path, ctx = net
    youth = "120308-4127"
    store(ctx, school(Dropout, youth, "791", TODAY - timedelta(days=3), reason_code="05"),
          school(ConcernFlag, youth, "791", TODAY - timedelta(days=20)),
          plan(youth))
    add_consent(ctx, youth, "S-50", ["uddannelsesplan", "stoettebehov"], ["779008"])
    night.route(path, TODAY)
    night.send(path, ["uu-viborg", "779008"])
    duty = _sent_doc(ctx, "uu-viborg")
    assert {h["kind"] for h in duty["history"]} == {"dropout", "concern_flag"}   # no plan: not the duty's
    assert [h["date"] for h in duty["history"]] == sorted(h["date"] for h in duty["history"])
    consent_pkg = _sent_doc(ctx, "779008")
    assert consent_pkg["history"] == []          # no `historik` in the consent
    assert consent_pkg["records"][0]["data"]["support_needs"] == ["Mentor", "Ordblind"]


def test_history_with_historik_scope_is_the_covered_kinds(net) -> None:
    path, ctx = net
    youth = "120308-4127"
    store(ctx, school(Dropout, youth, "791", TODAY - timedelta(days=3), reason_code="05"), plan(youth))
    add_consent(ctx, youth, "S-50", ["uddannelsesplan", "stoettebehov", "historik"], ["779008"])
    night.route(path, TODAY)
    night.send(path, ["779008"])
    doc = _sent_doc(ctx, "779008")
    assert {h["kind"] for h in doc["history"]} == {"education_plan"}


# SEED_SITUATION (Thy): a rule that names a situation refuses a consent for another one
def _rules_with_situation(tmp_path, situation="Overgang fra uddannelseshjælp til smedeuddannelse"):
    from importlib import resources

    text = resources.files("stafet.duties").joinpath("rules.yaml").read_text(encoding="utf-8")
    marker = "    scopes: {education_order: [paalaeg]}\n"
    assert text.count(marker) == 1
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace(marker, marker + f"    situation: {situation}\n"), encoding="utf-8")
    return load_rules(path)


@pytest.mark.parametrize(("situation", "status", "reason"), [
    ("Overgang fra uddannelseshjælp til smedeuddannelse", "send", ""),
    ("overgang fra  uddannelseshjælp til Smedeuddannelse", "send", ""),
    ("Omvalg til smed", "held", "samtykket gælder en anden situation («Omvalg til smed», reglen kræver "
                                "«Overgang fra uddannelseshjælp til smedeuddannelse»)"),
    ("", "held", "samtykket nævner ingen situation (reglen kræver "
                 "«Overgang fra uddannelseshjælp til smedeuddannelse»)"),
])
def test_a_rules_situation_is_enforced_on_the_consent(net, tmp_path, situation, status, reason) -> None:
    from stafet.duties.routing import package_scope

    _, ctx = net
    rules = _rules_with_situation(tmp_path)
    assert {r.id: r.situation for r in rules}["order_to_institution"] == \
        "Overgang fra uddannelseshjælp til smedeuddannelse"
    store(ctx, order("1405024913"))
    add_consent(ctx, "1405024913", "S-31", ["paalaeg"], ["779008"], situation=situation)
    with ctx.store.session() as s:
        (d,) = route(s, ctx.network, TODAY, rules)
        assert (d.rule, d.status, d.reason) == ("order_to_institution", status, reason)
        # the default table names no situation: the same consent is used, whatever its situation
        (plain,) = route(s, ctx.network, TODAY)
        assert plain.status == "send"
        # checked again at send time
        scope = package_scope(s, ctx.network, "order_to_institution", d.youth, "779008", {"education_order"},
                              "S-31", TODAY, rules)
        assert scope.usable is (status == "send") and scope.reason == reason


@pytest.mark.parametrize(("line", "problem"), [
    ("    situation: Omvalg\n", "situation is a non-empty text, on a consent rule only"),
    ("    history: [dropout, tovholdr]\n", "unknown record kind 'tovholdr' in history"),
])
def test_situation_only_on_consent_rules_and_history_kinds_are_known(tmp_path, line, problem) -> None:
    text = """rules:
  - id: r1
    kinds: [dropout]
    sender: field:institution
    recipient: guidance_of:home_municipality
    basis: duty
    legal_basis: x
""" + line
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_rules(path)


# SEED_TOVHOLDER / SEED_HISTORY (Thy): the youth's one tovholder travels with the duty's history
def test_the_tovholder_travels_in_the_history_where_the_duty_lists_it(net) -> None:
    from stafet.duties.coordinator import set_tovholder
    from stafet.duties.routing import default_rules

    path, ctx = net
    youth = "120308-4127"
    assert "tovholder" in {r.id: r for r in default_rules()}["dropout_to_uu"].history
    store(ctx, school(Dropout, youth, "791", TODAY - timedelta(days=3), reason_code="05"), plan(youth))
    add_consent(ctx, youth, "S-50", ["uddannelsesplan", "stoettebehov", "historik"], ["779008"])
    with ctx.store.session() as s:
        pseudonym = s.scalars(select(RecordRow.youth)).first()
    set_tovholder(ctx, youth=pseudonym, org="uu-viborg", name="Anna Holm", email="anna@uu.example",
                  by="anna", since=TODAY - timedelta(days=10))
    night.route(path, TODAY)
    night.send(path, ["uu-viborg", "779008"])
    duty = _sent_doc(ctx, "uu-viborg")
    (t,) = [h for h in duty["history"] if h["kind"] == "tovholder"]
    assert t == {"date": (TODAY - timedelta(days=10)).isoformat(), "kind": "tovholder", "org": "uu-viborg",
                 "summary": "Tovholder Anna Holm anna@uu.example"}
    consent_pkg = _sent_doc(ctx, "779008")     # a consent's history: only the covered kinds
    assert "tovholder" not in {h["kind"] for h in consent_pkg["history"]}
