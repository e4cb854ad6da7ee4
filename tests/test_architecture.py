"""The import rule of the README, checked on the source, and the check checked on planted trees."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import architecture as arch

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_keeps_the_rule() -> None:
    found = arch.check(ROOT)
    assert not found, "the import rule is broken:\n" + "\n".join(map(str, found))


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    missing = []
    for name, path in arch.modules(ROOT).items():
        if path.name != "__init__.py" or "tests" in path.parts:
            continue
        doc = __import__("ast").get_docstring(__import__("ast").parse(path.read_text(encoding="utf-8")))
        if not doc or "import" not in doc.lower():
            missing.append(name)
    assert not missing, f"packages whose docstring does not say what they may import: {missing}"


def test_the_tree_is_big_enough_to_mean_something() -> None:
    assert len(arch.modules(ROOT)) > 60


def _plant(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


LOW_HIGH = (("app.low",), ("app.high",))


def _check(root: Path, files: dict[str, str], layers=LOW_HIGH) -> list[str]:
    base = {"app/__init__.py": "", "app/low/__init__.py": "", "app/high/__init__.py": ""}
    _plant(root, {**base, **files})
    return [str(v) for v in arch.check(root, ("app",), layers, {"app": ("app.low",)})]


def test_a_clean_planted_tree_passes(tmp_path: Path) -> None:
    assert _check(tmp_path, {"app/low/a.py": "import os\n", "app/high/b.py": "from app.low import a\n"}) == []


def test_from_package_import_module_is_seen_as_the_module(tmp_path: Path) -> None:
    # the landed rule recorded only node.module ("app.high" here was "app"): this passes it by
    found = _check(tmp_path, {"app/high/b.py": "", "app/low/a.py": "from app.high import b\n"})
    assert found == ["app.low.a: imports app.high.b, a higher layer (app.high)"]


def test_from_root_import_stage_is_seen(tmp_path: Path) -> None:
    found = _check(tmp_path, {"app/low/a.py": "from app import high\n"})
    assert found == ["app.low.a: imports app.high, a higher layer (app.high)"]


def test_an_import_inside_a_function_is_seen(tmp_path: Path) -> None:
    found = _check(tmp_path, {"app/high/b.py": "", "app/low/a.py": "def f():\n    import app.high.b\n"})
    assert found == ["app.low.a: imports app.high.b, a higher layer (app.high)"]


def test_a_relative_import_is_resolved(tmp_path: Path) -> None:
    found = _check(tmp_path, {"app/high/b.py": "", "app/low/a.py": "from ..high import b\n"})
    assert found == ["app.low.a: imports app.high.b, a higher layer (app.high)"]


def test_an_unlayered_module_is_caught(tmp_path: Path) -> None:
    found = _check(tmp_path, {"app/stray.py": "x = 1\n"})
    assert found == ["app.stray: is on no layer (add its package to LAYERS)"]


def test_a_circle_inside_one_package_is_caught(tmp_path: Path) -> None:
    found = _check(tmp_path, {"app/low/a.py": "from app.low import b\n",
                              "app/low/b.py": "from app.low.a import x\n"})
    assert found == ["app.low.a: is in an import circle: app.low.a → app.low.b"]


def test_siblings_on_one_layer_stay_independent(tmp_path: Path) -> None:
    layers = (("app.low", "app.side"), ("app.high",))
    found = _check(tmp_path, {"app/side/__init__.py": "", "app/low/a.py": "import app.side\n"}, layers)
    assert found == ["app.low.a: imports app.side: app.low and app.side share a layer "
                     "and must stay independent"]
