"""The typed documents write the JSON stafet has always written, byte for byte, and read it back.

The golden texts below are what the dict-based exchange put into packages (keys in its
order, ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` as the package
writes them): a package sent before the typed documents opens the same, and one sent
after is the same bytes.
"""

from __future__ import annotations

import json

import pytest

from stafet.packages.document import (
    DocumentRecord,
    HandoverDocument,
    HistoryEntry,
    Omission,
    ReceiptDocument,
    RecordSource,
    WithdrawalDocument,
    YouthInfo,
    document_from_json,
)

CPR = "120308-4127"  # synthetic (the test network's youth)
HANDOVER = (
    '{"type":"handover","package_id":"PKG-0123456789abcdef01234567","sender":"779008",'
    '"recipient":"uu-viborg","created":"2026-11-21T02:00:00.123456+00:00","rule":"consent_handover",'
    '"legal_basis":"samtykke","consent_ref":"SAMT-1",'
    f'"youth":{{"cpr":"{CPR}","name":"Testa Ungesen","birth_date":"2008-03-12"}},'
    '"records":[{"kind":"dropout","natural_key":"779008|dropout|2026-11-20|1234","data":{"institution":"779008",'
    '"event_date":"2026-11-20","reason_code":"A1","reason_text":"Skiftet retning — ø"},'
    '"source":{"system":"easya","file":"easya_779008_791_20261120.csv","row":7}}],'
    '"history":[{"date":"2025-08-11","kind":"enrolment","org":"779008","summary":"Optagelse EUX Business"}],'
    '"omitted":[{"kind":"stoettebehov","reason":"samtykke dækker ikke støttebehov"}]}')
NAMELESS = HANDOVER.replace('"name":"Testa Ungesen",', "")
RECEIPT = ('{"type":"receipt","package_id":"PKG-1","sender":"uu-viborg","recipient":"779008",'
           '"created":"2026-11-21T02:01:00+00:00","receipt":{"package_id":"PKG-0","digest":"' + "a" * 64 +
           '","disposition":"imported","at":"2026-11-21T02:01:00+00:00"}}')
WITHDRAWAL = ('{"type":"withdrawal","package_id":"PKG-2","sender":"779008","recipient":"uu-viborg",'
              '"created":"2026-11-22T02:00:00+00:00","withdrawal":{"consent_ref":"SAMT-1",'
              '"package_ids":["PKG-0","PKG-3"],"instruction":"Slet de modtagne oplysninger"}}')


def wire(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("text", [HANDOVER, NAMELESS, RECEIPT, WITHDRAWAL],
                         ids=["handover", "handover-nameless", "receipt", "withdrawal"])
def test_json_round_trips_byte_for_byte(text: str) -> None:
    assert wire(document_from_json(json.loads(text)).to_json()) == text


def test_a_handover_built_by_hand_is_the_golden_text() -> None:
    doc = HandoverDocument(
        package_id="PKG-0123456789abcdef01234567", sender="779008", recipient="uu-viborg",
        created="2026-11-21T02:00:00.123456+00:00", rule="consent_handover", legal_basis="samtykke",
        consent_ref="SAMT-1", youth=YouthInfo(CPR, "Testa Ungesen", "2008-03-12"),
        records=(DocumentRecord("dropout", "779008|dropout|2026-11-20|1234", {
            "institution": "779008", "event_date": "2026-11-20", "reason_code": "A1",
            "reason_text": "Skiftet retning — ø"},
            RecordSource("easya", "easya_779008_791_20261120.csv", 7)),),
        history=(HistoryEntry("2025-08-11", "enrolment", "Optagelse EUX Business", "779008"),),
        omitted=(Omission("stoettebehov", "samtykke dækker ikke støttebehov"),))
    assert wire(doc.to_json()) == HANDOVER
    assert isinstance(document_from_json(json.loads(HANDOVER)), HandoverDocument)


def test_the_types_say_what_they_are() -> None:
    assert isinstance(document_from_json(json.loads(RECEIPT)), ReceiptDocument)
    notice = document_from_json(json.loads(WITHDRAWAL))
    assert isinstance(notice, WithdrawalDocument) and notice.package_ids == ("PKG-0", "PKG-3")


def test_a_foreign_handover_without_the_optional_parts_reads() -> None:
    """What another tool may send: no consent_ref, name, birth date, source, history or omitted."""
    doc = document_from_json({"type": "handover", "package_id": "PKG-X1234567", "sender": "779008",
                              "recipient": "uu-viborg", "created": "2026-11-21T02:00:00Z", "rule": "r",
                              "legal_basis": "b", "youth": {"cpr": CPR},
                              "records": [{"kind": "dropout", "natural_key": "k", "data": {}}]})
    assert isinstance(doc, HandoverDocument)
    assert (doc.consent_ref, doc.youth.name, doc.history, doc.omitted) == ("", "", (), ())
    assert doc.records[0].source is None and doc.records[0].source_system is None


def test_no_cpr_in_a_repr() -> None:
    doc = document_from_json(json.loads(HANDOVER))
    assert "4127" not in repr(doc) and "0308" not in repr(doc)


def test_a_package_opens_to_the_document_it_was_built_from(net) -> None:
    doc = document_from_json(net.handover_doc())
    opened = net.open(net.build(doc).eml)
    assert opened.document == doc
    assert opened.doc == {"schema": "stafet/1", **doc.to_json()}
