"""The tour after the demo: the commands to try next, printed by `stafet demo`.

The README's section "After the demo / Efter demoen" lists the same commands
(``tests/test_readme_tour.py`` holds the two equal and runs them on a fresh demo).
Run from the clone after ``make demo``, they need no ``--network``: the demo notes
its network in each home it made (``$STAFET_HOME/network-path``), and stafet says on
stderr when it uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (who, command, what it shows). ``{skive}`` is UU Skive's own node's home.
TOUR: tuple[tuple[str, str, str], ...] = (
    ("drift", "stafet status", "udbakke pr. afsender, ældste ikke-kvitterede, karantæne, certifikater"),
    ("drift", "stafet outbox list", "hver overlevering: modtager, regel, status, forsøg"),
    ("drift", "stafet deadlines", "frister der er overskredet eller falder inden for 7 dage"),
    ("dataansvarlig", "stafet quarantine list", "rækker der brød en regel (CPR maskeret)"),
    ("dataansvarlig", "stafet report ingest 779008_haendelser_2026112202.csv",
     "valideringsrapporten for en fil, med rækkernes status nu"),
    ("dataansvarlig", "stafet web", "konsollen på http://127.0.0.1:8080/ (log ind med et login ovenfor)"),
    ("institution", "stafet status --home {skive}", "UU Skives egen node: hvad den har modtaget"),
    ("institution", "stafet receive --org uu-skive --home {skive}",
     "UU Skive åbner ventende pakker og sender kvitteringer"),
    ("UU", "stafet notices", "pligtbeskeder og eskaleringer sendt til navngivne personer"),
    ("UU", "stafet opsporing", "15-17-årige uden uddannelse, aktivitet eller UU-kontakt"),
    ("UU", "stafet inquiry list", "institutionernes forespørgsler og UU's svar"),
    ("koordinator", "stafet statistics --from 2026-01 --to 2026-11", "netværkets statistik pr. måned"),
)


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is below it (as the README writes it)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def tour_commands(skive_home: Path) -> list[str]:
    """The tour's commands, with UU Skive's home as the demo made it."""
    return [cmd.format(skive=_shown(skive_home)) for _, cmd, _ in TOUR]


def show_tour(console: Any, home: Path, skive_home: Path) -> None:
    """Print the tour (for `stafet demo`): the commands, who uses them, what they show."""
    console.print("[bold]efter demoen[/bold]: prøv (fra denne mappe, med .venv aktiveret: "
                  "`. .venv/bin/activate`)")
    default_home = Path(".stafet").resolve()
    if home.resolve() != default_home:
        console.print(f"  export STAFET_HOME={home}", markup=False, highlight=False)
    for (who, _, what), cmd in zip(TOUR, tour_commands(skive_home), strict=True):
        console.print(f"  {cmd:<62} # {who}: {what}", markup=False, highlight=False, soft_wrap=True)
