"""Reading readouts to score: text files, folders, JSONL/CSV/Parquet tables and standard input.

Every input yields either a :class:`Document` or a :class:`ReadFailure` (path and reason):
nothing is dropped silently, and one bad document never ends the run.

Decoding, per file (:func:`decode`): UTF-8 (with or without BOM; UTF-16 with a BOM); a file
that is mostly UTF-8 with a few bad bytes stays UTF-8, the bad bytes replaced by U+FFFD and
counted in ``Document.warning``; a file in another encoding throughout (cp1252, latin-1, ...)
is detected with charset-normalizer and decoded, with a warning naming the encoding.  Binary
files and empty documents are failures.

Document ids, unique within a run and the same from run to run:

* a text file: its path relative to the common folder of the inputs (a folder input counts as
  itself, a file as the folder holding it): ``score M in/`` gives ``a.txt``, ``sub/b.txt``;
  ``score M 2024/ 2025/`` gives ``2024/a.txt``, ``2025/a.txt``; ``score M x/a.txt`` gives
  ``a.txt``;
* a table row (JSONL, CSV, Parquet): the row's id field, prefixed with the table's relative
  path and ``#`` unless the table is the only input: ``score M docs.jsonl`` gives ``17``,
  ``score M a.jsonl b.jsonl`` gives ``a.jsonl#17``, ``b.jsonl#17``;
* standard input: ``stdin``.

An id met a second time (the same row id twice in a table, the same file given twice) is a
failure of the later document, naming the first.

Limits: a document (a text file, standard input, or a table row's text) larger than
``max_doc_bytes`` (:data:`DEFAULT_MAX_DOC_BYTES`) is a failure; no more than that many bytes
plus one are read from it, so ``/dev/zero`` or an endless pipe cannot exhaust memory.  A table
that is a regular file is read whole (Parquet in batches).

Every field of a table row other than the id and the text is kept in ``Document.meta`` and
comes out in each of the document's rows.
"""
from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md"}
TABLE_SUFFIXES = {".jsonl", ".csv", ".parquet"}
#: The largest document read (bytes); ``score --max-doc-bytes`` changes it.
DEFAULT_MAX_DOC_BYTES = 10_000_000

_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, under surrogateescape
_NON_ASCII = re.compile("[^\x00-\x7f]")


@dataclass
class Document:
    id: str
    text: str
    source: str = ""
    warning: str = ""
    #: The table row's other fields (date, source, url, ...), carried into every output row.
    meta: dict = field(default_factory=dict)


@dataclass
class ReadFailure:
    source: str
    reason: str
    id: str = ""


def decode(raw: bytes) -> tuple[str, str]:
    """Text and a warning ('' when clean).  Raises ValueError for binary or undecodable bytes.

    One bad byte in a UTF-8 file must not turn all its accents into mojibake: when the file has
    at least as many valid non-ASCII UTF-8 characters as bad bytes, it is read as UTF-8 and only
    the bad bytes are replaced (U+FFFD), counted in the warning (text in a legacy encoding almost
    never forms valid UTF-8 sequences by chance).  Only a file without such evidence of UTF-8
    goes to the detector.
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), ""
        except UnicodeDecodeError as exc:
            raise ValueError(f"UTF-16 (byte order mark) but not valid UTF-16 at offset {exc.start}") from None
    if b"\x00" in raw[:8192]:
        raise ValueError("binary file (NUL bytes), not text")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        first = exc.start
    text = raw.decode("utf-8", "surrogateescape")
    bad = len(_ESCAPED.findall(text))
    good = len(_NON_ASCII.findall(text)) - bad
    encoding = None if good and good >= bad else _detect(raw)
    if encoding is None:  # mostly UTF-8: keep it, mark the bad bytes
        line = raw.count(b"\n", 0, first) + 1
        return _ESCAPED.sub("\ufffd", text), (f"mostly UTF-8, but {bad} byte(s) are not and were replaced by "
                                              f"U+FFFD (the first, {raw[first]:#x}, at byte offset {first}, "
                                              f"line {line}); check those places")
    try:
        return raw.decode(encoding), (f"not valid UTF-8 (byte {raw[first]:#x} at offset {first}); read as "
                                      f"{encoding} (detected); save it as UTF-8 to be sure of its accents")
    except (UnicodeDecodeError, LookupError):
        raise ValueError(f"neither UTF-8 nor {encoding} (byte {raw[first]:#x} at offset {first})") from None


def _detect(raw: bytes) -> str | None:
    """The encoding charset-normalizer finds for ``raw`` (None: UTF-8 after all).  Among its
    least chaotic candidates cp1252 is preferred: readouts are French, and on a short text the
    detector ranks look-alikes first (mac_latin2 read 'Sénégal' as 'Sťnťgal')."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw))
    if not matches:
        raise ValueError("not UTF-8, and no other encoding fits its bytes")
    least = min(m.chaos for m in matches)
    if any("cp1252" in m.could_be_from_charset for m in matches if m.chaos <= least):
        return "cp1252"  # the same text as the look-alike ranked first, or as good a reading
    best = matches[0].encoding
    return None if best.replace("-", "_").startswith("utf_8") else best


def read_limited(stream, limit: int) -> bytes:
    """At most ``limit`` bytes of ``stream``; raises ValueError when it holds more."""
    raw = stream.read(limit + 1)
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if len(raw) > limit:
        raise ValueError(f"larger than the maximum document size ({limit:,} bytes); split it, or raise "
                         f"--max-doc-bytes")
    return raw


def _clean(text: str) -> str:
    """``text`` made writable as UTF-8: file names with undecodable bytes (surrogateescape) get
    U+FFFD, lone surrogates are spelled out (ids and sources go into every output row)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if not re.search("[\ud800-\udc7f\udd00-\udfff]", text)
                           else "backslashreplace").decode("utf-8", "replace")


def _text_document(ident: str, raw: bytes, source: str) -> Document | ReadFailure:
    try:
        text, warning = decode(raw)
    except ValueError as exc:
        return ReadFailure(source, str(exc), ident)
    if not text.strip():
        return ReadFailure(source, "empty document (no text)", ident)
    return Document(ident, text, source, warning)


def _json_safe(value):
    """A Parquet value as a JSON value (dates as ISO strings)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _row_document(row: dict, where: str, id_field: str, text_field: str, prefix: str, warning: str,
                  max_bytes: int) -> Document | ReadFailure:
    """One table row as a Document, or the reason it cannot be one."""
    ident = row.get(id_field)
    if ident is None or isinstance(ident, (bool, list, dict)) or str(ident).strip() == "":
        return ReadFailure(where, f"missing id (field {id_field!r} should be a non-empty string or number, "
                                  f"got {ident!r})")
    ident = str(ident)
    for key, value in row.items():  # a lone surrogate ("\ud800") cannot be written out as UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return ReadFailure(where, f"field {key!r} holds a lone surrogate (an invalid Unicode escape such as "
                                      f"\\ud800); fix the producer of this file", _clean(prefix + ident))
    ident = prefix + ident
    text = row.get(text_field)
    if not isinstance(text, str) or not text.strip():
        return ReadFailure(where, f"empty document (field {text_field!r} is empty or missing)", ident)
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        return ReadFailure(where, f"text larger than the maximum document size ({max_bytes:,} bytes); split it, "
                                  f"or raise --max-doc-bytes", ident)
    meta = {k: v for k, v in row.items() if k not in (id_field, text_field)}
    return Document(ident, text, where, warning, meta)


def _csv_rows(source: str, content: str) -> Iterator[tuple[int, dict | ValueError]]:
    """(line, row) of a CSV text; a row with more or fewer fields than the header (an unquoted
    comma) is a ValueError for that line, not a silently truncated row."""
    csv.field_size_limit(max(csv.field_size_limit(), len(content) + 1))
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield 1, ValueError(f"malformed CSV header ({exc})")
        return
    if header is None:
        return
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        yield 1, ValueError(f"the header names a column more than once: {twice}")
        return
    previous = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield previous + 1, ValueError(f"malformed CSV ({exc}); the rest of the file is not read")
            return
        start, previous = previous + 1, reader.line_num
        if not fields:
            continue
        if len(fields) != len(header):
            yield start, ValueError(f"{len(fields)} fields, but the header has {len(header)} ({', '.join(header)}): "
                                    "a comma or quote inside a field that is not quoted? Quote such fields")
            continue
        yield start, dict(zip(header, fields))


def _jsonl_rows(content: str) -> Iterator[tuple[int, dict | ValueError]]:
    # split on "\n" only: str.splitlines also splits on U+2028 and U+0085, which JSON writers
    # (ensure_ascii=False) leave raw inside strings
    for number, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"invalid JSON ({exc.msg})")
            continue
        yield number, obj if isinstance(obj, dict) else ValueError("not a JSON object")


def _parquet_rows(path: Path, raw: bytes | None = None) -> Iterator[tuple[int, dict | ValueError]]:
    import pyarrow.parquet as pq

    number = 0
    try:
        for batch in pq.ParquetFile(path if raw is None else io.BytesIO(raw)).iter_batches(batch_size=256):
            for row in batch.to_pylist():
                number += 1
                yield number, {str(k): _json_safe(v) for k, v in row.items()}
    except Exception as exc:  # pyarrow's errors: a damaged or foreign file
        yield number + 1, ValueError(f"unreadable Parquet ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                                     "the rest of the file is not read")


def _table_rows(path: Path, raw: bytes | None, id_field: str, text_field: str, prefix: str,
                max_bytes: int) -> Iterator[Document | ReadFailure]:
    source = str(path)
    warning = ""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows = _parquet_rows(path, raw)
    else:
        try:
            content, warning = decode(raw)
        except ValueError as exc:
            yield ReadFailure(source, str(exc))
            return
        rows = _csv_rows(source, content) if suffix == ".csv" else _jsonl_rows(content)
    seen: dict[str, int] = {}
    checked = False
    for number, row in rows:
        where = f"{source}:{number}"
        if isinstance(row, ValueError):
            yield ReadFailure(where, str(row))
            continue
        if not checked:
            checked = True
            missing = [f for f in (id_field, text_field) if f not in row]
            if missing and suffix != ".jsonl":  # a CSV/Parquet header lacks the columns: every row would fail
                yield ReadFailure(source, f"no column(s) {missing}; the columns are {list(row)} "
                                          f"(choose with --id-field/--text-field)")
                return
        item = _row_document(row, where, id_field, text_field, prefix, warning, max_bytes)
        if isinstance(item, Document):
            key = item.id
            if key in seen:
                yield ReadFailure(where, f"duplicate id {key[len(prefix):]!r} (first on line {seen[key]})", key)
                continue
            seen[key] = number
        yield item


def _common_root(inputs: list[str]) -> str:
    """The folder ids are relative to: the common folder of the inputs (a folder counts as
    itself, a file as its folder)."""
    bases = []
    for item in inputs:
        if item == "-":
            continue
        path = os.path.abspath(item)
        bases.append(path if os.path.isdir(path) else os.path.dirname(path))
    return os.path.commonpath(bases) if bases else os.getcwd()


def count_documents(inputs: list[str], max_bytes: int = 2_000_000_000) -> int | None:
    """How many documents ``inputs`` hold, for a progress bar's total, or None when that cannot be
    known without reading it (standard input) or would mean reading more than ``max_bytes`` of
    tables.  Counts entries, not what will score: failures count too."""
    total, table_bytes = 0, 0
    files: list[Path] = []
    for item in inputs:
        if item == "-":
            return None
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    for path in files:
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                total += pq.ParquetFile(path).metadata.num_rows
            elif suffix in (".jsonl", ".csv"):
                table_bytes += path.stat().st_size
                if table_bytes > max_bytes or not stat.S_ISREG(path.stat().st_mode):
                    return None
                content = path.read_bytes().decode("utf-8", errors="replace")
                total += (sum(1 for line in content.split("\n") if line.strip()) if suffix == ".jsonl"
                          else sum(1 for _ in _csv_rows(str(path), content)))
            else:
                total += 1
        except Exception:  # unreadable: the scoring pass reports it; the bar just has no total
            return None
    return total


def iter_documents(inputs: list[str], id_field: str = "id", text_field: str = "text",
                   stdin=None, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES) -> Iterator[Document | ReadFailure]:
    """Documents from each input, in order; folders recursively in sorted path order.  Ids are
    formed as the module docstring says, and each is yielded once (a later duplicate is a
    failure naming the first)."""
    first_source: dict[str, str] = {}
    for item in _iter_inputs(inputs, id_field, text_field, stdin, max_doc_bytes):
        item.source = _clean(item.source)
        item.id = _clean(item.id)
        if isinstance(item, Document):
            if item.id in first_source:
                yield ReadFailure(item.source, f"duplicate id {item.id!r} (first from {first_source[item.id]}); "
                                               "each document is scored once", item.id)
                continue
            first_source[item.id] = item.source
        yield item


def _iter_inputs(inputs, id_field, text_field, stdin, max_doc_bytes) -> Iterator[Document | ReadFailure]:
    for item in inputs:
        if item == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            try:
                raw = read_limited(stream, max_doc_bytes)
            except ValueError as exc:
                yield ReadFailure("-", str(exc), "stdin")
                continue
            yield _text_document("stdin", raw, "-")
            continue
        for entry in input_files([item], inputs):
            if isinstance(entry, ReadFailure):
                yield entry
            else:
                path, ident, prefix_rows = entry
                yield from _read_file(path, ident, id_field, text_field, prefix_rows, max_doc_bytes)


def input_files(items: list[str], inputs: list[str] | None = None
                ) -> Iterator[tuple[Path, str, bool] | ReadFailure]:
    """The files to read for ``items`` (paths and folders, of the run's ``inputs``: all of them
    by default), each as (path, document id, whether its table rows' ids get the prefix
    ``id#``), folders recursively in sorted path order; a file of a type not read, or a missing
    path, is a :class:`ReadFailure`."""
    inputs = items if inputs is None else inputs
    root = _common_root(inputs)
    only_table = len(inputs) == 1 and Path(inputs[0]).is_file()

    def ident_of(file: Path) -> str:
        return Path(os.path.relpath(os.path.abspath(file), root)).as_posix()

    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                suffix = file.suffix.lower()
                if suffix in TEXT_SUFFIXES | TABLE_SUFFIXES:
                    yield file, ident_of(file), True
                elif not file.name.startswith("."):
                    yield ReadFailure(str(file), f"skipped: unsupported file type {suffix or '(none)'!r} "
                                                 f"(expected {sorted(TEXT_SUFFIXES | TABLE_SUFFIXES)})")
        elif path.exists():
            yield path, ident_of(path), not only_table
        else:
            yield ReadFailure(item, "no such file or folder")


def _read_file(path: Path, ident: str, id_field: str, text_field: str, prefix_rows: bool,
               max_doc_bytes: int) -> Iterator[Document | ReadFailure]:
    is_table = path.suffix.lower() in TABLE_SUFFIXES
    try:
        info = path.stat()
        regular = stat.S_ISREG(info.st_mode)
        if is_table and path.suffix.lower() == ".parquet":
            raw = None
        elif is_table and regular:
            raw = path.read_bytes()
        elif regular and info.st_size > max_doc_bytes:
            yield ReadFailure(str(path), f"{info.st_size:,} bytes, larger than the maximum document size "
                                         f"({max_doc_bytes:,} bytes); split it, or raise --max-doc-bytes", ident)
            return
        else:  # a device or a pipe may never end: read no more than the limit
            with open(path, "rb") as f:
                raw = read_limited(f, max_doc_bytes)
    except OSError as exc:
        yield ReadFailure(str(path), f"cannot read: {exc.strerror or exc}")
        return
    except ValueError as exc:
        yield ReadFailure(str(path), str(exc), ident)
        return
    yield from parse_file(path, raw, ident, id_field, text_field, prefix_rows, max_doc_bytes)


def parse_file(path: Path, raw: bytes | None, ident: str, id_field: str = "id", text_field: str = "text",
               prefix_rows: bool = False, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES
               ) -> Iterator[Document | ReadFailure]:
    """The documents of one file whose bytes were read already (``raw``; None: a Parquet file
    read from ``path``), as :func:`iter_documents` yields them: a text file is one document with
    id ``ident``, a table one per row (ids prefixed with ``ident#`` when ``prefix_rows``).  The
    engines (:mod:`diplostance.distributed`) read the bytes their own way and parse them here."""
    if path.suffix.lower() in TABLE_SUFFIXES:
        yield from _table_rows(path, raw, id_field, text_field, f"{ident}#" if prefix_rows else "", max_doc_bytes)
    elif len(raw) > max_doc_bytes:
        yield ReadFailure(str(path), f"{len(raw):,} bytes, larger than the maximum document size "
                                     f"({max_doc_bytes:,} bytes); split it, or raise --max-doc-bytes", ident)
    else:
        yield _text_document(ident, raw, str(path))
