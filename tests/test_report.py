"""The steward's report: counts, masked CPRs, and every value inert."""

from __future__ import annotations

from pathlib import Path

from ingest_fixtures import NOW, easya_row, network, open_store, write_easya

from stafet.ingest import FileResult, ingest_file
from stafet.report import cell, render, write_report


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
    assert 'href="file:///tmp/docs/index.html"' in html and "Nothing was quarantined" in html
