"""Scoring readouts: the Python API (:class:`StanceClassifier`) and ``diplostance score``."""
from __future__ import annotations

import argparse
import json

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .documents import DEFAULT_MAX_DOC_BYTES, Document, ReadFailure, iter_documents
from .labels import LABELS, primary_label
from .segment import Splitter, get_splitter

#: A sentence is scored on its first this many characters (its row says ``truncated`` and
#: ``long``).  No real sentence comes near it; a text without punctuation (a 5 MB one-line
#: "sentence") otherwise became 36,646 windows and 1.15 GB of token ids.
MAX_SENTENCE_CHARS = 20_000


@dataclass
class Prediction:
    """The classifier's answer for one sentence."""

    text: str
    labels: list[str]
    primary: str
    probabilities: dict[str, float]
    windows: int = 1
    #: The sentence was longer than ``MAX_SENTENCE_CHARS`` and scored on its beginning only.
    truncated: bool = False

    @property
    def long(self) -> bool:
        """True when the sentence exceeded the model's length and was scored in windows."""
        return self.windows > 1


@dataclass
class SentenceRecord(Prediction):
    doc_id: str = ""
    index: int = 0
    n_sentences: int = 0
    start: int = 0
    end: int = 0
    source: str = ""
    #: The input row's other fields (table inputs), added after the fixed columns.
    meta: dict = field(default_factory=dict)

    def row(self, model: str = "", version: str = "") -> dict:
        row = {"doc_id": self.doc_id, "sentence_index": self.index, "n_sentences": self.n_sentences,
               "start": self.start, "end": self.end, "text": self.text, "labels": self.labels,
               "primary": self.primary,
               **{f"p_{k}": round(float(v), 6) for k, v in self.probabilities.items()},
               "windows": self.windows, "long": self.long, "truncated": self.truncated, "model": model,
               "model_version": version, "source": self.source}
        return add_meta(row, self.meta)


def add_meta(row: dict, meta: dict) -> dict:
    """``row`` with the input's metadata after the fixed columns; a field named like a fixed
    column (an input's own ``source``) becomes ``meta_<name>``, so neither hides the other."""
    for key, value in meta.items():
        name = key
        while name in row:
            name = f"meta_{name}"
        row[name] = value
    return row


class StanceClassifier:
    """A trained model directory, ready to label sentences and readouts.

    >>> clf = StanceClassifier.load("models/offline")
    >>> clf.predict(["Le Canada condamne fermement ces frappes."])[0].labels
    """

    def __init__(self, path, meta, tokenizer, backend, splitter: Splitter, batch_size: int = 32):
        self.path = Path(path)
        self.meta = meta
        self.tokenizer = tokenizer
        self.backend = backend
        self.splitter = splitter
        self.batch_size = batch_size
        self.thresholds = np.asarray(meta.thresholds, dtype=np.float32)
        self.max_sentence_chars = MAX_SENTENCE_CHARS
        self.failures: list[ReadFailure] = []
        self.backend_reason = getattr(backend, "name", "")

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", splitter: str | Splitter = "default",
             batch_size: int = 32, threads: int | None = None,
             allow_unguarded: bool = False, device: str = "auto") -> "StanceClassifier":
        """``backend``: see :mod:`diplostance.backends`; ``auto`` (the default) picks the fastest
        one this machine runs natively and that passed the model's accuracy guard here (its name
        and why: ``backend_reason``).  One whose label decisions on this model agreed with fp32 less
        often than the accuracy guard requires (the record in the model's metadata) raises
        :class:`~diplostance.backends.GuardError` unless ``allow_unguarded``.  ``device``:
        ``auto`` (a GPU when PyTorch sees one), ``cpu`` or ``cuda``."""
        from .backends import check_guard, choose_backend, load_backend
        from .hardware import resolve_device
        from .modeling import read_meta

        meta = read_meta(path)  # validates the directory and its format version first
        device = resolve_device(device)
        if backend == "auto":
            backend, reason = choose_backend(meta, device)
        else:
            reason = f"{backend}, as asked"
        check_guard(meta, backend, path, allow_unguarded)
        if threads:
            import torch

            torch.set_num_threads(threads)
        from .modeling import load_tokenizer

        tokenizer = load_tokenizer(path)  # refuses one that reads French as <unk> only
        engine = load_backend(backend, path, threads=threads, device=device)
        split = get_splitter(splitter) if isinstance(splitter, str) else splitter
        clf = cls(path, meta, tokenizer, engine, split, batch_size)
        clf.backend_reason = reason
        return clf

    @property
    def name(self) -> str:
        return self.meta.name or self.path.name

    @property
    def version(self) -> str:
        return f"{self.meta.created} ({self.meta.training_data.get('fingerprint', '')[:19]})"

    # ------------------------------------------------------------------ sentences
    def predict_proba(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and windows per sentence, each scored on at most ``max_sentence_chars``
        characters; a bare string is one sentence."""
        from .inference import predict_proba

        texts = [s[:self.max_sentence_chars] for s in _items(sentences)]
        return predict_proba(self.backend, self.tokenizer, texts, self.meta.max_length, self.batch_size)

    def predict(self, sentences: Iterable[str] | str) -> list[Prediction]:
        """One prediction per sentence.  A bare string is one sentence (a list of one
        prediction), not a sequence of one-character sentences."""
        sentences = _items(sentences)
        if not sentences:
            return []
        probs, windows = self.predict_proba(sentences)
        return [self._prediction(text, p, w) for text, p, w in zip(sentences, probs, windows)]

    def _prediction(self, text: str, p: np.ndarray, windows: int) -> Prediction:
        labels = [name for name, x, t in zip(LABELS, p, self.thresholds) if x >= t]
        return Prediction(text, labels, primary_label(labels), {k: float(v) for k, v in zip(LABELS, p)}, int(windows),
                          len(text) > self.max_sentence_chars)

    # ------------------------------------------------------------------ documents
    def score(self, documents: Iterable[Document | tuple[str, str] | str] | str, chunk_sentences: int = 512,
              skip: set[str] | frozenset = frozenset()) -> Iterator[list[SentenceRecord]]:
        """Yield, per document and in input order, the list of its sentence records.

        A bare string is one document (id ``"0"``), as is each string of an iterable (id: its
        position); not one document per character.

        Sentences of several documents are batched together (chunks of about
        ``chunk_sentences``), so memory stays flat however many documents stream through.
        Documents whose id is in ``skip`` (already done: ``--resume``) are not yielded; they
        still count when chunks are formed, so the remaining documents are batched exactly as
        in an uninterrupted run and get bit-identical probabilities.
        """
        if isinstance(documents, str):  # streamed otherwise: never made a list
            documents = [documents]
        pending: list[tuple[Document, list]] = []
        count = 0
        for i, doc in enumerate(documents):
            if isinstance(doc, str):
                doc = Document(str(i), doc)
            elif isinstance(doc, tuple):
                doc = Document(*doc)
            spans = self.splitter.split(doc.text)
            pending.append((doc, spans))
            count += len(spans)
            if count >= chunk_sentences:
                yield from self._flush(pending, skip)
                pending, count = [], 0
        if pending:
            yield from self._flush(pending, skip)

    def _flush(self, pending, skip=frozenset()) -> Iterator[list[SentenceRecord]]:
        if all(doc.id in skip for doc, _ in pending):
            return
        texts = [doc.text[s.start:s.end] for doc, spans in pending for s in spans]
        probs, windows = self.predict_proba(texts) if texts else (np.zeros((0, len(LABELS))), np.zeros(0))
        k = 0
        for doc, spans in pending:
            records = []
            for index, span in enumerate(spans):
                pred = self._prediction(texts[k], probs[k], windows[k])
                records.append(SentenceRecord(**vars(pred), doc_id=doc.id, index=index, n_sentences=len(spans),
                                              start=span.start, end=span.end, source=doc.source,
                                              meta=getattr(doc, "meta", {})))
                k += 1
            if doc.id not in skip:
                yield records

    def score_files(self, paths: list[str], id_field: str = "id", text_field: str = "text") -> Iterator[list[SentenceRecord]]:
        """Score files and folders; unreadable inputs are collected in ``self.failures``."""
        def docs():
            for item in iter_documents(paths, id_field, text_field):
                if isinstance(item, ReadFailure):
                    self.failures.append(item)
                else:
                    yield item

        yield from self.score(docs())


def _items(items):
    """``items`` as a list, a bare string being one item: ``list("Bonjour.")`` would be eight."""
    return [items] if isinstance(items, str) else list(items)


# --------------------------------------------------------------------------- summaries

def document_summary(records: list[SentenceRecord], top: int = 3) -> dict:
    """Counts per label and the most confident sentences of each label."""
    counts = {label: sum(label in r.labels for r in records) for label in LABELS}
    counts["none"] = sum(not r.labels for r in records)
    best = {}
    for label in LABELS:
        chosen = sorted((r for r in records if label in r.labels), key=lambda r: -r.probabilities[label])[:top]
        best[label] = [{"sentence_index": r.index, "probability": round(r.probabilities[label], 4), "text": r.text}
                       for r in chosen]
    return {"sentences": len(records), "counts": counts, "top": best}


# --------------------------------------------------------------------------- CLI

def whole_number(minimum: int):
    """An argparse ``type``: an int of at least ``minimum``, refused with a message that says so
    (``--batch-size 0`` would otherwise end in a traceback deep in the batching)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def add_score_arguments(p: argparse.ArgumentParser) -> None:
    from .backends import BACKENDS

    p.add_argument("model", help="model directory (e.g. models/offline)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".txt/.md files, folders (recursive), .jsonl/.csv/.parquet tables, or - for standard "
                        "input. Document ids (doc_id): a file's path relative to the common folder of the "
                        "inputs; a table row's id field, prefixed with the table's path and '#' when there are "
                        "several inputs (a.jsonl#17); 'stdin'. A table row's other fields are copied into each "
                        "of its output rows (one named like a fixed column gets the prefix meta_)")
    p.add_argument("--out", help="output file: .jsonl, .csv or .parquet (default: JSONL on standard output)")
    p.add_argument("--html", metavar="DIR", help="write one HTML page per document and an index here")
    p.add_argument("--summary", metavar="FILE", help="write a per-document summary (JSON) here")
    p.add_argument("--batch-size", type=whole_number(1), default=32,
                   help="sentences per batch of the transformers and onnx backends (fp32, bf16 and int8 fill "
                        "each batch with 2048 tokens)")
    p.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                   help="auto (default: the fastest backend this machine runs natively that passed the model's "
                        "accuracy guard here), fp32 (exact), bf16 or int8 (faster where the CPU has the kernels: "
                        "see the README), onnx, onnx-int8 (after 'diplostance export'), transformers (the unchanged "
                        "reference forward), cuda-fp32, cuda-bf16, cuda-fp16 (on a GPU)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto (default: a GPU when PyTorch sees one), cpu or cuda")
    p.add_argument("--allow-unguarded", action="store_true",
                   help="use --backend even where the model's accuracy guard says its decisions stray from fp32")
    p.add_argument("--threads", type=whole_number(0), default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--splitter", default="default", help="sentence splitter (default, punkt, regex, ...)")
    p.add_argument("--id-field", default="id", help="id column of .jsonl/.csv inputs")
    p.add_argument("--text-field", default="text", help="text column of .jsonl/.csv inputs")
    p.add_argument("--resume", action="store_true", help="skip documents already complete in --out")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true", help="no progress on standard error")
    p.add_argument("--max-doc-bytes", type=_positive_int, default=DEFAULT_MAX_DOC_BYTES, metavar="N",
                   help=f"a document larger than this is a failure, not read further (default "
                        f"{DEFAULT_MAX_DOC_BYTES:,}); a sentence is scored on its first {MAX_SENTENCE_CHARS:,} "
                        f"characters (its rows say truncated)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _input_files(inputs: list[str]) -> set[Path]:
    files = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files |= {p.resolve() for p in path.rglob("*") if p.is_file()}
        elif path.exists():
            files.add(path.resolve())
    return files


def _check_not_input(target: str | None, inputs: set[Path], what: str) -> None:
    from .outputs import OutputError

    if not target:
        return
    resolved = Path(target).resolve()
    if resolved in inputs or (Path(target).is_dir() and any(resolved in p.parents for p in inputs)):
        raise OutputError(f"{what} {target} is one of the inputs; refusing to write over an input")


def check_inputs(inputs: list[str]) -> None:
    """Every input exists and is of a kind we read, checked before any output is touched: a
    typo'd input must not end as an empty output written over a good one (``--force``)."""
    from .documents import TABLE_SUFFIXES, TEXT_SUFFIXES
    from .errors import DiplostanceError

    known = sorted(TEXT_SUFFIXES | TABLE_SUFFIXES)
    for item in inputs:
        if item == "-":
            continue
        path = Path(item)
        if not path.exists():
            raise DiplostanceError(f"{item}: no such file or folder (an input); nothing was scored and no output "
                                   f"touched. Check the path")
        if path.is_file() and path.suffix and path.suffix.lower() not in known:
            raise DiplostanceError(f"{item}: unknown input format {path.suffix!r}; expected a folder, - (standard "
                                   f"input), or a file ending in {', '.join(known)}")


def check_outputs(a: argparse.Namespace) -> None:
    """``--out``, ``--summary`` and ``--html``: none is an input or another of them, and none
    already there is replaced without ``--force`` (``--out`` itself: :class:`RowWriter`)."""
    from .errors import OutputExistsError
    from .outputs import OutputError

    inputs = _input_files(a.inputs)
    outputs = ((a.out, "--out"), (a.summary, "--summary"), (a.html, "--html"))
    for target, what in outputs:
        _check_not_input(target, inputs, what)
    named = [(what, Path(t).resolve()) for t, what in outputs if t]
    for i, (what, path) in enumerate(named):
        for other, path2 in named[i + 1:]:
            if path == path2:
                raise OutputError(f"{what} and {other} are the same path ({path}); give each output its own")
    if a.html:
        html = Path(a.html)
        for what, path in named:
            if what != "--html" and html.resolve() in path.parents and path.suffix.lower() in (".html", ".htm"):
                raise OutputError(f"{what} {path} is inside the --html folder, where the pages are written; "
                                  f"choose another name or folder")
        if html.exists() and not html.is_dir():
            raise OutputError(f"--html {html}: is a file; --html takes a folder")
        if html.is_dir() and any(html.iterdir()) and not a.force:
            raise OutputExistsError(f"--html {html}: folder exists and is not empty; use --force to write over its "
                                    f"pages (with --resume too, after an interrupted run), or choose another folder")
    if a.summary:
        summary = Path(a.summary)
        if summary.is_dir():
            raise OutputError(f"--summary {summary}: is a folder; --summary takes a file name (.json)")
        if summary.exists() and not a.force:
            raise OutputExistsError(f"--summary {summary}: file exists; use --force to replace it, or choose "
                                    f"another file")


def score_command(a: argparse.Namespace) -> int:
    """``diplostance score``: returns 0 when every document was scored, 1 when some failed."""
    from tqdm import tqdm

    from .outputs import RowWriter

    # Every check before any output is touched; then the lock on --out (nothing written yet).
    check_inputs(a.inputs)
    check_outputs(a)
    writer = RowWriter(a.out, resume=a.resume, force=a.force, stream=sys.stdout)
    try:
        clf = StanceClassifier.load(a.model, backend=a.backend, splitter=a.splitter, batch_size=a.batch_size,
                                    threads=a.threads or None, allow_unguarded=a.allow_unguarded,
                                    device=getattr(a, "device", "auto"))
        # the backend that runs (what --backend resolved to), for --resume to compare
        writer.start({"model": clf.name, "model_version": clf.version, "model_path": str(a.model),
                      "backend": getattr(clf.backend, "name", None) or a.backend})
    except BaseException:
        writer.release()
        raise
    failures: list[ReadFailure] = []
    summaries: dict[str, dict] = {}
    html = None
    if a.html:
        from .report import HtmlWriter

        html = HtmlWriter(a.html, clf.name)
    bar = tqdm(desc="scoring", unit="doc", disable=a.quiet, file=sys.stderr, dynamic_ncols=True)
    started, n_sent, n_docs, skipped = time.time(), 0, 0, 0

    def documents():
        nonlocal skipped
        for item in iter_documents(a.inputs, a.id_field, a.text_field,
                                   max_doc_bytes=getattr(a, "max_doc_bytes", DEFAULT_MAX_DOC_BYTES)):
            if isinstance(item, ReadFailure):
                failures.append(item)
                print(f"diplostance: warning: {item.source}: {item.reason}", file=sys.stderr)
            else:
                if item.id in writer.done:
                    skipped += 1
                if item.warning:
                    print(f"diplostance: warning: {item.source}: {item.warning}", file=sys.stderr)
                yield item

    docs_by_id: dict[str, Document] = {}

    def tracked():
        for doc in documents():
            if doc.id not in writer.done:
                docs_by_id[doc.id] = doc
            yield doc

    try:
        for records in clf.score(tracked(), skip=writer.done):
            if not records:
                continue
            doc = docs_by_id.pop(records[0].doc_id)
            writer.write_document([r.row(clf.name, clf.version) for r in records])
            n_docs += 1
            if a.summary:  # kept only when asked for, so memory stays flat otherwise
                summaries[doc.id] = {"source": doc.source, **document_summary(records)}
            if html is not None:
                html.add(doc, records)
            n_sent += len(records)
            bar.update(1)
            bar.set_postfix(sentences=n_sent, per_s=f"{n_sent / max(time.time() - started, 1e-9):.0f}")
        # documents whose text held no sentence at all (whitespace only is a read failure already)
        for doc in docs_by_id.values():
            failures.append(ReadFailure(doc.source, "no sentence found", doc.id))
        if n_docs == 0 and not writer.done and a.out and Path(a.out).exists():
            writer.discard()  # nothing scored (every input failed): an existing output is not emptied
            print(f"diplostance: warning: no document scored; {a.out} kept as it was", file=sys.stderr)
        else:
            writer.close()
    finally:
        bar.close()
        writer.release()
    if a.summary:
        summary = {"model": clf.name, "model_path": str(a.model), "backend": clf.backend.name,
                   "backend_reason": clf.backend_reason,
                   "documents_scored": n_docs, "documents_skipped_resume": skipped,
                   "sentences": n_sent, "failures": [vars(f) for f in failures], "documents": summaries}
        Path(a.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(a.summary).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    if html is not None:
        html.close(failures)
    if not a.quiet:
        seconds = max(time.time() - started, 1e-9)
        print(f"scored {n_docs} document(s), {n_sent} sentences in {seconds:.1f} s "
              f"({n_sent / seconds:.0f} sentences/s) with backend {clf.backend.name}; {len(failures)} failed; "
              f"{skipped} skipped (resume)\n  backend {clf.backend_reason}", file=sys.stderr)
    return 1 if failures else 0


