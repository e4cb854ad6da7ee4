"""The import rule of the README as code: every module on a layer, imports go down, no circles.

Used by ``tests/test_architecture.py`` on the real tree and on planted trees that break
each part of the rule. Imports are read from the source with :mod:`ast`, anywhere in a
module (inside functions and ``TYPE_CHECKING`` blocks too), and resolved to modules:
``from stafet import exchange`` is an import of ``stafet.exchange`` when that is a module,
and a relative import is resolved against the importing package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Lowest first. A module may import its own package, and any package on a lower layer;
# packages that share a layer are independent of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("stafet.core",),                     # errors, cpr, models, vault, config, logs
    ("connectors",),                      # bytes → rows (generic readers, XSDs)
    ("mappings",),                        # the source declarations: rows → records
    ("stafet.store", "keys", "transports"),  # SQL; certificates and trust; delivery
    ("stafet.context",),                  # one node's wiring: network, store, keys, vault
    ("stafet.ingest", "stafet.duties", "stafet.packages"),
    ("stafet.exchange",),                 # outbox, inbox, receipts, withdrawals
    ("stafet.reports",),                  # the steward's report, the night's report, status
    ("stafet.night",),                    # the stages of a night as plain functions
    ("stafet.ops", "stafet.demo"),
    ("flows",),                           # Prefect: orchestration only
    ("stafet.web",),                      # the console (web application)
    ("stafet.cli",),                      # the command line, an entry point
    ("stafet.__main__",),
)
ROOT_PACKAGES = ("stafet", "connectors", "mappings", "transports", "keys", "flows")
# The root package's own ``__init__`` (a docstring) belongs to the base.
ROOT_MODULES = {"stafet": ("stafet.core",)}


@dataclass(frozen=True)
class Violation:
    """One break of the rule, said so a reader can act on it."""

    module: str
    what: str

    def __str__(self) -> str:
        return f"{self.module}: {self.what}"


def modules(root: Path, packages: Iterable[str] = ROOT_PACKAGES) -> dict[str, Path]:
    """Every module under ``root``'s packages by dotted name (migrations aside)."""
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(root).with_suffix("")
            found[".".join(rel.parts).removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, resolved as Python would."""
    is_pkg = path.name == "__init__.py"
    here = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()

    def add(target: str) -> None:
        # the module itself, else the nearest enclosing package that is one of ours
        while target:
            if target in known:
                out.add(target)
                return
            target = target.rpartition(".")[0]

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
    out.discard(name)
    return out


def layer_of(name: str, layers: Sequence[tuple[str, ...]] = LAYERS) -> tuple[int, str] | None:
    """(layer index, package prefix) of a module, or None when it is on no layer."""
    best: tuple[int, str] | None = None
    for i, prefixes in enumerate(layers):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (i, p)
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(root: Path, packages: Iterable[str] = ROOT_PACKAGES,
          layers: Sequence[tuple[str, ...]] = LAYERS,
          root_modules: dict[str, tuple[str, ...]] | None = None) -> list[Violation]:
    """Every break of the rule in the tree at ``root``."""
    root_modules = ROOT_MODULES if root_modules is None else root_modules
    known = modules(root, packages)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found: list[Violation] = []

    def place(name: str) -> tuple[int, str] | None:
        if name in root_modules:
            return layer_of(root_modules[name][0], layers)
        return layer_of(name, layers)

    for name in sorted(known):
        mine = place(name)
        if mine is None:
            found.append(Violation(name, "is on no layer (add its package to LAYERS)"))
            continue
        for target in sorted(graph[name]):
            theirs = place(target)
            if theirs is None:
                continue  # reported for the target itself
            if theirs[1] == mine[1]:
                continue
            if theirs[0] > mine[0]:
                found.append(Violation(name, f"imports {target}, a higher layer ({theirs[1]})"))
            elif theirs[0] == mine[0]:
                found.append(Violation(name, f"imports {target}: {mine[1]} and {theirs[1]} share a "
                                             "layer and must stay independent"))
    for comp in _cycles(graph):
        found.append(Violation(comp[0], "is in an import circle: " + " → ".join(comp)))
    return found
