"""The contract every registered source keeps, tested over ``all_sources()``: a new source module
gets these tests for free.

Its sample export parses and maps; its columns are declared once and each is mapped or checked;
its file-name pattern names who sent the file; the hostile corpus is refused cleanly; its Great
Expectations suite builds and runs; an XML source ships its XSD; a CPR typed into its free text
is redacted.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path

import pytest
from ingest_fixtures import NOW, network, sample_of

from connectors.readers import XSD_DIR, CsvReader, XmlReader, load_schema
from mappings import ORIGIN_GROUPS, Source, all_sources
from mappings.common import free_text, header
from stafet.core.errors import FileRejected, StafetError
from stafet.core.models import RECORD_TYPES
from stafet.ingest import gx
from stafet.ingest.pipeline import known_institutions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
import hostile  # isort: skip

SOURCES = sorted(all_sources().values(), key=lambda s: s.name)
each_source = pytest.mark.parametrize("src", SOURCES, ids=lambda s: s.name)


def _sample(src: Source) -> Path:
    path = sample_of(src)
    assert path is not None, f"{src.name}: no sample export named like {src.pattern}"
    return path


def test_there_are_sources() -> None:
    assert len(SOURCES) >= 6


@each_source
def test_its_sample_parses_and_maps_to_its_kinds(src: Source) -> None:
    path = _sample(src)
    rows = list(src.reader(path))
    assert rows and not [r.number for r in rows if r.problem]
    for r in rows:
        rec = src.map_row(r.fields, src.provenance(path.name, r.number, NOW))
        assert rec.kind in src.kinds
        assert rec.provenance is not None and rec.provenance.source == src.name


@each_source
def test_its_reader_has_the_sources_one_name(src: Source) -> None:
    # one name per source system: the source, its reader (in messages) and its module
    assert src.reader.name == src.name
    assert importlib.import_module("mappings." + src.name.replace("-", "_")).SOURCE is src


@each_source
def test_its_kinds_are_registered_record_kinds(src: Source) -> None:
    assert src.kinds and set(src.kinds) <= set(RECORD_TYPES)


@each_source
def test_its_file_name_pattern_names_who_sent_the_file(src: Source) -> None:
    groups = set(re.compile(src.pattern).groupindex)
    assert groups and groups <= set(ORIGIN_GROUPS), groups
    origin = src.origin(_sample(src).name)
    assert all(getattr(origin, g) for g in groups), origin
    prov = src.provenance(_sample(src).name, 2, NOW)
    assert (prov.institution, prov.municipality) == tuple(origin)


@each_source
def test_every_declared_column_is_mapped_or_checked(src: Source) -> None:
    names = [c.name for c in src.declared]
    assert len(names) == len(set(names)), "a column is declared twice"
    assert not [c.name for c in src.declared if not c.field and not c.checked]
    models = [RECORD_TYPES[k] for k in src.kinds]
    fields = {f.name for m in models for f in dataclasses.fields(m)} | {"kind"}
    assert not [c.name for c in src.declared if c.field and c.field not in fields]
    # every field a record of the source's kinds must have is mapped from a declared column
    declared_fields = {c.field for c in src.declared}
    for m in models:
        needed = {f.name for f in dataclasses.fields(m) if f.default is dataclasses.MISSING
                  and f.default_factory is dataclasses.MISSING and f.name != "provenance"}
        assert needed <= declared_fields, (m.__name__, needed - declared_fields)
    assert src.cpr_column in src.columns
    assert set(src.columns) <= set(names)
    if isinstance(src.reader, CsvReader):
        assert src.reader.columns == header(src.declared)  # the header check reads the declaration


@each_source
def test_the_hostile_corpus_is_refused_cleanly(src: Source, tmp_path: Path) -> None:
    cases = [c for c in hostile.cases() if c.source == src.name]
    assert len(cases) >= 15
    for case in cases:
        path = tmp_path / _sample(src).name
        path.write_bytes(case.data)
        try:
            outcome = sum(1 for _ in src.reader(path))
        except StafetError as e:
            assert case.expect != "rows", f"{case.id}: {e}"
            assert str(e).strip() and "Traceback" not in str(e)
            if case.expect == "reject":
                assert isinstance(e, FileRejected) and (not case.rule or e.rule == case.rule), case.id
            continue
        assert case.expect != "reject", f"{case.id} was read as {outcome} rows"


@each_source
def test_its_gx_suite_builds_and_runs_on_its_sample(src: Source) -> None:
    suite = gx.build_suite(f"contract.{src.name}", src.checks)
    assert len(suite.expectations) == len(src.checks) > 0
    assert {e.meta["rule"] for e in suite.expectations} == {c.rule for c in src.checks}
    rows = [r.fields for r in src.reader(_sample(src))]
    failures = gx.validate(src, rows, today=NOW.date(), institutions=known_institutions(network()))
    assert set(failures) <= set(range(len(rows)))


@each_source
def test_an_xml_source_ships_its_xsd(src: Source) -> None:
    if not isinstance(src.reader, XmlReader):
        assert isinstance(src.reader, CsvReader)
        return
    assert (XSD_DIR / src.reader.xsd).is_file()
    assert load_schema(XSD_DIR / src.reader.xsd) is not None


SIBLING = "0202094012"  # synthetic: a sibling's CPR typed into a note


@each_source
def test_a_cpr_typed_into_its_free_text_columns_is_redacted(src: Source) -> None:
    free = [c.name for c in src.declared if c.conv is free_text]
    path = _sample(src)
    row = next(iter(src.reader(path))).fields
    rec = src.map_row({**row, **{c: f"ring {SIBLING[:6]}-{SIBLING[6:]} i dag" for c in free}},
                      src.provenance(path.name, 2, NOW))
    text = repr({f.name: getattr(rec, f.name) for f in dataclasses.fields(rec) if f.name != "cpr"})
    assert SIBLING[:6] + "-" not in text
    assert text.count("******-****") >= len(free)
