"""No CPR anywhere it should not be: the canary night (``canary_run.py``).

The demo network runs the real ``nightly-sync`` flow on Prefect (and ``stafet ingest``
and UU Skive's ``receive``) with rows about known synthetic CPRs, then every log line,
every file name under ``$STAFET_HOME`` (and UU Skive's home), Prefect's database, the
HTML reports, and the headers and file names of every package are scanned for every
canary in every written form. The same night checks that spreadsheet formulas and
HTML/JS in free-text fields stay inert in every report and in the packages' HTML
summary, and that private keys are 0600 and never logged.
"""

from __future__ import annotations

import html.parser
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import canary_run as C

from stafet.packages.package import read_headers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("canary")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    p = subprocess.run([sys.executable, str(Path(__file__).with_name("canary_run.py")), str(run)],
                       capture_output=True, text=True, timeout=900, env=env)
    (run / "out.log").write_text(p.stdout + p.stderr)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    return run


ALL_FORMS = [f for c in C.CANARIES for f in C.forms(c)]
# A clerk typed a sibling's CPR into a free-text note (canary_run, row 1): that text is
# data; see test_cpr_typed_into_free_text_is_not_stored_in_clear.
FREE_TEXT = C.dashed(C.CANARIES[1])


def _hits(text: str, forms: list[str] = ALL_FORMS) -> list[str]:
    return sorted({f for f in forms if f in text})


def test_the_canaries_went_through_the_night(night: Path) -> None:
    db = (night / "home" / "stafet.db").read_bytes()
    assert b"779008_haendelser_2026112204.csv" in db and b"quarantine" in db
    outbox = list((night / "home" / "outbox").glob("*.eml"))
    assert len(outbox) >= 10  # the samples' handovers and the canaries' dropout/concern
    assert list((night / "home" / "reports").glob("ingest-*.html"))
    assert list((night / "home" / "reports").glob("nightly-*.html"))


def test_no_canary_in_any_log_line(night: Path) -> None:
    for name in ("out.log", "stafet.log", "cli.log"):
        text = (night / name).read_text(errors="replace")
        assert text.strip(), name
        bad = [ln for ln in text.splitlines() if _hits(ln)]
        assert not bad, f"{name}: {bad[:5]}"


def test_no_canary_in_any_file_name(night: Path) -> None:
    homes = [night / "home", night / "demo" / "members", night / "demo" / "inbox"]
    names = [str(p.relative_to(night)) for h in homes for p in h.rglob("*")]
    assert len(names) > 50
    assert not [n for n in names if _hits(n) or _hits(n.replace("_", "-"))]


def test_no_canary_in_prefects_database(night: Path) -> None:
    dbs = [p for p in (night / "home" / "prefect").rglob("*.db*") if p.is_file()]
    assert dbs
    blob = b"".join(p.read_bytes() for p in dbs)
    assert b"nightly-sync" in blob  # it is the database of these runs, and readable
    assert not [f for f in ALL_FORMS if f.encode() in blob]


def test_no_canary_in_the_html_reports(night: Path) -> None:
    reports = list((night / "home" / "reports").glob("*.html"))
    for r in reports:
        assert not _hits(r.read_text()), r.name
    # the ingest reports show masked CPRs (those of files with quarantined rows; the night writes
    # one per file, clean files too)
    assert any("xxxx" in r.read_text() for r in reports if "nightly" not in r.name)


def test_no_canary_in_package_headers_or_names(night: Path) -> None:
    packages = list((night / "home" / "outbox").glob("*.eml")) + list((night / "demo").rglob("PKG-*.eml"))
    assert len(packages) >= 20
    for p in packages:
        headers = read_headers(p.read_bytes())
        assert headers.get("Subject", "").startswith(("Overlevering", "Kvittering", "Tilbagekald", "Påmindelse om pligt", "stafet"))  # noqa: E501
        assert not _hits(" ".join(f"{k}: {v}" for k, v in headers.items())), p.name
        assert not _hits(p.name)


def test_no_other_file_under_stafet_home_holds_a_canary(night: Path) -> None:
    """Everything else stafet writes (store, reasons, rejected copies, archive names…)."""
    forms = [f for f in ALL_FORMS if f != FREE_TEXT]
    for home in (night / "home", night / "demo" / "members" / "uu-skive"):
        for p in home.rglob("*"):
            if p.is_file() and "prefect" not in p.parts:
                data = p.read_bytes()
                assert not [f for f in forms if f.encode() in data], p


def test_cpr_typed_into_free_text_is_not_stored_in_clear(night: Path) -> None:
    assert FREE_TEXT.encode() not in (night / "home" / "stafet.db").read_bytes()


# --- keys -------------------------------------------------------------------------------

def test_private_keys_and_secrets_are_0600_and_never_logged(night: Path) -> None:
    secret_files = [p for home in (night / "home", night / "demo" / "members" / "uu-skive")
                    for p in home.rglob("*") if p.is_file()
                    and (p.suffix == ".key" or p.name in ("secret.key", "key-passphrase"))]
    assert len(secret_files) >= 10
    for p in secret_files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    logs = "".join((night / n).read_text(errors="replace") for n in ("out.log", "stafet.log", "cli.log"))
    assert "PRIVATE KEY" not in logs
    for name in ("key-passphrase", "secret.key"):
        value = (night / "home" / name).read_bytes().strip()
        assert value and value.decode(errors="replace") not in logs
        assert value.hex() not in logs


# --- formulas and markup stay inert -------------------------------------------------------

class _Cells(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self._in: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        if tag == "td":
            self._in = []

    def handle_endtag(self, tag):
        if tag == "td" and self._in is not None:
            self.cells.append("".join(self._in))
            self._in = None

    def handle_data(self, data):
        if self._in is not None:
            self._in.append(data)


def assert_inert(page: str, where: str) -> list[str]:
    p = _Cells()
    p.feed(page)
    assert not [t for t, _ in p.tags if t in ("script", "iframe", "object", "embed", "img", "svg")], where
    attrs = [(t, a, v) for t, attrs in p.tags for a, v in attrs
             if a.startswith("on") or (v or "").strip().lower().startswith("javascript:")]
    assert not attrs, f"{where}: {attrs}"
    assert not [t for t, attrs in p.tags for a, v in attrs if a in ("src", "href") and "://" in (v or "")]
    formulas = [c for c in p.cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not formulas, f"{where}: cells a spreadsheet would run: {formulas[:5]}"
    return p.cells


def test_reports_are_inert(night: Path) -> None:
    reports = list((night / "home" / "reports").glob("*.html"))
    cells = []
    for r in reports:
        cells += assert_inert(r.read_text(), r.name)
    assert len(cells) > 30


def test_package_summaries_escape_markup_and_formulas(night: Path) -> None:
    os.environ["STAFET_HOME"] = str(night / "home")
    from email import message_from_bytes, policy

    from keys import KeyStore
    from stafet.packages.package import decrypt_package, split_signed

    ks = KeyStore(night / "home")
    pages = []
    for p in (night / "home" / "outbox").glob("*.eml"):
        data = p.read_bytes()
        for org in ("uu-viborg", "779008", "jobcenter-viborg", "751001", "uu-thy", "familie-viborg"):
            try:
                entity = decrypt_package(data, ks.decryption_keys(org))
                break
            except Exception:  # encrypted to another organisation (and the sender)
                continue
        else:
            continue
        content, _ = split_signed(entity)
        msg = message_from_bytes(content, policy=policy.default)
        for part in msg.walk():
            if part.get_content_type() == "text/html":
                pages.append(part.get_content())
    canary_pages = [pg for pg in pages if "Canary" in pg or "alert(1)" in pg]
    assert canary_pages, f"{len(pages)} summaries, none about the canaries"
    for pg in canary_pages:
        assert "<script>" not in pg and "<img" not in pg
        assert_inert(pg, "package summary")
