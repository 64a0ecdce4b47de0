"""Writing sentence rows: JSONL, CSV or Parquet, atomically, resumable, one writer at a time.

Rows are appended, one document at a time, to a hidden ``.<name>.partial.jsonl`` beside the
output and flushed; the final file is written and renamed into place only when every document
is done, so an existing output stays whole until its replacement is (``--force``).  ``resume``
keeps the complete documents of an earlier partial (or finished) output and skips them.

Beside the output, while a run writes it:

- ``.<name>.lock`` holds the writing process's id under an exclusive ``flock``: a second run on
  the same output refuses, naming it (the lock goes with the process, even on ``kill -9``);
- ``.<name>.partial.run.json`` records what produces the rows (model, model version, model path,
  backend), so that ``--resume`` with another model or backend refuses instead of mixing two
  models' rows in one file.  The rows themselves carry ``model`` and ``model_version`` too.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import DiplostanceError, OutputExistsError

try:
    import fcntl
except ImportError:  # not POSIX: no lock (two runs on one output are then the user's to avoid)
    fcntl = None


class OutputError(DiplostanceError, ValueError):
    """An output that cannot be written as asked (unknown format, a collision, rows of another
    model to resume); nothing was written."""

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
#: The fixed columns, around one ``p_<label>`` column per label of the model (:func:`columns`).
HEAD = ["doc_id", "sentence_index", "n_sentences", "start", "end", "text", "labels", "primary"]
TAIL = ["windows", "long", "truncated", "model", "model_version", "source"]
COLUMNS = HEAD + TAIL
#: A CSV cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...), +, -,
#: @, tab, CR): such text cells get a leading apostrophe, as OWASP recommends, and so does a
#: cell that starts with an apostrophe, so that :func:`read_rows` can always take it off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
#: CSV columns that are numbers or flags, never neutralised.
_TYPED = {"sentence_index", "n_sentences", "start", "end", "windows", "long", "truncated"}


def _probability_columns(row: dict) -> list[str]:
    """The ``p_<label>`` columns of a row: those between ``primary`` and ``windows``."""
    keys = list(row)
    try:
        return keys[keys.index("primary") + 1:keys.index("windows")]
    except ValueError:
        return [k for k in keys if k.startswith("p_")]


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"{path}: unknown output format {suffix or '(no extension)'!r}; "
                         f"expected one of {sorted(FORMATS)}")
    return FORMATS[suffix]


def read_rows(path: str | Path) -> list[dict]:
    """Rows of an output file in any supported format (a torn last JSONL line is ignored)."""
    path = Path(path)
    fmt = "jsonl" if path.name.endswith(".partial.jsonl") else output_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for key, value in row.items():
                if key not in _TYPED and not key.startswith("p_") and isinstance(value, str) and value.startswith("'"):
                    row[key] = value[1:]  # the apostrophe that neutralised a formula
            row["labels"] = [x for x in row["labels"].split("|") if x]
            for key in ("sentence_index", "n_sentences", "start", "end", "windows"):
                row[key] = int(row[key])
            for key in _probability_columns(row):
                row[key] = float(row[key])
            row["long"] = row["long"] == "True"
            row["truncated"] = row.get("truncated") == "True"
        return rows
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # torn write at the moment of a kill
    return rows


def complete_documents(rows: list[dict]) -> tuple[list[dict], set[str]]:
    """Rows of documents all of whose sentences are present, and those documents' ids."""
    by_doc: dict[str, list[dict]] = {}
    for row in rows:
        by_doc.setdefault(row["doc_id"], []).append(row)
    done = {d for d, rs in by_doc.items() if len(rs) == rs[0]["n_sentences"]
            and {r["sentence_index"] for r in rs} == set(range(rs[0]["n_sentences"]))}
    return [r for r in rows if r["doc_id"] in done], done


def _lock(path: Path) -> tuple[Path, int | None]:
    """Take the exclusive lock of output ``path`` (``.<name>.lock`` beside it) or refuse, naming
    the process that holds it."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return lock, None
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise OutputExistsError(f"{path}: another diplostance run (pid {holder}) is writing this output "
                                        f"now; wait for it to finish, or choose another --out") from None
            try:  # its holder may have removed the file between our open and flock: lock the new one
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        return lock, fd
    except OSError as exc:
        if isinstance(exc, OutputExistsError):
            raise
        raise OutputError(f"{path}: cannot write the output here: {exc.strerror or exc} "
                          f"({exc.filename or path.parent})") from exc


def describe_run(run: dict) -> str:
    return (f"model {run.get('model') or '?'} (version {run.get('model_version') or '?'})"
            + (f", backend {run['backend']}" if run.get("backend") else ""))


class RowWriter:
    """Collects rows for ``path`` (or streams JSONL to ``stream`` when ``path`` is None).

    Creating it checks everything and takes the output's lock, but writes nothing: the caller
    loads its model, then :meth:`start` opens the partial file (checking that resumed rows come
    from the same model and backend).  :meth:`close` puts the finished output in place;
    :meth:`release` gives the output up unfinished (the partial stays, for ``--resume``).
    """

    def __init__(self, path: str | Path | None, resume: bool = False, force: bool = False, stream=None):
        self.path = Path(path) if path else None
        self.stream = stream
        self.done: set[str] = set()
        self.previous: dict = {}  # what produced the rows kept by --resume (run record and rows)
        self._kept: list[dict] = []
        self._file = None
        self._lock_fd = None
        if self.path is None:
            return
        self.format = output_format(self.path)
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a folder; --out takes a file name (.jsonl, .csv or .parquet)")
        self.partial = self.path.with_name(f".{self.path.name}.partial.jsonl")
        self.record = self.path.with_name(f".{self.path.name}.partial.run.json")
        self._lock_path, self._lock_fd = _lock(self.path)
        try:
            if resume:
                for source in (self.path, self.partial):
                    if source.exists():
                        try:
                            rows, done = complete_documents(read_rows(source))
                        except (KeyError, TypeError, ValueError) as exc:
                            raise OutputError(f"{source}: not rows written by 'diplostance score' ({exc!r}), so "
                                              f"nothing to resume from; use --force to replace it") from None
                        self._kept += [r for r in rows if r["doc_id"] not in self.done]
                        self.done |= done
                if self.partial.exists() and self.record.exists():
                    try:
                        record = json.loads(self.record.read_text(encoding="utf-8"))
                    except (UnicodeDecodeError, ValueError):  # torn by a kill: the rows still say their model
                        record = {}
                    self.previous = record if isinstance(record, dict) else {}
            elif not force:
                if self.path.exists():
                    raise OutputExistsError(f"{self.path}: output exists; use --resume to score only the documents "
                                            f"it lacks, or --force to replace it")
                if self.partial.exists():
                    raise OutputExistsError(f"{self.path}: an interrupted run left its rows in {self.partial.name}; "
                                            f"use --resume to continue it, or --force to start again")
        except BaseException:
            self.release()
            raise

    def start(self, run: dict | None = None) -> None:
        """Open the partial file, once: the kept rows of ``--resume`` first (written to a
        temporary file and renamed, so a kill now loses none), then the new rows as they come.
        ``run`` (model, model_version, backend, ...) is recorded beside it; rows kept by
        ``--resume`` from another model or backend refuse the run, naming both."""
        if self.path is None or self._file is not None:
            return
        run = run or {}
        self._check_same_run(run)
        tmp = self.partial.with_name(self.partial.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for row in self._kept:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(tmp, self.partial)
            self.record.write_text(json.dumps(run, ensure_ascii=False), encoding="utf-8")
            self._file = open(self.partial, "a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the output here: {exc.strerror or exc} "
                              f"({exc.filename or self.partial})") from exc
        self._kept = []

    def _check_same_run(self, run: dict) -> None:
        keys = ("model", "model_version", "backend")
        sources = [{k: self.previous.get(k) for k in keys}]
        # the rows say which model wrote them, even without a run record (a finished output)
        sources += [{"model": m, "model_version": v, "backend": self.previous.get("backend")}
                    for m, v in sorted({(r.get("model"), r.get("model_version")) for r in self._kept}, key=str)]
        for before in sources:
            differs = [k for k in keys if before.get(k) and run.get(k) and before[k] != run[k]]
            if differs:
                raise OutputError(
                    f"{self.path}: --resume would mix two models' rows in one file: the rows so far come from "
                    f"{describe_run(before)}, this run uses {describe_run(run)} (they differ in {', '.join(differs)}). "
                    f"Resume with the same model and --backend, or use --force to score every document again "
                    f"with this one")

    def write_document(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if self.path is None:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise OutputError(f"standard output: cannot write: {exc.strerror or exc}") from exc
            return
        self.start()
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            raise OutputError(f"{self.partial}: cannot write: {exc.strerror or exc}; the documents written so far "
                              f"are kept: make room, then continue with --resume") from exc

    def release(self) -> None:
        """Give the output up unfinished: close the partial (kept for ``--resume``), drop the lock."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)  # while still held: a waiting run then locks a fresh file
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def discard(self) -> None:
        """Give the output up and remove this run's partial: the existing output stays as it was."""
        if self.path is None:
            return
        self.release()
        for path in (self.partial, self.record):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Write the final file and rename it into place."""
        if self.path is None:
            return
        self.start()
        try:
            self._close()
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}; the rows are kept in "
                              f"{self.partial.name}: make room, then run again with --resume") from exc
        finally:
            self.release()
        self.record.unlink(missing_ok=True)

    def _close(self) -> None:
        self._file.close()
        self._file = None
        if self.format == "jsonl":
            os.replace(self.partial, self.path)
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # Two streaming passes over the partial rows: their columns (and, for Parquet, each
        # column's type), then the rows themselves in batches; memory stays flat however many.
        names, kinds = scan_columns(_iter_rows(self.partial))
        if self.format == "csv":
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
                writer.writeheader()
                for row in _iter_rows(self.partial):
                    writer.writerow(csv_cells({**row, "labels": "|".join(row["labels"])}))
        else:
            import pyarrow.parquet as pq

            schema = parquet_schema(names, kinds)
            with pq.ParquetWriter(tmp, schema) as writer:
                batch: list[dict] = []
                for row in _iter_rows(self.partial):
                    batch.append(row)
                    if len(batch) == PARQUET_BATCH:
                        writer.write_table(parquet_table(batch, schema))
                        batch = []
                if batch or not names:
                    writer.write_table(parquet_table(batch, schema))
        os.replace(tmp, self.path)
        self.partial.unlink()


#: Rows per Parquet row group written at a time.
PARQUET_BATCH = 4096


def _iter_rows(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return  # torn write at the moment of a kill


def scan_columns(rows: Iterable[dict]) -> tuple[list[str], dict[str, set[str]]]:
    """The columns of ``rows`` (as :func:`columns` orders them) and the kinds of value each holds."""
    first, extra, kinds = None, {}, {}
    for row in rows:
        if first is None:
            first = row
        for key, value in row.items():
            extra.setdefault(key, None)
            if value is not None:
                kinds.setdefault(key, set()).add(_kind(value))
    names = columns([first] if first is not None else [])
    names += [k for k in extra if k not in names]
    return names, kinds


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "strings"
    return "json"


def parquet_schema(names: list[str], kinds: dict[str, set[str]]):
    """One Arrow type per column; a column whose values mix kinds is JSON text."""
    import pyarrow as pa

    types = {frozenset({"bool"}): pa.bool_(), frozenset({"int"}): pa.int64(), frozenset({"float"}): pa.float64(),
             frozenset({"int", "float"}): pa.float64(), frozenset({"str"}): pa.string(),
             frozenset({"strings"}): pa.list_(pa.string())}
    return pa.schema([(name, types.get(frozenset(kinds.get(name, {"str"})), pa.string())) for name in names])


def columns(rows: list[dict]) -> list[str]:
    """The fixed columns, then every other key of the rows (the inputs' metadata) in the order
    first met."""
    if not rows:
        return list(COLUMNS)
    probabilities = _probability_columns(rows[0])
    fixed = [*HEAD, *probabilities, *TAIL]
    extra = dict.fromkeys(k for row in rows for k in row if k not in fixed)
    return [*fixed, *extra]


def csv_cells(row: dict) -> dict:
    """A row as CSV cells: lists and tables as JSON, text that a spreadsheet would run as a
    formula neutralised (:data:`FORMULA_START`)."""
    cells = {}
    for key, value in row.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value, ensure_ascii=False)
        if key not in _TYPED and isinstance(value, str) and value.startswith(FORMULA_START):
            value = "'" + value
        cells[key] = value
    return cells


def parquet_table(rows: list[dict], schema=None):
    """A pyarrow table of ``rows`` with ``schema`` (default: from the rows themselves,
    :func:`scan_columns`); a value of a JSON-text column is written as JSON."""
    import pyarrow as pa

    if schema is None:
        schema = parquet_schema(*scan_columns(rows))
    arrays = []
    for field_ in schema:
        values = [row.get(field_.name) for row in rows]
        if field_.type == pa.string():
            values = [None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                      for v in values]
        arrays.append(pa.array(values, type=field_.type))
    return pa.Table.from_arrays(arrays, schema=schema)
