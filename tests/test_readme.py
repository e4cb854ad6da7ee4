"""The README's folder table matches the tree: every package and module, nothing that is not there."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import architecture as arch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _table() -> dict[str, set[str]]:
    """Folder (or module file) of each row of the Architecture table → the modules it names."""
    section = README.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        m = re.match(r"\| `([^`]+)` \| (.*?) \| (.*?) \|$", line)
        if m:
            named = set(re.findall(r"`([a-z_]+)`", m.group(2)))
            rows[m.group(1)] = named
    return rows


def _on_disk() -> dict[str, set[str]]:
    """Each package of the source tree → its modules (files and subpackages, ``__init__`` aside)."""
    found: dict[str, set[str]] = {}
    for name, path in arch.modules(ROOT).items():
        if path.name == "__init__.py" or name == "stafet.__main__":
            continue
        parent, _, leaf = name.rpartition(".")
        if parent == "stafet" and path.parent.name == "stafet":
            found[f"stafet/{leaf}.py"] = set()  # a module at the top of stafet/: its own row
            continue
        found.setdefault(parent.replace(".", "/") + "/", set()).add(leaf)
    # data-only subpackages (demo data) are described in their parent's row
    found.pop("stafet/demo/data/", None)
    return found


def test_every_package_of_the_tree_has_its_row_and_every_row_a_package() -> None:
    table, disk = _table(), _on_disk()
    code_rows = {k for k in table if k not in ("tests/", "bench/")}
    assert code_rows == set(disk), (f"rows without a package: {sorted(code_rows - set(disk))}; "
                                    f"packages without a row: {sorted(set(disk) - code_rows)}")


def test_each_row_names_exactly_the_modules_in_its_folder() -> None:
    table, disk = _table(), _on_disk()
    wrong = {}
    for folder, modules in disk.items():
        named = table.get(folder, set())
        if folder.endswith("/") and named != modules:
            wrong[folder] = {"not in the README": sorted(modules - named),
                             "not in the tree": sorted(named - modules)}
    assert not wrong, wrong


def test_the_rows_run_in_the_order_of_the_layers() -> None:
    order = [k for k in _table() if k not in ("tests/", "bench/")]
    layer = [arch.layer_of(k.removesuffix("/").removesuffix(".py").replace("/", "."))[0] for k in order]
    assert layer == sorted(layer), list(zip(order, layer, strict=True))


def test_the_table_is_read() -> None:
    assert len(_table()) > 15 and "stafet/core/" in _table()
