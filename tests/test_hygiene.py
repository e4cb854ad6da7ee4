"""Tests you can trust: the suite itself is checked here.

* A real peer (sshd, SMTP, PostgreSQL, Prefect server) that cannot start **fails** the
  tests that need it; only ``STAFET_TEST_ALLOW_SKIP=1`` makes it a skip, naming the peer.
  Shown by running pytest in a subprocess on a tiny test file whose servers cannot start.
* The isolation fixture removes every ``STAFET_*`` / ``PREFECT_*`` variable it does not set.
* Every ``test_*`` function can fail: it asserts, uses ``pytest.raises`` / ``fail`` /
  ``warns``, or calls a helper that does (one named ``assert_*`` / ``check*`` /
  ``expect*`` / ``verify*``, or a function of the same module that asserts).
* No file under ``tests/`` holds an absolute path into the machine's work or home folder.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# --------------------------------------------------------------------------- real peers

# A test module whose real peers cannot start: every server points at something missing.
_PEERS_UNAVAILABLE = '''
from pathlib import Path

import servers

servers.Sshd.binary = "/nonexistent/sshd"
servers.PrefectServer.binary = "/nonexistent/prefect"
servers.SmtpServer.script = Path("/nonexistent/smtp_server.py")
servers.postgres_bindir = lambda: None


def test_sshd(sshd):
    raise AssertionError("reached without sshd")


def test_private_sshd(make_sshd):
    make_sshd()
    raise AssertionError("reached without sshd")


def test_smtp(smtp_server):
    raise AssertionError("reached without an SMTP server")


def test_postgres(postgres_url):
    raise AssertionError("reached without PostgreSQL")


def test_prefect(prefect_server):
    raise AssertionError("reached without a Prefect server")
'''

PEERS = {"test_sshd": "sshd", "test_private_sshd": "sshd", "test_smtp": "SMTP server",
         "test_postgres": "PostgreSQL", "test_prefect": "prefect server"}

# A test module that looks at its own environment.
_ENVIRONMENT = '''
import os

import servers


def test_only_what_isolation_sets():
    seen = sorted(k for k in os.environ if k.startswith(("STAFET_", "PREFECT_")))
    assert seen == ["PREFECT_SERVER_ANALYTICS_ENABLED", "STAFET_HOME"], seen
    assert os.environ["STAFET_HOME"] != "/nonexistent/developer-home"


def test_run_settings_are_read_once_at_start():
    assert "STAFET_TEST_MARKER" not in os.environ
    assert servers.setting("STAFET_TEST_MARKER") == "kept"
'''


def _pytest(tmp_path: Path, name: str, source: str, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                          dict[str, tuple[str, str]]]:
    """Run pytest on ``source`` with the suite's conftest as a plugin; (process, {test: (outcome, text)})."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"test_{name}.py").write_text(textwrap.dedent(source))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    base.update(PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), **env)
    junit = folder / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "conftest",
         "--rootdir", str(folder), "-c", os.devnull, f"--junitxml={junit}", str(folder)],
        cwd=folder, env=base, capture_output=True, text=True, timeout=120, check=False)
    outcomes: dict[str, tuple[str, str]] = {}
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            kids = [k for k in case if k.tag in ("failure", "error", "skipped")]
            outcome = kids[0].tag if kids else "passed"
            text = " ".join(f"{k.get('message', '')} {k.text or ''}" for k in kids)
            outcomes[case.get("name", "")] = (outcome, text)
    return proc, outcomes


def test_a_peer_that_cannot_start_fails_the_run(tmp_path: Path) -> None:
    proc, outcomes = _pytest(tmp_path, "peers", _PEERS_UNAVAILABLE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert set(outcomes) == set(PEERS), proc.stdout + proc.stderr
    for test, peer in PEERS.items():
        outcome, text = outcomes[test]
        assert outcome in ("failure", "error"), (test, outcome, text)
        assert f"{peer} unavailable" in text and "reached without" not in text, (test, text)
        assert "STAFET_TEST_ALLOW_SKIP=1" in text, text  # says how to skip on purpose
    assert "skipped" not in proc.stdout.splitlines()[-1], proc.stdout


def test_a_peer_that_cannot_start_skips_only_when_asked(tmp_path: Path) -> None:
    proc, outcomes = _pytest(tmp_path, "peers", _PEERS_UNAVAILABLE, STAFET_TEST_ALLOW_SKIP="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {t: o for t, (o, _) in outcomes.items()} == {t: "skipped" for t in PEERS}, outcomes
    for test, peer in PEERS.items():
        assert f"{peer} unavailable" in outcomes[test][1], outcomes[test]
    # the reasons are printed, each naming its peer
    summary = proc.stdout.split("real peers skipped (STAFET_TEST_ALLOW_SKIP=1)", 1)
    assert len(summary) == 2, proc.stdout
    for peer in set(PEERS.values()):
        assert re.search(rf"^{re.escape(peer)}: .*not", summary[1], re.M), (peer, summary[1])


def test_make_test_never_allows_skips() -> None:
    """``make test`` (what ``.ci/run`` runs) removes the variable even if the caller's shell has it."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no test target in the Makefile"
    pytest_lines = [ln.strip() for ln in recipe.group(1).splitlines() if "pytest" in ln]
    assert pytest_lines and all(ln.startswith("env -u STAFET_TEST_ALLOW_SKIP ") for ln in pytest_lines)
    mentions = [ln for ln in makefile.splitlines()
                if "STAFET_TEST_ALLOW_SKIP" in ln and not ln.startswith("#")]
    assert mentions == ["\t" + ln for ln in pytest_lines], mentions
    assert "STAFET_TEST_ALLOW_SKIP" not in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_no_test_turns_an_unavailable_server_into_a_skip() -> None:
    """``except ServerUnavailable`` must go through ``servers.peer_unavailable`` (fail or skip on demand)."""
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ExceptHandler) and node.type is not None
                    and "ServerUnavailable" in ast.unparse(node.type)):
                continue
            if any(isinstance(n, ast.Call) and _name(n.func) == "skip" for n in ast.walk(node)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


# --------------------------------------------------------------------------- isolation


def test_isolation_removes_every_stray_stafet_and_prefect_variable(tmp_path: Path) -> None:
    proc, outcomes = _pytest(
        tmp_path, "environment", _ENVIRONMENT,
        STAFET_FOO="1", PREFECT_BAR="1", PREFECT_API_URL="http://192.0.2.1:4200/api",
        PREFECT_HOME="/nonexistent/prefect-home", STAFET_DATABASE_URL="postgresql://192.0.2.1/prod",
        STAFET_SECRET="not-for-tests", STAFET_NETWORK="/nonexistent/network.yaml",
        STAFET_HOME="/nonexistent/developer-home", STAFET_TEST_MARKER="kept")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {t: o for t, (o, _) in outcomes.items()} == {
        "test_only_what_isolation_sets": "passed", "test_run_settings_are_read_once_at_start": "passed"}


def test_this_test_sees_only_what_isolation_sets() -> None:
    seen = {k for k in os.environ if k.startswith(("STAFET_", "PREFECT_"))}
    assert seen == {"STAFET_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED"}, seen


# --------------------------------------------------------------------------- every test can fail

ASSERTING_PREFIXES = ("assert", "check", "expect", "verify")
PYTEST_CHECKS = {"raises", "fail", "warns", "deprecated_call"}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _checks(fn: ast.AST, helpers: set[str]) -> bool:
    """Whether ``fn`` asserts, uses pytest's checks or calls an asserting helper."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in PYTEST_CHECKS or name.lstrip("_").startswith(ASSERTING_PREFIXES) or name in helpers:
                return True
    return False


def _unchecked_tests(source: str) -> list[str]:
    """``name:line`` of every ``test_*`` function in ``source`` that cannot fail."""
    tree = ast.parse(source)
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    helpers: set[str] = set()
    while True:  # the module's own helpers that check, directly or through another helper
        more = {f.name for f in funcs if not f.name.startswith("test") and f.name not in helpers
                and _checks(f, helpers)}
        if not more:
            break
        helpers |= more
    return [f"{f.name}:{f.lineno}" for f in funcs if f.name.startswith("test") and not _checks(f, helpers)]


def _python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_checker_finds_a_test_that_cannot_fail() -> None:
    planted = textwrap.dedent('''
        import pytest

        def _helper(x):
            assert x

        def _indirect(x):
            _helper(x)

        def test_prints():
            print("figures")

        def test_asserts():
            assert 1

        def test_raises():
            with pytest.raises(ValueError):
                int("x")

        def test_via_helper():
            _indirect(1)

        def test_via_named_helper():
            assert_inert("x")

        class TestGroup:
            def test_method_without(self):
                len([])
    ''')
    assert [f.split(":")[0] for f in _unchecked_tests(planted)] == ["test_prints", "test_method_without"]


def test_every_test_can_fail() -> None:
    missing = [f"{p.relative_to(ROOT)}::{f}" for p in _python_files() if p.name.startswith("test_")
               for f in _unchecked_tests(p.read_text(encoding="utf-8"))]
    assert not missing, "tests without an assertion:\n" + "\n".join(missing)


# --------------------------------------------------------------------------- no absolute paths

# Built from parts so that this file does not match itself.
_ABSOLUTE = re.compile(rb"(?<![\w.~-])/(?:" + b"work" + rb"|" + b"root" + rb")(?:/|\b)")


def test_the_path_check_finds_an_absolute_path() -> None:
    assert _ABSOLUTE.search(b'SEEDS = Path("/' + b'work/shared/seeds")')
    assert _ABSOLUTE.search(b"home = '/" + b"root/.stafet'")
    assert not _ABSOLUTE.search(b'Path(__file__).parents[2].parent / "shared" / "seeds"')
    assert not _ABSOLUTE.search(b"../shared/seeds and tests/network/root/ca.pem")


def test_no_absolute_path_into_the_machine() -> None:
    found = []
    for path in sorted(p for p in TESTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        for lineno, line in enumerate(path.read_bytes().splitlines(), 1):
            if _ABSOLUTE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert not found, "absolute paths (use paths relative to the repository):\n" + "\n".join(found)


def test_seed_quotes_come_from_beside_the_repository() -> None:
    text = (TESTS / "seeds.py").read_text(encoding="utf-8")
    assert 'SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"' in text
    # no test reads a seed text by itself, past the one helper
    helpers = ("seeds.py", "test_seeds.py", "test_hygiene.py")
    readers = [p.relative_to(ROOT) for p in TESTS.rglob("*.py") if p.name not in helpers
               and "shared" in (t := p.read_text(encoding="utf-8")) and "seeds" in t]
    assert not readers, readers
