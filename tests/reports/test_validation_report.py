"""The steward's report: counts, masked CPRs, and every value inert."""

from __future__ import annotations

from pathlib import Path

from ingest_fixtures import NOW, easya_row, network, open_store, write_easya

from stafet.ingest.pipeline import FileResult, ingest_file
from stafet.reports.validation import cell, render, write_report


def test_cell_escapes_and_defuses_formulas() -> None:
    assert cell("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert cell("=cmd|' /C calc'!A0") == "&#x27;=cmd|&#x27; /C calc&#x27;!A0"
    assert cell("+1") == "&#x27;+1" and cell(-3) == "-3" and cell(True) == "yes"
    assert cell("120308-4127") == "******-****"


def test_report_from_an_ingest(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    path = write_easya(tmp_path / "779008_haendelser_2026112108.csv", [
        easya_row(), easya_row(cpr="311308-4127", note='"<script>x</script>"'),
        easya_row(reason="=cmd|' /C calc'!A0", text="<img src=x onerror=alert(1)>")])
    r = ingest_file(store, network(), path, now=NOW, home=tmp_path)
    out = write_report(store, [r], home=tmp_path, docs_url="javascript:alert(1)")
    html = out.read_text()
    assert out.parent == tmp_path / "reports"
    assert "<script" not in html.lower() and "javascript:" not in html and "<img" not in html
    assert "311308-xxxx" in html and "4127" not in html
    assert "cpr_birth_date" in html and "dropout_reason" in html
    assert "http://" not in html and "https://" not in html          # no CDN, nothing remote
    assert "default-src 'none'" in html


def test_render_rejected_file_and_docs_link() -> None:
    r = FileResult(file="<b>x.csv", source="easy-a", rejected=True, reason="header: missing columns: Note")
    html = render([r], [], docs_url="file:///tmp/docs/index.html")
    assert "&lt;b&gt;x.csv" in html and 'class="rejected"' in html
    assert 'href="file:///tmp/docs/index.html"' in html and "Intet kom i karantæne" in html


def test_data_docs_of_a_run_are_linked_and_hold_no_cpr(tmp_path: Path) -> None:
    """GX's Data Docs are built per run, linked relatively, and no bad CPR reaches any of their files."""
    import re

    from stafet.reports.validation import docs_dir, new_run

    store = open_store(tmp_path)
    # Bad CPRs in the CPR field (impossible date, wrong shape) and CPR-shaped values in other
    # validated columns (reason code, institution, municipality): all break a rule.
    bad = ["3113084127", "311308-4127", "0113089876", "2902075544"]
    path = write_easya(tmp_path / "779008_haendelser_2026112108.csv", [
        easya_row(),
        easya_row(cpr="311308-4127"),
        easya_row(cpr="311308 4127"),
        easya_row(cpr="3113084127x"),
        easya_row(reason="0113089876"),
        easya_row(inst="0113089876"),
        easya_row(cpr="290207-5544", date="32-11-2026"),
        easya_row(absence="2902075544"),
    ])
    run = new_run()
    r = ingest_file(store, network(), path, now=NOW, home=tmp_path, docs_dir=docs_dir(run, tmp_path))
    assert r.quarantined == 7 and r.datadocs
    out = write_report(store, [r], home=tmp_path, run=run)
    assert out == tmp_path / "reports" / f"{run}.html"
    link = re.search(r'href="([^"]+)"', out.read_text())
    assert link is not None and link.group(1) == f"{run}/datadocs/index.html"
    index = out.parent / link.group(1)
    assert index.is_file() and "779008_haendelser_2026112108" in index.read_text()
    files = [p for p in index.parent.rglob("*") if p.is_file()]
    pages = [p for p in files if p.suffix == ".html"]
    assert len(pages) >= 3  # index, the suite, the file's validation page
    assert any("dropout_reason" in p.read_text() or "Afbrudsaarsag" in p.read_text() for p in pages)
    forms = [form for c in bad for form in (c, f"{c[:6]}-{c[6:]}", f"{c[:6]} {c[6:]}")]
    hits = [(p.name, f) for p in files for f in forms if f.encode() in p.read_bytes()]
    assert hits == []
