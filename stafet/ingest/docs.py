"""Data Docs: the pages of a run's Great Expectations validation, built from counts only.

What goes into a page is a :class:`DocsTally`: per file and expectation, the
expectation's configuration and its element, unexpected and missing counts, never a
value from a source file.

The pages are stafet's own offline rendering of what GX's Data Docs show (the site's
index, a page per expectation suite, a page per validated file): GX's SiteBuilder pages
load Bootstrap, jQuery, Font Awesome and Vega from CDNs and render unstyled without
the internet, and a steward's machine may have none. Every style is inline, a
Content-Security-Policy forbids anything loaded, every value is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stafet.core.config import private_dir, write_private

_COUNT_KEYS = ("element_count", "unexpected_count", "missing_count")


@dataclass
class DocsTally:
    """Per-file, per-expectation counts of validated chunks: all that goes into Data Docs.

    GX's results name failed values and rows (and a value may be a CPR typed into the
    wrong field); the tally keeps only each expectation's configuration (rule names,
    column names, value sets from the suite) and its element, unexpected and missing
    counts, so the pages rendered from it cannot carry a value from a source file.
    """

    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file → tally
    current: str = ""

    def start(self, file: str) -> None:
        """Count the following chunks for ``file``."""
        self.current = file

    def add(self, source: str, result: Any) -> None:
        """Add one chunk's ``ExpectationSuiteValidationResult``."""
        t = self.files.setdefault(self.current, {"source": source, "configs": [], "counts": []})
        for i, r in enumerate(result.results):
            if i == len(t["counts"]):
                t["configs"].append(r.expectation_config)
                t["counts"].append(dict.fromkeys(_COUNT_KEYS, 0))
            counts, res = t["counts"][i], r.result or {}
            for k in _COUNT_KEYS:
                counts[k] += int(res.get(k) or 0)

    def pop(self, file: str) -> dict[str, Any] | None:
        """The tally of ``file``, forgotten here."""
        return self.files.pop(file, None)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120] or "file"


def page_name(file: str) -> str:
    """The name of ``file``'s page in its run's Data Docs folder."""
    return f"{_safe_name(file)}.html"


_CSS = ("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1b1b1b;"
        "background:#fafafa}header{background:#ff6310;color:#fff;padding:.8rem 2rem}"
        "header a{color:#fff}main{padding:1rem 2rem}h1{font-size:1.4rem;margin:.2rem 0}"
        "h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse;background:#fff;"
        "font-size:.9rem;margin:.5rem 0}th,td{border:1px solid #d0d0d0;padding:.3rem .6rem;text-align:left;"
        "vertical-align:top}th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        ".ok{color:#176317;font-weight:600}.bad{color:#a40000;font-weight:600}code{font-size:.85em}"
        ".muted{color:#666}")
_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _page(title: str, body: str, up: str = "") -> str:
    nav = f' — <a href="{_e(up)}">alle filer</a>' if up else ""
    return (f"<!DOCTYPE html>\n<html lang=\"da\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><span>stafet · Great Expectations Data Docs{nav}</span></header>"
            f"<main>{body}</main></body></html>\n")


def _table(headers: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _expectations(tally: dict[str, Any]) -> list[dict[str, Any]]:
    """Each expectation of the tally as plain data: its rule, type, kwargs and counts."""
    out = []
    for cfg, c in zip(tally["configs"], tally["counts"], strict=True):
        meta = dict(getattr(cfg, "meta", None) or {})
        kwargs = {k: v for k, v in dict(getattr(cfg, "kwargs", None) or {}).items()
                  if k not in ("result_format", "catch_exceptions", "include_config")}
        n, bad, missing = c["element_count"], c["unexpected_count"], c["missing_count"]
        out.append({"rule": str(meta.get("rule", "")), "description": str(meta.get("description", "")),
                    "type": str(getattr(cfg, "type", "")), "kwargs": kwargs, "element_count": n,
                    "unexpected_count": bad, "missing_count": missing, "success": bad == 0})
    return out


def _kwargs(kwargs: dict[str, Any]) -> str:
    return "<br>".join(f"<code>{_e(k)}</code>: {_e(json.dumps(v, ensure_ascii=False, default=str))}"
                       for k, v in kwargs.items())


def _file_page(file: str, source: str, run_name: str, run_time: Any, exps: list[dict[str, Any]]) -> str:
    ok = sum(1 for x in exps if x["success"])
    rows = [[f'<span class="{"ok" if x["success"] else "bad"}">{"bestået" if x["success"] else "fejlet"}'
             "</span>", _e(x["rule"]), _e(x["description"]), f"<code>{_e(x['type'])}</code>",
             _kwargs(x["kwargs"]), _e(x["element_count"]), _e(x["missing_count"]), _e(x["unexpected_count"])]
            for x in exps]
    pct = f"{100 * ok / len(exps):.0f} %" if exps else "–"
    body = (f"<p>Kilde <code>{_e(source)}</code>, suite <a href=\"suite-{_e(_safe_name(source))}.html\">"
            f"stafet.{_e(source)}</a>, kørsel {_e(run_name)} ({_e(run_time)}).</p>"
            f"<p>{ok} af {len(exps)} forventninger bestået ({pct}). Tallene er rækker; ingen værdi fra "
            "filen vises her.</p>"
            + _table(["resultat", "regel", "beskrivelse", "forventning", "parametre", "rækker", "mangler",
                      "uventede"], rows, numeric=(5, 6, 7)))
    return _page(f"Validering: {file}", body, up="index.html")


def _suite_page(source: str, exps: list[dict[str, Any]]) -> str:
    rows = [[_e(x["rule"]), _e(x["description"]), f"<code>{_e(x['type'])}</code>", _kwargs(x["kwargs"])]
            for x in exps]
    return _page(f"Suite stafet.{source}", _table(["regel", "beskrivelse", "forventning", "parametre"], rows),
                 up="index.html")


def _index(folder: Path) -> str:
    rows = []
    for meta_file in sorted(folder.glob("*.summary.json")):
        m = json.loads(meta_file.read_text(encoding="utf-8"))
        state = ('<span class="ok">bestået</span>' if m["failed"] == 0
                 else f'<span class="bad">{m["failed"]} fejlet</span>')
        rows.append([f'<a href="{_e(m["page"])}">{_e(m["file"])}</a>',
                     f'<a href="suite-{_e(_safe_name(m["source"]))}.html">stafet.{_e(m["source"])}</a>',
                     _e(m["run_time"]), _e(m["expectations"]), state])
    return _page("Data Docs", _table(["fil", "suite", "kørt", "forventninger", "resultat"], rows))


def build_docs(tally: dict[str, Any] | None, file: str, folder: Path, run_name: str,
               run_time: Any) -> Path | None:
    """Render the Data Docs page of one file (its suite's page and the site's index) into ``folder``.

    Files of the same run share ``folder``: the index lists them all. Returns the
    index page, or None when nothing of ``file`` was validated. Every file is 0600.
    """
    if not tally or not tally["counts"]:
        return None
    private_dir(folder)
    exps = _expectations(tally)
    source, name = str(tally["source"]), _safe_name(file)
    page = page_name(file)
    write_private(folder / page, _file_page(file, source, run_name, run_time, exps).encode("utf-8"))
    write_private(folder / f"suite-{_safe_name(source)}.html", _suite_page(source, exps).encode("utf-8"))
    summary = {"file": file, "source": source, "page": page, "run_time": str(run_time),
               "expectations": len(exps), "failed": sum(1 for x in exps if not x["success"])}
    write_private(folder / f"{name}.summary.json", json.dumps(summary).encode("utf-8"))
    index = folder / "index.html"
    write_private(index, _index(folder).encode("utf-8"))
    return index
