"""Data Docs: Great Expectations' own pages for a run, built from counts only.

What goes into a page is a :class:`DocsTally`: per file and expectation, the
expectation's configuration and its element, unexpected and missing counts, never a
value from a source file.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stafet.ingest.gx import _gx_context, _lock

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


def _summary_result(tally: dict[str, Any], file: str, run: Any) -> Any:
    """A GX suite validation result for a whole file, built from a :class:`DocsTally` entry."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult

    results = []
    for cfg, c in zip(tally["configs"], tally["counts"], strict=True):
        n, bad, missing = c["element_count"], c["unexpected_count"], c["missing_count"]
        present = n - missing
        results.append(ExpectationValidationResult(success=bad == 0, expectation_config=cfg, result={
            "element_count": n, "unexpected_count": bad, "missing_count": missing,
            "missing_percent": 100 * missing / n if n else None,
            "unexpected_percent": 100 * bad / present if present else None,
            "unexpected_percent_total": 100 * bad / n if n else None,
            "unexpected_percent_nonmissing": 100 * bad / present if present else None}))
    ok = sum(1 for r in results if r.success)
    return ExpectationSuiteValidationResult(
        success=ok == len(results), results=results, suite_name=f"stafet.{tally['source']}",
        statistics={"evaluated_expectations": len(results), "successful_expectations": ok,
                    "unsuccessful_expectations": len(results) - ok,
                    "success_percent": 100 * ok / len(results) if results else None},
        meta={"run_id": run, "active_batch_definition": {
            "datasource_name": f"src_{tally['source']}", "data_connector_name": "fluent",
            "data_asset_name": "rows", "batch_identifiers": {"file": _safe_name(file)}},
              "batch_spec": {"source": tally["source"], "file": _safe_name(file)}})


_docs_keys: dict[str, list[Any]] = {}  # run folder → its results' keys in the context's store


def build_docs(tally: dict[str, Any] | None, file: str, folder: Path, run_name: str,
               run_time: Any) -> Path | None:
    """Render the Data Docs page of one file (and the site's index) into ``folder`` with GX's SiteBuilder.

    Files of the same run share ``folder``: the index lists them all. Returns the
    index page, or None when nothing of ``file`` was validated.
    """
    if not tally or not tally["counts"]:
        return None
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    ctx = _gx_context()
    run = RunIdentifier(run_name=run_name, run_time=run_time)
    key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=f"stafet.{tally['source']}"), run,
                                     _safe_name(file))
    store = ctx.validation_results_store
    with _lock:
        for other in [k for k in _docs_keys if k != str(folder)]:  # an earlier run: forget its results
            for old in _docs_keys.pop(other):
                with contextlib.suppress(Exception):
                    store.remove_key(old)
        _docs_keys.setdefault(str(folder), []).append(key)
        store.set(key, _summary_result(tally, file, run))
        site = f"run_{os.getpid()}"
        ctx.add_data_docs_site(site, {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        try:
            ctx.build_data_docs(site_names=[site])
        finally:
            ctx.delete_data_docs_site(site)
    index = folder / "index.html"
    return index if index.is_file() else None

