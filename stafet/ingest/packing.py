"""A chunk's rows packed for the pipe to the validation worker, and unpacked there.

Pickling a column as one joined string costs one object where a list of values costs
one per value, on both sides of the pipe (see :func:`pack_rows`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence

_SEP = "\x1f"


def pack_rows(rows: Sequence[Mapping[str, str]]) -> tuple[list[str], list[str | list[str | None]]]:
    """A chunk's rows for the worker pipe: its field names, and each field's values as one column.

    A column is one string joined by US (unit separator) when every row has the field
    and no value holds a US: one string pickles and unpickles in one step where a list
    costs a Python object per value on both sides. Otherwise it is a list with None
    where a row lacks the field. :func:`unpack_rows` reverses it.
    """
    first = rows[0].keys() if rows else {}.keys()
    if all(r.keys() == first for r in rows):  # every row has the same fields (CSV): transposed in C
        keys = list(first)
        get = operator.itemgetter(*keys) if len(keys) > 1 else lambda r: (r[keys[0]],)
        columns: list[Sequence[str | None]] = list(zip(*map(get, rows), strict=True)) if keys else []
    else:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        columns = [[r.get(k) for r in rows] for k in keys]
    out: list[str | list[str | None]] = []
    for col in columns:
        if None not in col:
            joined = _SEP.join(col)  # type: ignore[arg-type]
            if joined.count(_SEP) == len(col) - 1:
                out.append(joined)
                continue
        out.append(list(col))
    return keys, out


def unpack_rows(keys: Sequence[str], packed: Sequence[str | list[str | None]],
                n: int) -> tuple[Iterator[dict[str, str]], dict[str, list[str]]]:
    """Reverse :func:`pack_rows` for a chunk of ``n`` rows: the rows, and each field's column.

    The rows are made one by one as they are iterated (a chunk's dicts are never all
    held at once). In the columns a field a row lacks is ``""`` (as :func:`columns_of` has it).
    """
    if not keys:  # rows without any field (an empty XML record) are still rows
        return ({} for _ in range(n)), {}
    cols = [(c.split(_SEP) if n else []) if isinstance(c, str) else c for c in packed]
    if all(isinstance(c, str) for c in packed):
        rows = (dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True))
        return rows, dict(zip(keys, cols, strict=True))  # type: ignore[arg-type]
    sparse = ({k: v for k, v in zip(keys, vals, strict=True) if v is not None}
              for vals in zip(*cols, strict=True))
    return sparse, {k: [v or "" for v in c] for k, c in zip(keys, cols, strict=True)}

