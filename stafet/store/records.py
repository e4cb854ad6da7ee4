"""Canonical records of our own sources: read by id, by youth and by kind.

Writing records (upsert by natural key) is :meth:`stafet.store.db.Store.upsert_records`.
Records received in packages are not here: :mod:`stafet.store.imported`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store.schema import RecordRow, Youth


def by_ids(s: Session, ids: Sequence[int]) -> list[RecordRow]:
    """The records with these ids, by id."""
    return list(s.scalars(select(RecordRow).where(RecordRow.id.in_(ids)).order_by(RecordRow.id)))


def live_of_kinds(s: Session, youth: str, kinds: Iterable[str]) -> list[RecordRow]:
    """A youth's records of ``kinds`` that are not withdrawn (the course a handover shows).

    In the record key's order (kind, natural key): the order the key's index gives.
    """
    return list(s.scalars(select(RecordRow).where(RecordRow.youth == youth, RecordRow.kind.in_(set(kinds)),
                                                  RecordRow.withdrawn.is_(False))
                          .order_by(RecordRow.kind, RecordRow.natural_key)))


def live_of_kinds_of(s: Session, youths: Collection[str], kinds: Iterable[str]) -> dict[str, list[RecordRow]]:
    """:func:`live_of_kinds` of many youths in one query: each youth's list as that function gives it.

    Youths with no such record are not in the result.
    """
    out: dict[str, list[RecordRow]] = {}
    wanted = set(kinds)
    if not youths or not wanted:
        return out
    for r in s.scalars(select(RecordRow).where(RecordRow.youth.in_(list(youths)), RecordRow.kind.in_(wanted),
                                               RecordRow.withdrawn.is_(False))
                       .order_by(RecordRow.youth, RecordRow.kind, RecordRow.natural_key)):
        out.setdefault(r.youth, []).append(r)
    return out


def of_youth(s: Session, youth: str) -> list[RecordRow]:
    """Every record about one youth (withdrawn ones too)."""
    return list(s.scalars(select(RecordRow).where(RecordRow.youth == youth)))


def routable(s: Session, kinds: Sequence[str]) -> list[Any]:
    """Live records of ``kinds`` from our own sources (not withdrawn), by id.

    Each row: ``(id, kind, youth, payload, origin_municipality, birth_date)`` — what routing
    reads (the municipality the record's file came from, by its provenance).
    """
    return list(s.execute(
        select(RecordRow.id, RecordRow.kind, RecordRow.youth, RecordRow.payload,
               RecordRow.origin_municipality, Youth.birth_date)
        .join(Youth, Youth.pseudonym == RecordRow.youth)
        .where(RecordRow.kind.in_(list(kinds)), RecordRow.withdrawn.is_(False))
        .order_by(RecordRow.id)).all())


def job_centre_links(s: Session) -> dict[str, dict[str, Any]]:
    """What ties each youth to a job centre: ``{"order_municipality": str | None, "interview": bool}``.

    ``order_municipality`` is the municipality of the export that holds the youth's active
    education order (the latest status of an order is ``AKTIV``), None when there is none.
    """
    latest: dict[tuple[str, str], tuple[str, str, str]] = {}
    rows = s.execute(select(RecordRow.youth, RecordRow.payload, RecordRow.origin_municipality)
                     .where(RecordRow.kind == "education_order", RecordRow.withdrawn.is_(False))
                     .order_by(RecordRow.id))
    for youth, p, muni in rows:
        key = (youth, str(p.get("order_id", "")))
        day = str(p.get("status_date", ""))
        if key not in latest or day >= latest[key][0]:
            latest[key] = (day, str(p.get("status", "")), muni or "")
    out: dict[str, dict[str, Any]] = {}
    for (youth, _), (_, status, muni) in latest.items():
        link = out.setdefault(youth, {"order_municipality": None, "interview": False})
        if status == "AKTIV":
            link["order_municipality"] = muni
    for (youth,) in s.execute(select(RecordRow.youth).where(RecordRow.kind == "interview",
                                                             RecordRow.withdrawn.is_(False)).distinct()):
        out.setdefault(youth, {"order_municipality": None, "interview": False})["interview"] = True
    return out


def live_facts(s: Session, kinds: Sequence[str]) -> Iterator[Any]:
    """Records of ``kinds`` not withdrawn, by id: ``(id, kind, youth, payload, origin_municipality)``."""
    return iter(s.execute(select(RecordRow.id, RecordRow.kind, RecordRow.youth, RecordRow.payload,
                                 RecordRow.origin_municipality)
                          .where(RecordRow.kind.in_(kinds), RecordRow.withdrawn.is_(False))
                          .order_by(RecordRow.id)))


def live_facts_of(s: Session, kinds: Sequence[str], youths: Sequence[str]) -> Iterator[Any]:
    """:func:`live_facts` of the named youths only (by the record key's index, which leads with the youth)."""
    if not youths:
        return iter(())
    return iter(s.execute(select(RecordRow.id, RecordRow.kind, RecordRow.youth, RecordRow.payload,
                                 RecordRow.origin_municipality)
                          .where(RecordRow.youth.in_(list(youths)), RecordRow.kind.in_(kinds),
                                 RecordRow.withdrawn.is_(False))
                          .order_by(RecordRow.id)))


def concern_flags(s: Session) -> Iterator[Any]:
    """Every concern flag: ``(youth, payload)``."""
    return iter(s.execute(select(RecordRow.youth, RecordRow.payload).where(RecordRow.kind == "concern_flag")))


def own_dropouts(s: Session) -> Iterator[Any]:
    """Dropouts from our own sources: ``(id, youth, payload)``."""
    return iter(s.execute(select(RecordRow.id, RecordRow.youth, RecordRow.payload)
                          .where(RecordRow.kind == "dropout")))
