"""Reading readouts to score: text files, folders, JSONL/CSV tables and standard input.

Every input yields either a :class:`Document` or a :class:`ReadFailure` (path and reason):
nothing is dropped silently.  Text is decoded as UTF-8, UTF-8 with BOM, then cp1252 (with a
warning in ``Document.warning``); binary files and empty documents are failures.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md"}
TABLE_SUFFIXES = {".jsonl", ".csv"}


@dataclass
class Document:
    id: str
    text: str
    source: str = ""
    warning: str = ""


@dataclass
class ReadFailure:
    source: str
    reason: str
    id: str = ""


def decode(raw: bytes) -> tuple[str, str]:
    """Text and a warning ('' when clean UTF-8).  Raises ValueError for binary or undecodable bytes."""
    if b"\x00" in raw[:8192]:
        raise ValueError("binary file (NUL bytes), not text")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), ""
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        first = exc.start
    try:
        return raw.decode("cp1252"), f"not valid UTF-8 (byte {raw[first]:#x} at offset {first}); read as cp1252"
    except UnicodeDecodeError as exc:
        raise ValueError(f"neither UTF-8 nor cp1252 (byte {raw[exc.start]:#x} at offset {exc.start})") from None


def _text_document(ident: str, raw: bytes, source: str) -> Document | ReadFailure:
    try:
        text, warning = decode(raw)
    except ValueError as exc:
        return ReadFailure(source, str(exc), ident)
    if not text.strip():
        return ReadFailure(source, "empty document (no text)", ident)
    return Document(ident, text, source, warning)


def _table_rows(path: Path, raw: bytes, id_field: str, text_field: str) -> Iterator[Document | ReadFailure]:
    source = str(path)
    try:
        content, warning = decode(raw)
    except ValueError as exc:
        yield ReadFailure(source, str(exc))
        return
    seen: dict[str, int] = {}
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))
        missing = [f for f in (id_field, text_field) if f not in (reader.fieldnames or [])]
        if missing:
            yield ReadFailure(source, f"no column(s) {missing}; the columns are {reader.fieldnames} "
                                      f"(choose with --id-field/--text-field)")
            return
        rows = ((reader.line_num, row) for row in reader)
    else:
        def _jsonl():
            for number, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, ValueError(f"invalid JSON ({exc.msg})")
                    continue
                yield number, obj if isinstance(obj, dict) else ValueError("not a JSON object")

        rows = _jsonl()
    for number, row in rows:
        where = f"{source}:{number}"
        if isinstance(row, ValueError):
            yield ReadFailure(where, str(row))
            continue
        ident, text = row.get(id_field), row.get(text_field)
        if ident is None or str(ident).strip() == "":
            yield ReadFailure(where, f"missing id (field {id_field!r})")
            continue
        ident = str(ident)
        if ident in seen:
            yield ReadFailure(where, f"duplicate id {ident!r} (first on line {seen[ident]})", ident)
            continue
        seen[ident] = number
        if not isinstance(text, str) or not text.strip():
            yield ReadFailure(where, f"empty document (field {text_field!r} is empty or missing)", ident)
            continue
        yield Document(ident, text, where, warning)


def iter_documents(inputs: list[str], id_field: str = "id", text_field: str = "text",
                   stdin=None) -> Iterator[Document | ReadFailure]:
    """Documents from each input, in order; folders recursively in sorted path order."""
    for item in inputs:
        if item == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            raw = stream.read()
            yield _text_document("stdin", raw if isinstance(raw, bytes) else raw.encode("utf-8"), "-")
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                suffix = file.suffix.lower()
                if suffix in TEXT_SUFFIXES | TABLE_SUFFIXES:
                    yield from _read_file(file, file.relative_to(path).as_posix(), id_field, text_field)
                elif not file.name.startswith("."):
                    yield ReadFailure(str(file), f"skipped: unsupported file type {suffix or '(none)'!r} "
                                                 f"(expected {sorted(TEXT_SUFFIXES | TABLE_SUFFIXES)})")
        elif path.exists():
            yield from _read_file(path, path.as_posix(), id_field, text_field)
        else:
            yield ReadFailure(item, "no such file or folder")


def _read_file(path: Path, ident: str, id_field: str, text_field: str) -> Iterator[Document | ReadFailure]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        yield ReadFailure(str(path), f"cannot read: {exc.strerror or exc}")
        return
    if path.suffix.lower() in TABLE_SUFFIXES:
        yield from _table_rows(path, raw, id_field, text_field)
    else:
        yield _text_document(ident, raw, str(path))
