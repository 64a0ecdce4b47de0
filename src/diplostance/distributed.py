"""Scoring across machines with Ray Data: the same rows as local scoring, as a Parquet dataset.

    diplostance score MODEL INPUT... --engine ray [--address auto|ray://HOST:PORT] [--workers N] --out DIR/

Ray is only the engine.  Files are read by Ray (``read_binary_files``) and parsed by
:func:`diplostance.documents.parse_file`, so ids, sources, decoding and read failures are those
of local scoring; each actor of an ``ActorPoolStrategy`` loads the model once and turns batches of
documents into rows with :func:`diplostance.score.score_batch`, the function local scoring uses;
``write_parquet`` writes the rows into ``DIR/``.  A document that fails is a row of the errors
table ``DIR/_errors/`` (written by the actor that met it; readers of ``DIR`` skip folders whose
name starts with ``_``), never dropped.  ``DIR/_run.json`` says which model wrote the rows, so that
``--resume`` refuses another one; ``--resume`` skips the documents whose rows are all in ``DIR``.

:func:`score_dataset` is the Python entry point for a Ray pipeline of one's own.  Ray is imported
here only inside functions: the package imports without it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .documents import DEFAULT_MAX_DOC_BYTES, Document, ReadFailure
from .errors import DiplostanceError, OutputExistsError
from .score import Tally

INSTALL = 'pip install -c constraints.txt -e ".[ray]"'
RUN_FILE = "_run.json"
ERRORS_DIR = "_errors"
#: Documents per batch handed to an actor: its sentences are then batched together, as locally.
DOCS_PER_BATCH = 64
#: The types of the fixed columns, the same in every file of the dataset whatever a batch holds.
FIXED_KINDS = {"doc_id": "str", "sentence_index": "int", "n_sentences": "int", "start": "int", "end": "int",
               "text": "str", "labels": "strings", "primary": "str", "windows": "int", "long": "bool",
               "truncated": "bool", "model": "str", "model_version": "str", "source": "str"}
#: The who-to-whom columns (:meth:`SentenceRecord.party_fields`), where the rows have them: the
#: spans and the per-label parties as JSON text, as local scoring writes a column whose values
#: mix empty lists and objects.
PARTY_KINDS = {"actors": "strings", "targets": "strings", "actor_spans": "json", "target_spans": "json",
               "parties": "json"}
#: CPUs asked by each task that reads files or writes rows: a share of one, so that reading and
#: writing always fit beside the actors (with whole CPUs, Ray Data's reservations starved the
#: reading for minutes on a 2-CPU cluster whose other CPU an actor held).  Parsing asks it too,
#: which also keeps Ray from fusing it into the actors: fused, all the documents of one file
#: went to one actor, however many there were.
IO_CPUS = 0.25
DOCUMENT_COLUMNS = ("doc_id", "text", "source", "warning", "meta", "error")


class RayMissingError(DiplostanceError, ImportError):
    """``--engine ray`` without Ray installed."""


class RayEngineError(DiplostanceError, ValueError):
    """A Ray run that cannot start as asked (its output, its workers); nothing was scored."""


def import_ray():
    """Ray and Ray Data, or a one-line error naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayMissingError(f"--engine ray needs Ray Data, which is not installed here ({exc.name or exc}); "
                              f"install it with: {INSTALL}") from None
    return ray


# --------------------------------------------------------------------------- inside the workers

def _document_table(items: list[Document | ReadFailure]):
    """Documents (and the failures met reading them) as a table of :data:`DOCUMENT_COLUMNS`."""
    import pyarrow as pa

    columns = {name: [] for name in DOCUMENT_COLUMNS}
    for item in items:
        failed = isinstance(item, ReadFailure)
        columns["doc_id"].append(item.id)
        columns["text"].append("" if failed else item.text)
        columns["source"].append(item.source)
        columns["warning"].append("" if failed else item.warning)
        columns["meta"].append("{}" if failed else json.dumps(item.meta, ensure_ascii=False))
        columns["error"].append(item.reason if failed else "")
    return pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()})


def _clean_item(item):
    from .documents import _clean

    item.source, item.id = _clean(item.source), _clean(item.id)
    return item


def read_files(batch, id_field: str = "id", text_field: str = "text",
               max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, idents: dict | None = None):
    """``map_batches`` function: files read by ``read_binary_files(include_paths=True)`` (columns
    ``bytes``, ``path``) into documents, parsed as local scoring parses them; ``idents`` maps each
    path to its document id and whether its rows' ids get the prefix (:func:`plan_files`)."""
    from .documents import parse_file

    items = []
    for raw, path in zip(batch.column("bytes").to_pylist(), batch.column("path").to_pylist()):
        ident, prefix = (idents or {}).get(path) or (idents or {}).get(os.path.abspath(path)) or (path, True)
        for item in parse_file(Path(path), raw, ident, id_field, text_field, prefix, max_doc_bytes):
            item = _clean_item(item)
            if isinstance(item, Document) and item.warning:
                print(f"diplostance: warning: {item.source}: {item.warning}", file=sys.stderr)
            items.append(item)
    return _document_table(items)


def rows_to_documents(batch, id_field: str = "id", text_field: str = "text", source_field: str = "path",
                      max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES):
    """``map_batches`` function: rows of a table (an id, a text, other fields) into documents, each
    checked as a table row of local scoring is (:func:`diplostance.documents._row_document`);
    ``source_field``, where the rows have it, is the documents' source and not copied."""
    from .documents import _json_safe, _row_document

    items = []
    for row in batch.to_pylist():
        row = {str(k): _json_safe(v) for k, v in row.items()}
        source = str(row.pop(source_field, "") or "")
        items.append(_clean_item(_row_document(row, source, id_field, text_field, "", "", max_doc_bytes)))
    return _document_table(items)


def rows_table(rows: list[dict], labels: list[str]):
    """Rows as an Arrow table whose fixed columns have one type in every batch."""
    from .outputs import parquet_schema, parquet_table, scan_columns

    names, kinds = scan_columns(rows)
    if not rows:
        names = [*FIXED_KINDS][:8] + [f"p_{label}" for label in labels] + [*FIXED_KINDS][8:]
    fixed = {**FIXED_KINDS, **PARTY_KINDS, **{f"p_{label}": "float" for label in labels}}
    return parquet_table(rows, parquet_schema(names, {**kinds, **{k: {v} for k, v in fixed.items()}}))


def failures_table(failures: list[ReadFailure]):
    import pyarrow as pa

    return pa.table({"doc_id": pa.array([f.id for f in failures], pa.string()),
                     "source": pa.array([f.source for f in failures], pa.string()),
                     "reason": pa.array([f.reason for f in failures], pa.string())})


def _filesystem(where: str):
    """(pyarrow filesystem, path) for a local folder or a URI (s3://, gs://, ...)."""
    from pyarrow import fs

    if "://" in where:
        return fs.FileSystem.from_uri(where)
    return fs.LocalFileSystem(), os.path.abspath(where)


def write_failures(errors: str, failures: list[ReadFailure]) -> None:
    """A table of ``failures`` into the folder ``errors``: a file of its own, written under a
    hidden name and renamed, so a reader never sees half of one."""
    import pyarrow.parquet as pq

    if not failures:
        return
    filesystem, folder = _filesystem(errors)
    filesystem.create_dir(folder, recursive=True)
    name = f"{uuid.uuid4().hex}.parquet"
    tmp = f"{folder}/.{name}.tmp"
    pq.write_table(failures_table(failures), tmp, filesystem=filesystem)
    filesystem.move(tmp, f"{folder}/{name}")


class Scorer:
    """The callable class of ``map_batches``: one loaded model per actor, ``threads`` torch
    threads (Ray also sets OMP_NUM_THREADS from the actor's ``num_cpus``)."""

    def __init__(self, model_dir: str, errors: str, threads: int = 1, backend: str = "auto",
                 batch_size: int = 32, splitter: str = "default", allow_unguarded: bool = False,
                 device: str = "auto", skip: frozenset = frozenset(), actors: bool = True,
                 attribution: str = "auto"):
        import torch

        from .classifier import StanceClassifier

        torch.set_num_threads(threads)
        self.clf = StanceClassifier.load(model_dir, backend=backend, splitter=splitter, batch_size=batch_size,
                                         threads=threads, allow_unguarded=allow_unguarded, device=device)
        self.clf.attribution = attribution
        if actors:
            self.clf.attributor  # noqa: B018  (an unknown method or a missing model fails before any row)
        self.actors = actors
        self.errors = errors
        self.skip = frozenset(skip)

    def __call__(self, batch):
        from .score import score_batch

        documents, failures = [], []
        for row in batch.to_pylist():
            if row["doc_id"] in self.skip:
                continue
            if row["error"]:
                failures.append(ReadFailure(row["source"], row["error"], row["doc_id"]))
            else:
                documents.append(Document(row["doc_id"], row["text"], row["source"], row["warning"],
                                          json.loads(row["meta"])))
        rows, failed = score_batch(self.clf, documents, actors=self.actors)
        write_failures(self.errors, failures + failed)
        return rows_table(rows, self.clf.labels.names)


# --------------------------------------------------------------------------- the pipeline

def score_documents_dataset(docs, model_dir: str | Path, *, errors: str, workers: int = 1, threads: int = 1,
                            backend: str = "auto", batch_size: int = 32, splitter: str = "default",
                            allow_unguarded: bool = False, device: str = "auto", skip=frozenset(),
                            docs_per_batch: int = DOCS_PER_BATCH, actors: bool = True, attribution: str = "auto"):
    """A dataset of documents (:data:`DOCUMENT_COLUMNS`) into a dataset of sentence rows."""
    from ray.data import ActorPoolStrategy

    # Blocks of one batch each: an actor takes whole blocks, so a file read as one block would go
    # to one actor however many there are.
    docs = docs.repartition(target_num_rows_per_block=docs_per_batch)
    return docs.map_batches(
        Scorer, batch_format="pyarrow", batch_size=docs_per_batch, compute=ActorPoolStrategy(size=workers),
        num_cpus=threads, fn_constructor_kwargs=dict(
            model_dir=str(Path(model_dir).resolve()), errors=errors, threads=threads, backend=backend,
            batch_size=batch_size, splitter=splitter, allow_unguarded=allow_unguarded, device=device,
            skip=frozenset(skip), actors=actors, attribution=attribution))


def score_dataset(ds, model_dir: str | Path, *, errors: str, id_field: str = "id", text_field: str = "text",
                  source_field: str = "path", workers: int = 1, threads: int = 1, backend: str = "auto",
                  batch_size: int = 32, splitter: str = "default", allow_unguarded: bool = False,
                  device: str = "auto", max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, skip=frozenset(),
                  docs_per_batch: int = DOCS_PER_BATCH, actors: bool = True, attribution: str = "auto"):
    """Score a Ray dataset of documents (``id_field``, ``text_field``, any other fields, which
    are copied into each row) with the model directory ``model_dir``: a dataset of sentence rows,
    the columns of local scoring (with ``actors``, who takes each stance towards whom, by
    ``attribution``).  ``workers`` actors of ``threads`` CPUs each load the model once.
    Documents that fail (no id, no text, no sentence, ...) go to a table in the folder or URI
    ``errors``.  Ids must be unique: each batch is checked, not the whole dataset.

    >>> rows = score_dataset(ray.data.read_parquet("s3://bucket/readouts/"), "models/offline-e5",
    ...                      errors="s3://bucket/scored/_errors", workers=8, threads=2)
    >>> rows.write_parquet("s3://bucket/scored/")
    """
    docs = ds.map_batches(rows_to_documents, batch_format="pyarrow", num_cpus=IO_CPUS, fn_kwargs=dict(
        id_field=id_field, text_field=text_field, source_field=source_field, max_doc_bytes=max_doc_bytes))
    return score_documents_dataset(docs, model_dir, errors=errors, workers=workers, threads=threads,
                                   backend=backend, batch_size=batch_size, splitter=splitter,
                                   allow_unguarded=allow_unguarded, device=device, skip=skip,
                                   docs_per_batch=docs_per_batch, actors=actors, attribution=attribution)


# --------------------------------------------------------------------------- the command

@dataclass
class RaySummary(Tally):
    """What :func:`score_with_ray` did."""

    model: str
    out: str
    workers: int
    threads: int
    startup_seconds: float = 0.0

    def line(self) -> str:
        seconds = max(self.seconds, 1e-9)
        return (f"scored {self.documents_scored} document(s), {self.sentences} sentences in {seconds:.1f} s "
                f"({self.documents_scored / seconds:.1f} documents/s) with Ray, {self.workers} actor(s) of "
                f"{self.threads} CPU(s); {len(self.failures)} failed"
                + (f" (see {Path(self.out) / ERRORS_DIR})" if self.failures else "")
                + f"; {self.documents_skipped_resume} skipped (resume)")


def plan_files(inputs: list[str]) -> tuple[list[str], dict[str, tuple[str, bool]], list[ReadFailure]]:
    """The files to read (absolute paths; globs expanded), each one's id and prefix choice as local
    scoring forms them, and the failures met listing them (unsupported types in folders)."""
    import glob

    from .documents import input_files
    from .score import check_inputs

    expanded: list[str] = []
    for item in inputs:
        if item == "-":
            raise RayEngineError("--engine ray reads files, not standard input (-); save the text to a file")
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches:
            raise RayEngineError(f"{item}: no file matches this pattern (an input); nothing was scored")
        expanded += matches
    check_inputs(expanded)
    files, idents, failures = [], {}, []
    for entry in input_files(expanded):
        if isinstance(entry, ReadFailure):
            failures.append(entry)
            continue
        path, ident, prefix = entry
        path = os.path.abspath(path)
        if path in idents:
            failures.append(ReadFailure(path, "the same file given twice; scored once"))
            continue
        idents[path] = (ident, prefix)
        files.append(path)
    return files, idents, failures


def check_out(out: str | None, resume: bool, force: bool) -> Path:
    """``--out`` of a Ray run: a folder, new, or one of ours to continue (``--resume``) or
    replace (``--force``)."""
    from .outputs import FORMATS

    if not out:
        raise RayEngineError("--engine ray writes a Parquet dataset: give --out DIR/ (a folder)")
    path = Path(out)
    if path.suffix.lower() in FORMATS and not path.is_dir():
        raise RayEngineError(f"--out {out}: --engine ray writes a Parquet dataset into a folder, not a "
                             f"{path.suffix} file; give a folder name such as {path.with_suffix('')}/")
    if path.exists() and not path.is_dir():
        raise RayEngineError(f"--out {out}: is a file; --engine ray writes a Parquet dataset into a folder")
    if path.is_dir() and any(path.iterdir()):
        ours = (path / RUN_FILE).is_file()
        if not ours and (resume or force):
            raise OutputExistsError(f"--out {out}: folder is not empty and holds no {RUN_FILE}, so it is not a "
                                    f"diplostance output; choose another folder")
        if not (resume or force):
            raise OutputExistsError(f"--out {out}: folder exists and is not empty; use --resume to score only the "
                                    f"documents it lacks, or --force to replace it")
        if force and not resume:
            shutil.rmtree(path)
    return path


def done_documents(out: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """Ids of the documents all of whose rows are in the dataset ``out``, and the (model,
    model_version) pairs of its rows.  A file that cannot be read (torn by a kill) is set aside
    under a hidden name and its documents are scored again."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    done: set[str] = set()
    models: set[tuple[str, str]] = set()
    for file in dataset_files(out):
        try:
            table = pq.read_table(file, columns=["doc_id", "sentence_index", "n_sentences", "model",
                                                 "model_version"])
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors: a torn or foreign file
            aside = file.with_name(f".{file.name}.unreadable")
            file.rename(aside)
            print(f"diplostance: warning: {file}: unreadable ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                  f"set aside as {aside.name}, its documents are scored again", file=sys.stderr)
            continue
        counts = table.group_by("doc_id").aggregate([("sentence_index", "count_distinct"),
                                                     ("n_sentences", "max")])
        complete = pc.equal(counts["sentence_index_count_distinct"], counts["n_sentences_max"])
        done |= set(counts.filter(complete)["doc_id"].to_pylist())
        pairs = table.group_by(["model", "model_version"]).aggregate([])
        models |= set(zip(pairs["model"].to_pylist(), pairs["model_version"].to_pylist()))
    return done, models


def dataset_files(out: str | Path) -> list[Path]:
    """The row files of the dataset ``out``: its Parquet files outside folders and names that
    start with ``_`` or ``.`` (the errors table, files set aside)."""
    out = Path(out)
    return sorted(f for f in out.rglob("*.parquet")
                  if not any(part.startswith(("_", ".")) for part in f.relative_to(out).parts))


def read_dataset(out: str | Path):
    """The rows of the dataset ``out`` as one Arrow table.  Files may differ in their metadata
    columns (a batch of text files has none): the schemas are unified, a column missing from a
    file is null in its rows."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    files = [str(f) for f in dataset_files(out)]
    if not files:
        return pa.table({})
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    return pads.dataset(files, schema=schema, format="parquet").to_table()


def read_failures(out: Path) -> list[ReadFailure]:
    import pyarrow.parquet as pq

    failures = []
    for file in sorted((out / ERRORS_DIR).glob("*.parquet")):
        for row in pq.read_table(file).to_pylist():
            failures.append(ReadFailure(row["source"], row["reason"], row["doc_id"] or ""))
    return failures


def count_rows(out: Path) -> tuple[int, int]:
    """(documents, sentence rows) in the dataset ``out``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    documents = sentences = 0
    for file in dataset_files(out):
        index = pq.read_table(file, columns=["sentence_index"])["sentence_index"]
        sentences += len(index)
        documents += pc.sum(pc.equal(index, 0)).as_py() or 0
    return documents, sentences


def cluster_cpus(ray) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def start_ray(address: str | None, quiet: bool = False):
    """Connect to the cluster at ``address`` (``auto``: the one ``ray start`` began on this
    machine; ``ray://HOST:PORT``), or start a local one; a running connection is reused."""
    import logging

    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=True,
                 logging_level=logging.ERROR if quiet else logging.WARNING)
    if quiet:  # Ray Data's notes (plan, progress) too; warnings and errors still show
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def score_with_ray(model: str | Path, inputs: list[str], out: str | None, *, address: str | None = None,
                   workers: int = 0, threads: int = 1, backend: str = "auto", device: str = "auto",
                   allow_unguarded: bool = False, batch_size: int = 32, splitter: str = "default",
                   id_field: str = "id", text_field: str = "text", resume: bool = False, force: bool = False,
                   quiet: bool = False, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
                   docs_per_batch: int = DOCS_PER_BATCH, actors: bool = True, attribution: str = "auto") -> RaySummary:
    """``diplostance score --engine ray``: score ``inputs`` (files, folders, globs) into the Parquet
    dataset ``out`` on the Ray cluster at ``address`` (None: a local one), with ``workers`` actors
    of ``threads`` CPUs each (0 workers: as many as the cluster's CPUs allow, one left for reading)."""
    from .classifier import model_name, model_version
    from .model_dir import read_meta

    import_ray()  # before any check: without Ray, the one message that says how to install it
    meta = read_meta(model)  # the model directory is checked here, not in every actor
    name, version = model_name(model, meta), model_version(meta)
    files, idents, failures = plan_files(inputs)
    out_dir = check_out(out, resume, force)
    done: set[str] = set()
    if resume and out_dir.is_dir():
        done, models = done_documents(out_dir)
        other = sorted((m, v) for m, v in models if (m, v) != (name, version))
        if other:
            raise RayEngineError(f"--out {out}: --resume would mix two models' rows in one dataset: the rows so far "
                                 f"come from model {other[0][0]} (version {other[0][1]}), this run uses model {name} "
                                 f"(version {version}); resume with the same model, or use --force")
        shutil.rmtree(out_dir / ERRORS_DIR, ignore_errors=True)  # every failed document is tried again
    started = time.time()
    ray = start_ray(address, quiet)
    ready = time.time()
    cpus = cluster_cpus(ray)
    if not workers:
        workers = max(1, (cpus - 1) // threads)
    if workers * threads >= cpus:
        raise RayEngineError(f"--workers {workers} x {threads} CPU(s) = {workers * threads} would take every CPU of the "
                             f"cluster ({cpus}), and Ray Data would then wait forever for one to read with (ray#44687); "
                             f"use at most {max(1, (cpus - 1) // threads)} worker(s), or --threads {max(1, (cpus - 1) // workers)}")
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = not quiet
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RUN_FILE).write_text(json.dumps({"model": name, "model_version": version, "model_path": str(model),
                                                "backend": backend, "engine": "ray"}, ensure_ascii=False),
                                    encoding="utf-8")
    errors = str(out_dir.resolve() / ERRORS_DIR)
    write_failures(errors, [f for f in failures if f.id not in done])
    result = RaySummary(name, str(out_dir), workers, threads)
    before = count_rows(out_dir)
    if files:
        docs = ray.data.read_binary_files(files, include_paths=True, num_cpus=IO_CPUS).map_batches(
            read_files, batch_format="pyarrow", batch_size=1, num_cpus=IO_CPUS, fn_kwargs=dict(
                id_field=id_field, text_field=text_field, max_doc_bytes=max_doc_bytes, idents=idents))
        rows = score_documents_dataset(docs, model, errors=errors, workers=workers, threads=threads, backend=backend,
                                       batch_size=batch_size, splitter=splitter, allow_unguarded=allow_unguarded,
                                       device=device, skip=frozenset(done), docs_per_batch=docs_per_batch,
                                       actors=actors, attribution=attribution)
        rows.write_parquet(str(out_dir.resolve()), ray_remote_args={"num_cpus": IO_CPUS})
    after = count_rows(out_dir)
    result.documents_scored, result.sentences = after[0] - before[0], after[1] - before[1]
    result.documents_skipped_resume = len(done)
    result.failures = read_failures(out_dir)
    result.startup_seconds = ready - started
    result.seconds = time.time() - started
    return result
