"""Read a huge-field file with one reader in this process and report peak memory.

    python huge_field_probe.py SOURCE PATH

Prints one JSON line: ``{"outcome": "rejected"|"rows"|"crash", "detail": ..., "rows": N,
"baseline_mb": .., "peak_mb": .., "growth_mb": .., "seconds": ..}``. Peak is
the high-water mark of this process (``VmHWM``), reset after the imports, whose
baseline is the RSS then.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))


def _mb() -> float:
    """The peak RSS in MB since :func:`_reset_peak` (``VmHWM``), else since the start."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start the peak over from the current RSS (Linux: ``5`` into ``clear_refs`` resets VmHWM).

    Without it the baseline is the imports' own high-water mark, which a reader's growth
    could stay under and so not show at all.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    from hostile import READERS
    from stafet.core.errors import StafetError

    source, path = sys.argv[1], Path(sys.argv[2])
    reader = READERS[source]
    _reset_peak()
    base = _mb()
    started = time.perf_counter()
    rows, outcome, detail = 0, "rows", ""
    try:
        for _ in reader(path):
            rows += 1
    except StafetError as e:
        outcome, detail = "rejected", f"{type(e).__name__}: {e}"[:300]
    except BaseException as e:  # what the test forbids
        outcome, detail = "crash", f"{type(e).__name__}: {e}"[:300]
    peak = _mb()
    print(
        json.dumps(
            {
                "outcome": outcome,
                "detail": detail,
                "rows": rows,
                "baseline_mb": round(base, 1),
                "peak_mb": round(peak, 1),
                "growth_mb": round(peak - base, 1),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
