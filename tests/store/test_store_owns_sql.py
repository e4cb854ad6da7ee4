"""Only the store speaks SQL: nothing outside ``stafet/store`` imports SQLAlchemy or builds a query.

Scans the source tree (migrations aside: they are the store's too) with :mod:`ast`, so
an import inside a function or a ``TYPE_CHECKING`` block counts, and a word in a string
or comment does not.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("stafet", "connectors", "mappings", "transports", "keys", "flows")
STORE = ROOT / "stafet" / "store"
# Calls that build SQL statements (SQLAlchemy's constructors) — on any name, since an
# import alias would hide them otherwise.
BUILDERS = {"select", "insert", "update", "delete", "or_", "and_"}
# A session's ways of running a statement.
SESSION_CALLS = {"query", "execute", "scalars", "scalar", "exec_driver_sql"}


def offenders(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES, store: Path = STORE) -> list[str]:
    """``path:line: what`` for every SQLAlchemy import or statement builder outside the store."""
    out: list[tuple[str, int, int, str]] = []
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            if path.is_relative_to(store) or "migrations" in path.parts:
                continue
            rel = str(path.relative_to(root))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                what = ""
                if isinstance(node, ast.Import):
                    what = ", ".join(f"import {a.name}" for a in node.names
                                     if a.name.split(".")[0] == "sqlalchemy")
                elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
                    what = f"from {node.module} import …"
                elif isinstance(node, ast.Call):
                    f = node.func
                    if isinstance(f, ast.Name) and f.id in BUILDERS:
                        what = f"{f.id}(…)"
                    elif isinstance(f, ast.Attribute) and getattr(f.value, "id", "") == "func":
                        what = f"func.{f.attr}(…)"
                    elif isinstance(f, ast.Attribute) and f.attr in SESSION_CALLS:
                        what = f".{f.attr}(…)"
                if what:
                    out.append((rel, node.lineno, node.col_offset, what))
    return [f"{rel}:{line}: {what}" for rel, line, _, what in sorted(out)]


def test_nothing_outside_the_store_speaks_sql() -> None:
    found = offenders()
    assert not found, "SQL outside stafet/store (move it into a query module there):\n" + "\n".join(found)


def test_the_scan_catches_each_kind(tmp_path: Path) -> None:
    pkg = tmp_path / "stafet"
    (pkg / "store").mkdir(parents=True)
    (pkg / "store" / "ok.py").write_text("from sqlalchemy import select\nselect(1)\n")
    (pkg / "elsewhere.py").write_text(
        "def f(s):\n"
        "    from sqlalchemy.orm import Session\n"
        "    import sqlalchemy as sa\n"
        "    s.execute(sa.text('x'))\n"
        "    return select(1), func.count()\n")
    found = offenders(tmp_path, ("stafet",), pkg / "store")
    assert [f.split(": ", 1)[1] for f in found] == [
        "from sqlalchemy.orm import …", "import sqlalchemy", ".execute(…)", "select(…)", "func.count(…)"]
