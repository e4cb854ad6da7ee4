"""The one-way import rule of the README, checked on the source.

connectors → mappings → store → routing → packages → delivery; the base modules
import none of the layers; nothing but the CLI (an entry point) imports flows.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = ["stafet.errors", "stafet.cpr", "stafet.models", "stafet.vault", "stafet.config", "stafet.logs"]
LAYERS = ["stafet.store", "stafet.ingest", "stafet.routing", "stafet.consent", "stafet.packages",
          "stafet.exchange", "stafet.relay", "stafet.cli", "connectors", "mappings", "keys", "flows"]

FORBIDDEN = {
    # module prefix: prefixes it must not import
    **{b: LAYERS for b in BASE},
    "connectors": ["mappings", "stafet.store", "stafet.routing", "stafet.packages", "stafet.exchange",
                   "stafet.relay", "keys", "flows", "prefect", "great_expectations"],
    "mappings": ["connectors", "stafet.store", "stafet.routing", "stafet.packages", "stafet.exchange",
                 "flows", "prefect", "paramiko", "sqlalchemy", "smtplib", "great_expectations"],
    "stafet.store": ["stafet.routing", "stafet.packages", "stafet.exchange", "stafet.relay", "connectors",
                     "flows", "keys"],
    "keys": ["stafet.store", "stafet.routing", "stafet.exchange", "stafet.relay", "connectors", "flows"],
    "stafet.routing": ["stafet.packages", "stafet.exchange", "stafet.relay", "connectors", "flows"],
    "stafet.packages": ["stafet.store", "stafet.routing", "stafet.exchange", "stafet.relay", "connectors",
                        "flows"],
}


def _modules():
    for pkg in ("stafet", "connectors", "mappings", "keys", "flows"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            yield name, path


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _hits(mod: str, prefixes: list[str]) -> list[str]:
    return [p for p in prefixes if mod == p or mod.startswith(p + ".")]


MODULES = sorted(_modules())


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[m[0] for m in MODULES])
def test_imports_go_one_way(name: str, path: Path) -> None:
    rules = [p for prefix, p in FORBIDDEN.items() if name == prefix or name.startswith(prefix + ".")]
    bad = sorted({i for i in _imports(path) for r in rules for _ in _hits(i, r)})
    assert not bad, f"{name} must not import {bad}"
    if not name.startswith(("flows", "stafet.cli")):
        assert not [i for i in _imports(path) if i == "flows" or i.startswith("flows.")], \
            f"{name} imports flows/: only entry points may"


def test_the_rule_sees_violations() -> None:
    assert _hits("stafet.store.db", FORBIDDEN["stafet.errors"]) == ["stafet.store"]
    assert len(MODULES) > 15
