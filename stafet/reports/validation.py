"""The data steward's validation report: one self-contained HTML page per ingest run.

One report per ``stafet ingest`` run, and one per file the nightly flow ingests
(``file-<sha256[:16]>.html``); ``stafet report ingest FILE`` rewrites a file's report
from the store, so rows released or rejected since show their current state.

What it shows: per source file the counts (read, accepted, duplicate, updated,
quarantined, rejected and why), per rule how many rows broke it, and every
quarantined row of the run with its row number, rules, masked CPR
(``DDMMYY-xxxx``) and why in its own values and the allowed list
(:mod:`stafet.reports.rule_text`) — never a clear CPR, never a raw row.

Safe to open anywhere: no scripts, no external assets (a Content-Security-Policy
forbids both), every value HTML-escaped, and a value that a spreadsheet would read
as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) is shown with a leading
``'`` so that copying it into a spreadsheet keeps it text.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stafet.core.config import private_dir, stafet_home, write_private
from stafet.core.errors import StafetError
from stafet.core.redaction import redact
from stafet.store import Store, quarantine, utcnow
from stafet.store.schema import Quarantine

if TYPE_CHECKING:  # pragma: no cover
    from stafet.ingest.pipeline import FileResult

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.rejected td{background:#fde2e2}.muted{color:#666}.ok{color:#176317}.bad{color:#a40000}
"""


def cell(value: Any) -> str:
    """One value, made inert: formula-looking text gets a leading ``'``, then HTML-escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = redact(str(value))
        if text.startswith(_FORMULA_START):
            text = "'" + text
    return html.escape(text, quote=True)


STATUS_DA = {"open": "åben", "released": "frigivet", "rejected": "afvist"}
"""A quarantined row's status, as the steward reads it (the store keeps the English code)."""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (),
           row_class: Sequence[str] | None = None) -> str:
    out = ["<table><thead><tr>", *(f"<th>{cell(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        out.append(f"<tr{cls}>")
        out.extend(f'<td class="n">{cell(v)}</td>' if j in numeric else f"<td>{cell(v)}</td>"
                   for j, v in enumerate(r))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(results: Sequence[FileResult], quarantined: Sequence[Quarantine], *,
           generated_at: datetime | None = None, docs_url: str | None = None,
           title: str = "stafet: valideringsrapport for indlæsning",
           why: Mapping[int, str] | None = None) -> str:
    """The report's HTML for ``results`` and their quarantined rows (pure: no I/O).

    ``why``: per quarantined row id, the sentence with the row's own values and the allowed
    list (:func:`stafet.reports.rule_text.explain`); the stored rule text where it is missing.
    """
    when = (generated_at or utcnow()).strftime("%Y-%m-%d %H:%M UTC")
    files = _table(
        ("fil", "kilde", "læst", "accepteret", "dubletter", "opdateret", "i karantæne", "afvist", "årsag"),
        [(r.file, r.source, r.rows, r.accepted, r.duplicates, r.updated, r.quarantined,
          "ja" if r.rejected else "nej", r.reason)
         for r in results],
        numeric=(2, 3, 4, 5, 6), row_class=["rejected" if r.rejected else "" for r in results])
    totals = Counter[str]()
    for r in results:
        totals.update(r.rules)
    rules = _table(("regel", "rækker"), sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])),
                   numeric=(1,)) if totals else '<p class="ok">Ingen række brød en regel.</p>'
    qrows = _table(("id", "fil", "række", "maskeret CPR", "regler", "hvorfor", "status"),
                   [(q.id, q.source_file, q.row, q.masked_cpr, q.rule, (why or {}).get(q.id, q.reason),
                     STATUS_DA.get(q.status, q.status))
                    for q in quarantined],
                   numeric=(0, 2)) if quarantined else '<p class="ok">Intet kom i karantæne.</p>'
    if docs_url and (docs_url.startswith(("file:", "http://", "https://")) or ":" not in docs_url):
        docs = (f'<p>Great Expectations\' Data Docs for denne kørsel (antal pr. regel, kan læses offline): '
                f'<a href="{cell(docs_url)}">{cell(docs_url)}</a></p>')
    else:
        docs = '<p class="muted">Great Expectations\' Data Docs blev ikke dannet for denne kørsel.</p>'
    n_rej = sum(1 for r in results if r.rejected)
    summary = (f"{len(results)} fil(er), {sum(r.rows for r in results)} række(r) læst, "
               f"{sum(r.quarantined for r in results)} i karantæne, {n_rej} fil(er) afvist")
    return (
        "<!DOCTYPE html>\n<html lang=\"da\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{cell(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{cell(title)}</h1><p class=\"muted\">dannet {cell(when)} — {cell(summary)}</p>"
        f"<h2>Filer</h2>{files}<h2>Brudte regler</h2>{rules}"
        f"<h2>Rækker i karantæne</h2><p class=\"muted\">Frigiv eller afvis med "
        f"<code>stafet quarantine release ID [--fix FIELD=VALUE]</code> / "
        f"<code>stafet quarantine reject ID --reason …</code>.</p>{qrows}"
        f"<h2>Great Expectations</h2>{docs}</body></html>\n")


def build_report(store: Store, results: Sequence[FileResult], *, docs_url: str | None = None,
                 generated_at: datetime | None = None) -> str:
    """The report's HTML, with the quarantined rows of ``results`` read from the store."""
    shas = [r.sha256 for r in results if r.sha256 and not r.duplicate_file]
    with store.session() as s:
        rows = quarantine.of_files(s, shas)
    return render(results, rows, docs_url=docs_url, generated_at=generated_at, why=_sentences(store, rows))


def _sentences(store: Store, rows: Sequence[Quarantine]) -> dict[int, str]:
    """Each row's rule text in its own values (decrypted here, never a CPR in the text)."""
    from stafet.ingest.quarantine import quarantined_fields
    from stafet.reports.rule_text import rule_sentence

    out = {}
    for q in rows:
        try:
            out[q.id] = rule_sentence(q.source, q.rule, quarantined_fields(store, q), q.reason)
        except (StafetError, ValueError, KeyError):  # unreadable: the stored rule text
            continue
    return out


def new_run(now: datetime | None = None) -> str:
    """A name for one ingest run: ``ingest-<UTC time>`` (the report's file name without ``.html``)."""
    return f"ingest-{(now or utcnow()):%Y%m%dT%H%M%S%f}"


def docs_dir(run: str, home: Path | None = None) -> Path:
    """Where a run's Great Expectations Data Docs go: ``$STAFET_HOME/reports/<run>/datadocs``."""
    return (home or stafet_home()) / "reports" / run / "datadocs"


def write_report(store: Store, results: Sequence[FileResult], path: Path | None = None, *,
                 docs_url: str | None = None, home: Path | None = None, run: str | None = None) -> Path:
    """Write the report (default ``$STAFET_HOME/reports/<run>.html``, run ``ingest-<UTC time>``).

    Without ``docs_url``, the report links the run's Data Docs index (built by
    ``ingest_file(..., docs_dir=docs_dir(run))``) relative to the report's folder,
    when it exists. Returns the report's path.
    """
    now = utcnow()
    if path is None:
        folder = (home or stafet_home()) / "reports"
        private_dir(folder)
        path = folder / f"{run or new_run(now)}.html"
    if docs_url is None:
        index = next((Path(r.datadocs) for r in results if r.datadocs and Path(r.datadocs).is_file()), None)
        if index is not None:
            docs_url = Path(os.path.relpath(index, path.parent)).as_posix()
    write_private(path, build_report(store, results, docs_url=docs_url, generated_at=now).encode("utf-8"))
    return path


def file_report_name(sha256: str) -> str:
    """The name of one file's report: ``file-<sha256[:8]>.<sha256[8:16]>``.

    The dot keeps a run of hex digits from looking like a CPR (never ten digits in a row,
    never six, a dash and four), so the name may go into logs and Prefect artifacts.
    """
    return f"file-{sha256[:8]}.{sha256[8:16]}"


def stored_result(sf: Any) -> FileResult:
    """A :class:`FileResult` rebuilt from a received file's row in the store (its counts)."""
    from dataclasses import fields

    from stafet.ingest.pipeline import FileResult

    names = {f.name for f in fields(FileResult)}
    counts = {k: v for k, v in (sf.counts or {}).items() if k in names and k not in ("file", "source")}
    r = FileResult(**counts, file=sf.name, source=sf.source)
    r.sha256, r.duplicate_file = sf.sha256, False
    if sf.status == "rejected":
        r.rejected, r.reason = True, sf.reason or r.reason
    return r


def write_file_report(store: Store, result: FileResult, *, home: Path | None = None,
                      now: datetime | None = None) -> Path:
    """Write the report of one ingested file, ``$STAFET_HOME/reports/file-<sha256[:16]>.html``.

    It links the file's Data Docs page (in the folder of the ``datadocs`` index the result
    names, which the store keeps with the file's counts) when it exists.
    """
    from stafet.ingest.docs import page_name

    folder = private_dir((home or stafet_home()) / "reports")
    path = folder / f"{file_report_name(result.sha256)}.html"
    docs_url = None
    if result.datadocs:  # the file's own page in its run's Data Docs, else the run's index
        index = Path(result.datadocs)
        page = next((p for p in (index.parent / page_name(result.file), index) if p.is_file()), None)
        docs_url = Path(os.path.relpath(page, folder)).as_posix() if page else None
    html_text = build_report(store, [result], docs_url=docs_url, generated_at=now or utcnow())
    write_private(path, html_text.encode("utf-8"))
    return path


def regenerate(store: Store, key: str, *, home: Path | None = None) -> list[Path]:
    """Rewrite the reports of the received files ``key`` names (sha256, a prefix, or file name).

    The rows' states are read from the store now: a row released or rejected since the
    ingest shows as such. Raises ``StafetError`` when no file matches.
    """
    from stafet.core.errors import StafetError
    from stafet.store import files

    with store.session() as s:
        found = files.find(s, key)
        results = [stored_result(sf) for sf in found]
    if not results:
        raise StafetError("no ingested file has this sha256 or name (file names: `stafet quarantine list`, "
                          "the nightly report's list of files)", file=redact(key)[:120])
    return [write_file_report(store, r, home=home) for r in results]
