"""Data Docs render styled with no network: nothing they reference is fetched from http(s)."""

from __future__ import annotations

import re
from pathlib import Path

from ingest_fixtures import NOW, easya_row, network, open_store, write_easya

from stafet.ingest.pipeline import ingest_file
from stafet.reports.validation import docs_dir, new_run

_REMOTE = re.compile(r"""(?:href|src)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
                     re.IGNORECASE)


def _docs(tmp_path: Path) -> list[Path]:
    store = open_store(tmp_path)
    path = write_easya(tmp_path / "779008_haendelser_2026112108.csv",
                       [easya_row(), easya_row(cpr="311308-4127"), easya_row(reason="77")])
    r = ingest_file(store, network(), path, now=NOW, home=tmp_path, docs_dir=docs_dir(new_run(), tmp_path))
    assert r.quarantined == 2 and r.datadocs
    return sorted(Path(r.datadocs).parent.glob("*.html"))


def test_every_page_is_styled_inline_and_loads_nothing(tmp_path: Path) -> None:
    pages = _docs(tmp_path)
    assert {p.name for p in pages} == {"index.html", "suite-easy-a.html",
                                       "779008_haendelser_2026112108.csv.html"}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<style>" in text and "border-collapse" in text, page.name          # styled
        assert "default-src 'none'" in text, page.name                             # CSP: nothing loads
        assert not re.search(r"https?://", text), page.name                       # no URL at all
        assert not _REMOTE.search(text), page.name
        assert "<script" not in text.lower() and "<link" not in text.lower(), page.name


def test_the_pages_show_the_rules_and_counts_of_the_file(tmp_path: Path) -> None:
    pages = {p.name: p.read_text(encoding="utf-8") for p in _docs(tmp_path)}
    index = pages["index.html"]
    assert 'href="779008_haendelser_2026112108.csv.html"' in index and "fejlet" in index
    page = pages["779008_haendelser_2026112108.csv.html"]
    # the failed rules, with rows checked and unexpected; the CPR's value never appears
    row = next(r.split("</tr>")[0] for r in page.split("<tr>") if "<td>dropout_reason</td>" in r)
    assert row.endswith('<td class="n">3</td><td class="n">0</td><td class="n">1</td>'), row
    assert 'class="bad"' in row
    assert "311308" not in "".join(pages.values())


def test_the_remote_pattern_catches_cdn_references() -> None:
    assert _REMOTE.search('<link rel="stylesheet" href="https://cdn.example/bootstrap.css">')
    assert _REMOTE.search("<script src=//code.jquery.com/jquery.js></script>")
    assert _REMOTE.search("body{background:url('http://x/y.png')}")
    assert not _REMOTE.search('<a href="index.html">')
