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
* a file declared cp1252 or ISO-8859-1 that is UTF-8: a UTF-8 byte order mark, or any
  well-formed UTF-8 multi-byte sequence (read as declared it would store ``SÃ¸ren`` for
  ``Søren`` over the clean records); checked on the stream, chunk by chunk;
* a CSV header with missing or unknown columns (the reason names the format's missing
  columns and the positions of unknown ones, never a value: a headerless file's first
  line is data);
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
# A well-formed UTF-8 multi-byte sequence (RFC 3629: no overlong forms, no surrogates).
# In a file declared cp1252 or ISO-8859-1 it means the file was written as UTF-8: read as
# declared, ``Søren`` would become ``SÃ¸ren``. Real single-byte Danish text almost never
# holds one: its letters (æ ø å, 0xe5-0xf8) are followed by ASCII, and a lead byte
# (Â-ß, à-ï, ð-ô) followed by one to three of 0x80-0xbf (punctuation, ° ½ « » …) is not a
# spelling any export writes.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}")
# Every such sequence starts with a lead byte (0xc2-0xf4) followed by a continuation byte
# (0x80-0xbf): bytes.translate to one letter per class and bytes.find the pair ("LC") run
# at memory speed (~1 ms a MiB); the full pattern is only tried where a pair is.
_BYTE_CLASS = bytes(ord("L") if 0xc2 <= b <= 0xf4 else ord("C") if 0x80 <= b <= 0xbf else ord(".")
                    for b in range(256))
_SINGLE_BYTE = frozenset({"cp1252", "iso8859-1"})  # codecs.lookup() names of the declared 8-bit encodings
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

def _first_utf8_sequence(data: bytes) -> re.Match[bytes] | None:
    """The first well-formed UTF-8 multi-byte sequence in ``data``, if any (see :data:`_BYTE_CLASS`)."""
    classes = data.translate(_BYTE_CLASS)
    pos = classes.find(b"LC")
    while pos >= 0:
        m = _UTF8_MULTIBYTE.match(data, pos)
        if m is not None:
            return m
        pos = classes.find(b"LC", pos + 1)
    return None


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
        self._single_byte = codecs.lookup(encoding).name in _SINGLE_BYTE
        self._tail = b""  # the last bytes of the previous chunk (a UTF-8 sequence may span two)
        self._codec = "utf-8" if encoding == "utf-8-sig" else encoding

    def _reject(self, offset: int, why: str) -> FileRejected:
        return FileRejected(f"file is not valid {self._encoding}: {why} at byte offset {offset}",
                            file=self._file, rule="encoding", offset=offset)

    def _refuse_utf8(self, chunk: bytes) -> None:
        """Refuse a single-byte file that is UTF-8 (a BOM, or any UTF-8 multi-byte sequence).

        Cheap: an all-ASCII chunk (most of any export) is passed by one C-level check; the
        search runs only over chunks with a byte >= 0x80, joined to the previous chunk's
        last three bytes so a sequence split between reads is still seen.
        """
        if self._offset == 0 and chunk.startswith(codecs.BOM_UTF8):
            raise self._wrong_encoding(0, "it starts with a UTF-8 byte order mark (BOM)")
        if chunk.isascii():
            self._tail = b""
            return
        data = self._tail + chunk
        m = _first_utf8_sequence(data)
        if m is not None:
            offset = self._offset - len(self._tail) + m.start()
            raise self._wrong_encoding(offset, "bytes " + " ".join(f"0x{b:02x}" for b in m.group())
                                       + f" at byte offset {offset} are a UTF-8 multi-byte character")
        self._tail = chunk[-3:]

    def _wrong_encoding(self, offset: int, why: str) -> FileRejected:
        declared = {"cp1252": "cp1252 (Windows-1252)", "iso-8859-1": "ISO-8859-1"}.get(self._encoding,
                                                                                         self._encoding)
        return FileRejected(
            f"file is UTF-8 encoded, not {declared} as its source declares: {why}. Nothing from it "
            f"is stored (read as {declared} its letters would be garbled, e.g. ø as Ã¸). Next step: "
            f"have the source system export it again as {declared} (or convert it, e.g. "
            f"iconv -f UTF-8 -t {'CP1252' if self._encoding == 'cp1252' else 'ISO-8859-1'}) "
            f"and drop it in again", file=self._file, rule="encoding", offset=offset)

    def decode(self, chunk: bytes) -> str:
        """Decode the next chunk (``b""`` at the end), checking it."""
        if self._single_byte and chunk:
            self._refuse_utf8(chunk)
        pending = len(self._decoder.getstate()[0])
        start = self._offset - pending
        bom = 3 if self._offset == 0 and self._encoding == "utf-8-sig" and chunk.startswith(codecs.BOM_UTF8) \
            else 0
        start += bom  # the decoder drops the BOM: text (and its error positions) start after it
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise self._reject(start + e.start,
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
        # The reason names the format's own columns only, never a cell of this line: in a
        # file without its header the first line is a data row (names, a CPR), and a typo'd
        # header cell is found by its position.
        missing = [c for c in self.columns if c not in names]
        unknown = [i for i, c in enumerate(names, 1) if c not in self.columns]
        dupes = [c for c in self.columns if names.count(c) > 1]
        problems = []
        if len(missing) == len(self.columns):
            problems.append("no header row: the first line names none of the format's columns")
        if missing:
            problems.append("missing columns: " + ", ".join(missing))
        if unknown and len(missing) < len(self.columns):
            problems.append(f"{len(unknown)} unknown column{'s' if len(unknown) > 1 else ''} "
                            f"(at position{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))})")
        if dupes:
            problems.append("duplicate columns: " + ", ".join(dupes))
        others = [d for d in (",", ";", "\t", "|") if d != self.delimiter]
        wrong = next((d for d in others if (missing or unknown) and sum(  # split on d, the columns appear
            c.strip().strip('"') in self.columns for n in names for c in n.split(d)) >= 2), None)
        if wrong is not None:  # names the delimiters only, never a cell
            shown = {"\t": "tab"}.get(wrong, wrong)
            problems.append(f"the header holds '{shown}': is the file separated by '{shown}'? the "
                            f"{self.name} format separates columns by '{self.delimiter}'")
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


_PROLOG_LIMIT = 1 << 20
_XML_SPACE = b" \t\r\n"  # XML's white space (production S); not \v or \f, which XML forbids


def refuse_doctype(head: bytes, file: str, *, complete: bool = True) -> None:
    """Raise ``FileRejected`` unless the prolog before the root element is plainly harmless.

    ``head`` is the file's first :data:`_PROLOG_LIMIT` bytes (``complete``: the whole file).
    The prolog is read as the XML parser reads it (XML 1.0, production ``prolog``): an
    optional UTF-8 BOM, then only XML white space, comments (``<!--`` … ``-->``, the
    closing ``-->`` not overlapping the opening) and processing instructions (``<?`` …
    ``?>``, the XML declaration among them), up to the ``<`` of the root element. A
    DOCTYPE (with or without entities) or any other declaration is refused
    (``xml_hostile``): no stafet format has one, so every DOCTYPE is hostile or wrong
    (XXE, billion laughs, external DTDs). Anything else before the root — a second BOM,
    text, a vertical tab, a prolog longer than :data:`_PROLOG_LIMIT` however it is
    padded — is refused as ``xml_syntax``: nothing the parser could read past, so no
    DOCTYPE can hide behind it. The parser is configured against DTDs as well, and
    reads the file in the format's encoding whatever its declaration says, so both see
    the same characters.
    """
    i = 3 if head.startswith(codecs.BOM_UTF8) else 0
    n = len(head)
    while True:
        while i < n and head[i] in _XML_SPACE:
            i += 1
        if i >= n:
            if complete:
                return  # nothing but a prolog: the parser says "no root element"
            raise FileRejected(f"XML prolog is longer than {_PROLOG_LIMIT} bytes before the root element",
                               file=file, rule="xml_syntax")
        if head.startswith(b"<?", i):
            end, close = head.find(b"?>", i + 2), 2
        elif head.startswith(b"<!--", i):
            end, close = head.find(b"-->", i + 4), 3
        elif head.startswith(b"<!", i):
            raise FileRejected("XML with a DOCTYPE or other declaration is refused (DTD/entities)",
                               file=file, rule="xml_hostile")
        elif head.startswith(b"<", i) and i + 1 < n and _name_start(head[i + 1]):
            return  # the root element
        elif head.startswith(b"<", i) and i + 1 >= n and complete:
            return  # a file cut after its "<": the parser refuses it
        else:
            raise FileRejected(f"XML has content the format does not allow before its root element "
                               f"(byte offset {i})", file=file, rule="xml_syntax", offset=i)
        if end < 0:
            raise FileRejected("XML prolog is too long or not terminated", file=file, rule="xml_syntax")
        i = end + close


def _name_start(byte: int) -> bool:
    """A byte that can begin an XML name in UTF-8 (ASCII letter, ``_``, ``:``, or a multi-byte lead)."""
    return byte >= 0xc2 or (byte < 0x80 and chr(byte).isalpha()) or byte in b"_:"


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
        _CheckedBytes(fh, self.encoding, file).decode(head)  # a wrong encoding is named as such first
        refuse_doctype(head, file, complete=len(head) < _PROLOG_LIMIT)
        del head
        fh.seek(0)
        checked = _CheckedBytes(fh, self.encoding, file)
        schema = load_schema(XSD_DIR / self.xsd)
        tag = f"{{{self.namespace}}}{self.record}"
        context = etree.iterparse(
            checked, events=("end",), tag=tag, schema=schema, resolve_entities=False,
            no_network=True, load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True,
            encoding=_codec_name(self.encoding))
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


def _codec_name(encoding: str) -> str:
    """The name libxml2 knows a format's encoding by (its declaration in the file is not asked)."""
    return "utf-8" if encoding in ("utf-8", "utf-8-sig") else encoding


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
                              no_network=True, load_dtd=False, huge_tree=False,
                              encoding=_codec_name(encoding))
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
