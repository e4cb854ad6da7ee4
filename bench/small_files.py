"""Benchmark: a night's many small files, one by one and checked ahead together (issue 21).

    .venv/bin/python bench/small_files.py [--files 100] [--rows 60] [--sources 2]

A national night is ~900 files of ~60 rows. Great Expectations costs ≈ 0.25 s a validation
call whatever its size, so validating each file on its own pays that once a file; the night's
ingest partitions validate the small files of a source kind in one call instead
(:mod:`stafet.ingest.ahead`, through :func:`stafet.ingest.pipeline.ingest_inboxes`).

Writes ``--files`` EASY-A exports of ``--rows`` rows (about 1 in 10 breaking a rule) spread
over ``--sources`` drop folders, then ingests them twice into fresh SQLite stores, each with
its Data Docs pages, as a night does:

* ``one by one``: ``ingest_file`` per file;
* ``checked ahead``: ``ingest_inboxes`` over the drop folders.

Prints per mode: wall time, per file the wall and the CPU of the ingesting process and of its
validation worker, the GX calls; and checks that both stored the same (rows, accepted,
quarantined per file).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _write(folder: Path, files: int, rows: int, sources: int) -> list[list[Path]]:
    from ingest_fixtures import easya_row, write_easya

    drops = [folder / f"drop{k}" for k in range(sources)]
    for d in drops:
        d.mkdir(parents=True)
    out: list[list[Path]] = [[] for _ in drops]
    for i in range(files):
        lines = [easya_row(cpr=f"1203{y % 28 + 1:02d}-41{y % 100:02d}", absence=f"{i % 100},{i // 100 % 10}",
                           date="17-11-2030" if y % 10 == 9 else "17-11-2026")
                 for y in range(rows)]
        k = i % sources
        out[k].append(write_easya(drops[k] / f"779008_haendelser_2026{i:04d}02.csv", lines))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--sources", type=int, default=2)
    args = ap.parse_args()

    from ingest_fixtures import NOW, network, open_store

    from stafet.core.config import SourceConfig
    from stafet.ingest import worker
    from stafet.ingest.gx import STATS
    from stafet.ingest.pipeline import ingest_file, ingest_inboxes
    from transports.folder import FolderInbox

    net = network()
    worker.warm_up()
    outcome = {}
    with tempfile.TemporaryDirectory(prefix="stafet-bench-") as tmp:
        for mode in ("one by one", "checked ahead"):
            home = Path(tmp) / mode.replace(" ", "-")
            home.mkdir()
            store = open_store(home)
            drops = _write(home, args.files, args.rows, args.sources)
            calls, worker_cpu = STATS.chunks, sum(STATS.worker_cpu_s.values())
            wall, cpu = time.perf_counter(), time.process_time()
            if mode == "one by one":
                docs = home / "night" / "datadocs"
                results = [ingest_file(store, net, p, now=NOW, home=home, docs_dir=docs)
                           for paths in drops for p in paths]
            else:
                inboxes = [(FolderInbox(paths[0].parent), SourceConfig(name="easy-a", location="folder:-"))
                           for paths in drops]
                results = []
                for o in ingest_inboxes(store, net, inboxes, now=NOW, home=home,
                                        docs_dir=home / "night" / "datadocs"):
                    assert not isinstance(o, Exception), o
                    results += o
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            wcpu = sum(STATS.worker_cpu_s.values()) - worker_cpu
            n = len(results)
            outcome[mode] = sorted((r.file, r.rows, r.accepted, r.quarantined) for r in results)
            print(f"{mode:>13}: {n} files × {args.rows} rows: {wall:6.2f} s wall, "
                  f"{wall / n * 1000:5.0f} ms a file "
                  f"(ingest CPU {cpu / n * 1000:4.0f} ms, validation worker CPU {wcpu / n * 1000:4.0f} ms), "
                  f"GX calls {STATS.chunks - calls}")
            store.engine.dispose()
    same = outcome["one by one"] == outcome["checked ahead"]
    print("  the same rows, accepted and quarantined per file: " + ("yes" if same else "NO"))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
