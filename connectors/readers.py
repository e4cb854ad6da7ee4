"""Streaming readers for the source export formats (``FORMATS.md``).

A reader turns one file into :class:`Row` objects — a dict of the source's own
field names to raw strings, stamped with the line the row starts on — and never
holds more than one row (plus one read buffer) in memory:

* CSV: the :mod:`csv` module over an incremental decoder; ``;`` separated, quoted
  fields may hold ``;`` and line breaks, an optional trailing ``;`` is tolerated.
* XML: :func:`lxml.etree.iterparse` with every record element cleared once read,
  validated while it streams against the XSD shipped in ``connectors/xsd``.

What makes a whole file unusable raises :class:`~stafet.core.errors.FileRejected`
(the caller keeps the file and stores nothing from it):

* bytes that are not valid in the format's declared encoding (the message names
  the first bad byte offset); NUL bytes, and C1 control bytes in ISO-8859-1 text,
  count as invalid: no text export holds them, they mean a wrong encoding;
* a CSV header with missing or unknown columns;
* a CSV field over the csv module's field limit (128 Ki characters), or a physical
  CSV line longer than any row of the format can be (refused once that many
  characters are read, so memory stays bounded);
* XML that is not well formed, fails its XSD, or carries a DOCTYPE at all (so
  XXE and billion-laughs documents are refused before lxml sees them; the parser
  is configured against them as well).

A CSV row with the wrong number of fields is not fatal: it is yielded with
``problem`` set so that it goes to quarantine with its raw values.

Only the generic readers live here: each source builds its own reader from
:class:`CsvReader` or :class:`XmlReader` in its module of :mod:`mappings`, from the
columns it declares once.
"""

from __future__ import annotations

import codecs
import csv
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple, Protocol

from lxml import etree

from stafet.core.errors import FileRejected

XSD_DIR = Path(__file__).parent / "xsd"
_READ_SIZE = 1 << 20
_C1 = re.compile("[\x80-\x9f]")
# Python's codec names for what FORMATS.md declares.
CP1252, LATIN1, UTF8, UTF8_BOM = "cp1252", "iso-8859-1", "utf-8-sig", "utf-8-sig"


class Row(NamedTuple):
    """One source row: its line number in the file, its raw fields, and a problem if any.

    ``number`` is the line on which the row (or XML record element) starts; the CSV
    header is line 1. ``problem`` is empty for a well-formed row.
    """

    number: int
    fields: dict[str, str]
    problem: str = ""


class Reader(Protocol):
    """What a source declares as its reader: a callable from a file to its rows."""

    @property
    def name(self) -> str:
        """The format's name (for messages)."""
        ...

    @property
    def encoding(self) -> str:
        """The Python codec of the format's declared encoding."""
        ...

    def __call__(self, path: Path) -> Iterator[Row]:
        """Yield the file's rows in order."""
        ...

    def rows(self, fh: IO[bytes], file: str) -> Iterator[Row]:
        """Yield the rows of an open binary file named ``file``."""
        ...


# --- decoding -----------------------------------------------------------------

class _CheckedBytes:
    """A binary file wrapper that checks every byte it hands out against an encoding.

    The first byte that is invalid raises ``FileRejected`` with its offset in the
    file, so a wrong encoding is reported the same way by every reader.
    """

    def __init__(self, fh: IO[bytes], encoding: str, file: str) -> None:
        self._fh, self._file, self._encoding = fh, file, encoding
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._offset = 0  # bytes handed to the decoder so far
        self._latin1 = codecs.lookup(encoding).name == "iso8859-1"
        self._codec = "utf-8" if encoding == "utf-8-sig" else encoding

    def _reject(self, offset: int, why: str) -> FileRejected:
        return FileRejected(f"file is not valid {self._encoding}: {why} at byte offset {offset}",
                            file=self._file, rule="encoding", offset=offset)

    def decode(self, chunk: bytes) -> str:
        """Decode the next chunk (``b""`` at the end), checking it."""
        pending = len(self._decoder.getstate()[0])
        start = self._offset - pending
        if self._offset == 0 and self._encoding == "utf-8-sig" and chunk.startswith(codecs.BOM_UTF8):
            start += 3  # the decoder drops the BOM: text starts after it
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise self._reject(self._offset - pending + e.start,
                               f"byte 0x{e.object[e.start]:02x} cannot be decoded") from None
        self._offset += len(chunk)
        if "\x00" in text:
            raise self._reject(start + len(text[:text.index("\x00")].encode(self._codec)), "NUL byte")
        if self._latin1:
            m = _C1.search(text)
            if m:
                raise self._reject(start + m.start(), f"C1 control byte 0x{ord(m.group()):02x}")
        return text

    def read(self, size: int = -1) -> bytes:
        """Read and check up to ``size`` bytes (the interface lxml reads through)."""
        chunk = self._fh.read(size if size and size > 0 else _READ_SIZE)
        self.decode(chunk)
        return chunk

    def lines(self, max_line: int) -> Iterator[str]:
        """Yield decoded lines, each with its newline (a CR stays, for the csv module).

        A line is assembled from the pieces of the chunks it spans and joined once,
        when its newline comes (linear in its length). A physical line longer than
        ``max_line`` characters raises ``FileRejected`` naming its line number, as
        soon as that many characters have been read without a newline: memory stays
        bounded by ``max_line`` whatever the file holds.
        """
        pieces: list[str] = []  # the current line so far, before its newline
        size = 0  # characters in ``pieces``
        number = 0  # lines yielded so far
        while True:
            chunk = self._fh.read(_READ_SIZE)
            text = self.decode(chunk)
            if not chunk:
                if pieces or text:
                    if size + len(text) > max_line:
                        raise self._too_long(number + 1, max_line)
                    yield "".join(pieces) + text
                return
            parts = text.split("\n")
            if len(parts) > 1:
                first = "".join(pieces) + parts[0] if pieces else parts[0]
                pieces, size = [], 0
                for line in (first, *parts[1:-1]):
                    number += 1
                    if len(line) > max_line:
                        raise self._too_long(number, max_line)
                    yield line + "\n"
            if parts[-1]:
                pieces.append(parts[-1])
                size += len(parts[-1])
                if size > max_line:
                    raise self._too_long(number + 1, max_line)

    def _too_long(self, line: int, max_line: int) -> FileRejected:
        return FileRejected(f"line {line} is longer than any row of this format can be "
                            f"(over {max_line} characters without a line break)",
                            file=self._file, row=line, rule="csv_structure")


# --- CSV ------------------------------------------------------------------------

@dataclass(frozen=True)
class CsvReader:
    """A ``;``-separated export with a header row naming exactly ``columns``."""

    name: str
    encoding: str
    columns: tuple[str, ...]
    delimiter: str = ";"

    @property
    def max_line(self) -> int:
        """The longest physical line (without its line break) any row of this format can have.

        Every column (and the optional trailing one) at the csv module's field limit,
        quoted with every character a doubled quote, plus its separator. A longer line
        cannot be a row, so it is refused before it is held whole (a 100 MB field
        without a line break would otherwise be read into memory before csv refuses it).
        """
        return (len(self.columns) + 1) * (2 * csv.field_size_limit() + 3)

    def __call__(self, path: Path) -> Iterator[Row]:
        """Yield the rows of ``path``; see the module docstring for what is rejected."""
        path = Path(path)
        with path.open("rb") as fh:
            yield from self.rows(fh, path.name)

    def rows(self, fh: IO[bytes], file: str) -> Iterator[Row]:
        """Yield the rows of an open binary file named ``file`` (for messages)."""
        checked = _CheckedBytes(fh, self.encoding, file)
        reader = csv.reader(checked.lines(self.max_line), delimiter=self.delimiter, quotechar='"',
                            doublequote=True, skipinitialspace=False, strict=False)
        header: list[str] | None = None
        n = 0
        last_line = 0
        try:
            for values in reader:
                start, last_line = last_line + 1, reader.line_num
                if not values or (len(values) == 1 and not values[0].strip()):
                    continue  # blank line
                if header is None:
                    header = self._check_header(values, file)
                    n = len(header)
                    continue
                if len(values) == n + 1 and not values[-1].strip():
                    values.pop()  # optional trailing ';'
                if len(values) == n:
                    yield Row(start, dict(zip(header, values, strict=True)))
                else:
                    fields = dict(zip(header, values + [""] * (n - len(values)), strict=False))
                    if len(values) > n:
                        fields["_extra"] = self.delimiter.join(values[n:])
                    yield Row(start, fields, f"row has {len(values)} fields, the header has {n}")
        except csv.Error as e:
            raise FileRejected(f"CSV structure is broken: {e}", file=file, row=last_line + 1,
                               rule="csv_structure") from None
        if header is None:
            raise FileRejected("file is empty: no header row", file=file, rule="header")

    def _check_header(self, values: list[str], file: str) -> list[str]:
        names = [v.strip() for v in values]
        if names and names[-1] == "":
            names.pop()  # optional trailing ';' on the header
        missing = [c for c in self.columns if c not in names]
        unknown = [c for c in names if c not in self.columns]
        dupes = sorted({c for c in names if names.count(c) > 1})
        problems = []
        if missing:
            problems.append("missing columns: " + ", ".join(missing))
        if unknown:
            problems.append("unknown columns: " + ", ".join(repr(c) for c in unknown))
        if dupes:
            problems.append("duplicate columns: " + ", ".join(dupes))
        if problems:
            raise FileRejected(f"header does not match the {self.name} format: " + "; ".join(problems),
                               file=file, row=1, rule="header")
        return names


# --- XML ------------------------------------------------------------------------

@functools.cache
def load_schema(xsd: Path) -> etree.XMLSchema:
    """Load (once) a shipped XSD with a parser that resolves nothing."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.XMLSchema(etree.parse(str(xsd), parser))


_PROLOG_LIMIT = 1 << 16


def refuse_doctype(head: bytes, file: str) -> None:
    """Raise ``FileRejected`` if the prolog before the root element holds a DOCTYPE.

    Only comments, processing instructions and white space may come first; a
    DOCTYPE (with or without entities) is refused outright: no stafet format has one,
    so every DOCTYPE is hostile or wrong (XXE, billion laughs, external DTDs).
    """
    i = 3 if head.startswith(codecs.BOM_UTF8) else 0
    while True:
        while i < len(head) and head[i:i + 1].isspace():
            i += 1
        if head.startswith(b"<?", i):
            end, close = head.find(b"?>", i), 2
        elif head.startswith(b"<!--", i):
            end, close = head.find(b"-->", i), 3
        elif head.startswith(b"<!", i):
            raise FileRejected("XML with a DOCTYPE or other declaration is refused (DTD/entities)",
                               file=file, rule="xml_hostile")
        else:
            return
        if end < 0:
            raise FileRejected("XML prolog is too long or not terminated", file=file, rule="xml_syntax")
        i = end + close


@dataclass(frozen=True)
class XmlReader:
    r"""An XML export: records are the ``record`` children of ``root`` in ``namespace``.

    Each record becomes one row: its own attributes as ``@name``; each descendant's
    text under its path (``Stoettebehov/SPS``) and attributes as ``path@name``; an
    empty element is present with ``""``; repeated elements are joined with ``|``.
    The root's attributes named in ``root_fields`` are copied into every row as
    ``/name`` (e.g. ``/institution``).

    ``lists`` names the paths of repeated elements that carry free text (the
    grundskole's ``Stoettebehov``): under such a path every value (its text, its
    attributes, its descendants') is escaped before it is joined (``\`` → ``\\``,
    ``|`` → ``\|``), so a ``|`` typed into one item cannot shift the items apart;
    :func:`split_items` gives the items back. Each occurrence adds one item to its
    text and to every attribute it has: the items of two fields pair up when the
    XSD requires those attributes.
    """

    name: str
    namespace: str
    root: str
    record: str
    xsd: str
    root_fields: tuple[str, ...] = ()
    encoding: str = "utf-8"
    lists: tuple[str, ...] = ()

    def __call__(self, path: Path) -> Iterator[Row]:
        """Yield the records of ``path``; see the module docstring for what is rejected."""
        path = Path(path)
        with path.open("rb") as fh:
            yield from self.rows(fh, path.name)

    def rows(self, fh: IO[bytes], file: str) -> Iterator[Row]:
        """Yield the records of an open binary file named ``file`` (for messages)."""
        head = fh.read(_PROLOG_LIMIT)
        refuse_doctype(head, file)
        fh.seek(0)
        checked = _CheckedBytes(fh, self.encoding, file)
        schema = load_schema(XSD_DIR / self.xsd)
        tag = f"{{{self.namespace}}}{self.record}"
        context = etree.iterparse(
            checked, events=("end",), tag=tag, schema=schema, resolve_entities=False,
            no_network=True, load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)
        root_fields: dict[str, str] | None = None
        try:
            for _event, elem in context:
                parent = elem.getparent()
                if root_fields is None:
                    if parent is None or etree.QName(parent).localname != self.root:
                        raise FileRejected(f"root element is not {self.root}", file=file, rule="xsd")
                    root_fields = {f"/{k}": parent.get(k, "") for k in self.root_fields}
                fields = dict(root_fields)
                _flatten(elem, "", fields, self.lists)
                yield Row(elem.sourceline or 0, fields)
                _release(elem)
        # The reason comes from this parse's own error log (``context.error_log``), never
        # from ``e.error_log``: that is a copy of lxml's thread-wide log, which still holds
        # the errors of earlier files, so its first entry can be another file's reason.
        except etree.DocumentInvalid as e:
            raise FileRejected(f"XML does not match {self.xsd}: {_first_error(context, e)}",
                               file=file, rule="xsd") from None
        except etree.XMLSyntaxError as e:
            log = context.error_log
            schema_error = bool(log) and log[0].domain == etree.ErrorDomains.SCHEMASV
            rule = "xsd" if schema_error else "xml_syntax"
            what = f"does not match {self.xsd}" if rule == "xsd" else "is not well formed"
            reason, line = _first_error(context, e), e.lineno
            if not log:  # the schema-validating parse lost the parser's own reason
                reason, line = _syntax_reason(fh, self.encoding, file) or (reason, line)
            raise FileRejected(f"XML {what}: {reason}", file=file, rule=rule, line=line) from None
        if root_fields is None:
            _check_empty_root(context, self, file)


def _check_empty_root(context: etree.iterparse, fmt: XmlReader, file: str) -> None:
    root = getattr(context, "root", None)
    name = etree.QName(root) if root is not None else None
    if name is None or name.localname != fmt.root or name.namespace != fmt.namespace:
        raise FileRejected(f"XML root is not {fmt.root} in {fmt.namespace}", file=file, rule="xsd")


def _syntax_reason(fh: IO[bytes], encoding: str, file: str) -> tuple[str, int] | None:
    """Parse the file again without its schema and return the first syntax error and its line.

    With a schema, lxml reports some syntax errors (a text node over libxml2's 10 MB limit)
    only as "no element found" on line 0, with an empty error log; the plain parse names
    them. Only called on that error path; streams like the reader (bounded memory).
    """
    fh.seek(0)
    context = etree.iterparse(_CheckedBytes(fh, encoding, file), events=("end",), resolve_entities=False,
                              no_network=True, load_dtd=False, huge_tree=False)
    try:
        for _event, elem in context:
            _release(elem)
    except etree.XMLSyntaxError as e:
        return _first_error(context, e), e.lineno
    return None


def _release(elem: etree._Element) -> None:
    """Free a parsed element and the finished siblings before it (memory stays flat while streaming)."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    while parent is not None and elem.getprevious() is not None:
        del parent[0]


def _first_error(context: etree.iterparse, e: etree.LxmlError) -> str:
    """The first error of this parse (``context``), else the exception's own message."""
    log = context.error_log
    if log:
        err = log[0]
        return f"line {err.line}: {err.message}"
    return str(e)


def _flatten(elem: etree._Element, prefix: str, out: dict[str, str], lists: tuple[str, ...] = (),
             escape: bool = False) -> None:
    for k, v in elem.attrib.items():
        _put(out, f"{prefix}@{k}", _escape(v) if escape else v)
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        path = f"{prefix}/{etree.QName(child).localname}" if prefix else etree.QName(child).localname
        item = escape or path in lists
        _put(out, path, _escape(child.text or "") if item else child.text or "")
        _flatten(child, path, out, lists, item)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|") if "|" in value or "\\" in value else value


def split_items(value: str) -> list[str]:
    """The items of a field under one of an :class:`XmlReader`'s ``lists`` paths, unescaped.

    ``"a|b"`` is two items; ``""`` is one empty item (one element without text): whether
    the element occurs at all is whether its field is in the row.
    """
    if "\\" not in value:
        return value.split("|")
    items: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == "|":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def _put(out: dict[str, str], key: str, value: str) -> None:
    if key in out:
        out[key] = f"{out[key]}|{value}"
    else:
        out[key] = value
