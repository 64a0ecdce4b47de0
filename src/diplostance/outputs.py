"""Writing sentence rows: JSONL, CSV or Parquet, atomically, resumable.

Rows are appended, one document at a time, to a hidden ``.<name>.partial.jsonl`` beside the
output and flushed; the final file is written and renamed into place only when every document
is done.  ``resume`` keeps the complete documents of an earlier partial (or finished) output
and skips them.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .labels import LABELS

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
COLUMNS = ["doc_id", "sentence_index", "n_sentences", "start", "end", "text", "labels", "primary",
           *[f"p_{label}" for label in LABELS], "windows", "long", "truncated", "model", "model_version", "source"]
#: A CSV cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...), +, -,
#: @, tab, CR): such text cells get a leading apostrophe, as OWASP recommends, and so does a
#: cell that starts with an apostrophe, so that :func:`read_rows` can always take it off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
#: CSV columns that are numbers or flags, never neutralised.
_TYPED = {"sentence_index", "n_sentences", "start", "end", "windows", "long", "truncated",
          *[f"p_{label}" for label in LABELS]}


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown output format {suffix or '(no extension)'!r}; "
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
                if key not in _TYPED and isinstance(value, str) and value.startswith("'"):
                    row[key] = value[1:]  # the apostrophe that neutralised a formula
            row["labels"] = [x for x in row["labels"].split("|") if x]
            for key in ("sentence_index", "n_sentences", "start", "end", "windows"):
                row[key] = int(row[key])
            for label in LABELS:
                row[f"p_{label}"] = float(row[f"p_{label}"])
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


class RowWriter:
    """Collects rows for ``path`` (or streams JSONL to ``stream`` when ``path`` is None)."""

    def __init__(self, path: str | Path | None, resume: bool = False, force: bool = False, stream=None):
        self.path = Path(path) if path else None
        self.stream = stream
        self.done: set[str] = set()
        if self.path is None:
            return
        self.format = output_format(self.path)
        self.partial = self.path.with_name(f".{self.path.name}.partial.jsonl")
        kept: list[dict] = []
        if resume:
            for source in (self.path, self.partial):
                if source.exists():
                    rows, done = complete_documents(read_rows(source))
                    kept += [r for r in rows if r["doc_id"] not in self.done]
                    self.done |= done
        elif self.path.exists() and not force:
            raise FileExistsError(f"{self.path}: output exists; use --resume to score only the documents it "
                                  f"lacks, or --force to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial, "w", encoding="utf-8")
        for row in kept:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def write_document(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if self.path is None:
            self.stream.write(text)
            self.stream.flush()
            return
        self._file.write(text)
        self._file.flush()

    def close(self) -> None:
        """Write the final file and rename it into place."""
        if self.path is None:
            return
        self._file.close()
        if self.format == "jsonl":
            os.replace(self.partial, self.path)
            return
        rows = read_rows(self.partial)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        if self.format == "csv":
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=columns(rows), extrasaction="ignore")
                writer.writeheader()
                for row in rows:
                    writer.writerow(csv_cells({**row, "labels": "|".join(row["labels"])}))
        else:
            import pyarrow.parquet as pq

            pq.write_table(parquet_table(rows), tmp)
        os.replace(tmp, self.path)
        self.partial.unlink()


def columns(rows: list[dict]) -> list[str]:
    """The fixed columns, then every other key of the rows (the inputs' metadata) in the order
    first met."""
    extra = dict.fromkeys(k for row in rows for k in row if k not in COLUMNS)
    return [*COLUMNS, *extra]


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


def parquet_table(rows: list[dict]):
    """A pyarrow table of all the rows' columns (``from_pylist`` alone keeps only the first
    row's keys); a metadata column whose values mix types is written as JSON text."""
    import pyarrow as pa

    names = columns(rows) if rows else COLUMNS
    data = {name: [row.get(name) for row in rows] for name in names}
    arrays = {}
    for name, values in data.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrays[name] = pa.array([None if v is None else v if isinstance(v, str)
                                     else json.dumps(v, ensure_ascii=False) for v in values])
    return pa.table(arrays)
