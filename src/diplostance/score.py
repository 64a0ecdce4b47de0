"""Batch scoring: :func:`score_inputs` reads files, folders, tables or standard input, labels
every sentence with a model directory and writes the rows (JSONL, CSV or Parquet), the HTML view
and the per-document summary; ``diplostance score`` and ``diplostance demo`` are thin wrappers
over it.  Nothing is dropped silently: every input that cannot be read is a failure in the
returned summary, and no input is ever written over."""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .classifier import SentenceRecord, StanceClassifier
from .documents import DEFAULT_MAX_DOC_BYTES, Document, ReadFailure, count_documents, iter_documents
from .labels import DEFAULT, NONE, LabelSet


@dataclass(kw_only=True)
class Tally:
    """What a scoring run counted, whatever engine ran it (local, Ray)."""

    documents_scored: int = 0
    documents_skipped_resume: int = 0
    sentences: int = 0
    seconds: float = 0.0
    failures: list[ReadFailure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every document was scored, 1 when some failed."""
        return 1 if self.failures else 0


@dataclass
class ScoreSummary(Tally):
    """What :func:`score_inputs` did."""

    model: str
    model_path: str
    backend: str
    backend_reason: str
    #: The files written: ``out``, ``summary``, ``html`` (the index page).
    outputs: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        seconds = max(self.seconds, 1e-9)
        return (f"scored {self.documents_scored} document(s), {self.sentences} sentences in {seconds:.1f} s "
                f"({self.sentences / seconds:.0f} sentences/s) with backend {self.backend}; {len(self.failures)} "
                f"failed; {self.documents_skipped_resume} skipped (resume)\n  backend {self.backend_reason}")

    def to_dict(self) -> dict:
        return {"model": self.model, "model_path": self.model_path, "backend": self.backend,
                "backend_reason": self.backend_reason, "documents_scored": self.documents_scored,
                "documents_skipped_resume": self.documents_skipped_resume, "sentences": self.sentences,
                "seconds": round(self.seconds, 3), "failures": [vars(f) for f in self.failures],
                "outputs": self.outputs}


def document_summary(records: list[SentenceRecord], labels: LabelSet = DEFAULT, top: int = 3) -> dict:
    """Counts per label and the most confident sentences of each label."""
    counts = {label: sum(label in r.labels for r in records) for label in labels}
    counts[NONE] = sum(not r.labels for r in records)
    best = {}
    for label in labels:
        chosen = sorted((r for r in records if label in r.labels), key=lambda r: -r.probabilities[label])[:top]
        best[label] = [{"sentence_index": r.index, "probability": round(r.probabilities[label], 4), "text": r.text}
                       for r in chosen]
    return {"sentences": len(records), "counts": counts, "top": best}


# --------------------------------------------------------------------------- documents -> rows


@dataclass
class Scored:
    """One document's sentence records and their output rows."""

    document: Document
    records: list[SentenceRecord]
    rows: list[dict]


def score_documents(clf: StanceClassifier, documents: Iterable[Document],
                    skip: set[str] | frozenset = frozenset(), actors: bool = True) -> Iterator[Scored | ReadFailure]:
    """The one path from documents to rows, for local scoring and for every engine (Ray): per
    document not in ``skip``, in input order, its :class:`Scored` rows, or a :class:`ReadFailure`
    when its text holds no sentence.  Sentences of several documents are batched together as
    :meth:`StanceClassifier.score` does (documents in ``skip`` still count when batches are
    formed, so a resumed run gets the probabilities of an uninterrupted one).  ``actors``: the
    rows say who takes each stance and towards whom (:meth:`StanceClassifier.score`)."""
    fed: deque[Document] = deque()

    def feed():
        for doc in documents:
            if doc.id not in skip:
                fed.append(doc)
            yield doc

    for records in clf.score(feed(), skip=skip, actors=actors):  # one list per document not skipped, in order
        doc = fed.popleft()
        if not records:
            yield ReadFailure(doc.source, "no sentence found", doc.id)
            continue
        yield Scored(doc, records, [r.row(clf.name, clf.version) for r in records])


def score_batch(clf: StanceClassifier, documents: list[Document], skip: set[str] | frozenset = frozenset(),
                actors: bool = True) -> tuple[list[dict], list[ReadFailure]]:
    """A batch of documents as (rows, failures), through :func:`score_documents`; an engine's
    workers call it on their share.  When scoring the batch raises, each document is scored
    alone, and one that still raises is a failure naming the exception: one bad document never
    takes a batch's rows with it."""
    try:
        return _rows_and_failures(score_documents(clf, documents, skip, actors))
    except Exception:  # noqa: BLE001 - isolated below, document by document
        rows, failures = [], []
        for doc in documents:
            if doc.id in skip:
                continue
            try:
                r, f = _rows_and_failures(score_documents(clf, [doc], actors=actors))
            except Exception as exc:  # noqa: BLE001 - the document's failure, reported
                r, f = [], [ReadFailure(doc.source, f"scoring failed: {type(exc).__name__}: {exc}", doc.id)]
            rows += r
            failures += f
        return rows, failures


def _rows_and_failures(items: Iterable[Scored | ReadFailure]) -> tuple[list[dict], list[ReadFailure]]:
    rows, failures = [], []
    for item in items:
        if isinstance(item, ReadFailure):
            failures.append(item)
        else:
            rows += item.rows
    return rows, failures


# --------------------------------------------------------------------------- CLI


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


def check_outputs(inputs: list[str], out: str | None, summary: str | None, html: str | None,
                  force: bool = False) -> None:
    """``--out``, ``--summary`` and ``--html``: none is an input or another of them, and none
    already there is replaced without ``--force`` (``--out`` itself: :class:`RowWriter`)."""
    from .errors import OutputExistsError
    from .outputs import OutputError

    files = _input_files(inputs)
    outputs = ((out, "--out"), (summary, "--summary"), (html, "--html"))
    for target, what in outputs:
        _check_not_input(target, files, what)
    named = [(what, Path(t).resolve()) for t, what in outputs if t]
    for i, (what, path) in enumerate(named):
        for other, path2 in named[i + 1:]:
            if path == path2:
                raise OutputError(f"{what} and {other} are the same path ({path}); give each output its own")
    if html:
        html = Path(html)
        for what, path in named:
            if what != "--html" and html.resolve() in path.parents and path.suffix.lower() in (".html", ".htm"):
                raise OutputError(f"{what} {path} is inside the --html folder, where the pages are written; "
                                  f"choose another name or folder")
        if html.exists() and not html.is_dir():
            raise OutputError(f"--html {html}: is a file; --html takes a folder")
        if html.is_dir() and any(html.iterdir()) and not force:
            raise OutputExistsError(f"--html {html}: folder exists and is not empty; use --force to write over its "
                                    f"pages (with --resume too, after an interrupted run), or choose another folder")
    if summary:
        summary = Path(summary)
        if summary.is_dir():
            raise OutputError(f"--summary {summary}: is a folder; --summary takes a file name (.json)")
        if summary.exists() and not force:
            raise OutputExistsError(f"--summary {summary}: file exists; use --force to replace it, or choose "
                                    f"another file")


def score_inputs(model: str | Path, inputs: list[str], out: str | None = None, html: str | None = None,
                 summary: str | None = None, *, backend: str = "auto", device: str = "auto",
                 allow_unguarded: bool = False, threads: int = 0, batch_size: int = 32,
                 splitter: str = "default", id_field: str = "id", text_field: str = "text",
                 resume: bool = False, force: bool = False, quiet: bool = False,
                 max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, stream=None, actors: bool = True,
                 attribution: str = "auto") -> ScoreSummary:
    """Score ``inputs`` (paths, folders, tables, or ``-`` for standard input) with the model
    directory ``model``; rows go to ``out`` (.jsonl, .csv, .parquet; JSONL on ``stream``, standard
    output by default, when None), one HTML page per document to the folder ``html``, a JSON
    summary per document to ``summary``.  ``resume`` skips the documents already complete in
    ``out``; ``force`` replaces existing outputs.  Every check runs before any output is touched.
    Warnings and progress go to standard error unless ``quiet``.  ``actors``: every row says who
    takes each stance and towards whom (``actors``, ``targets``, their spans, ``parties`` per
    label; ``attribution``: the method, :class:`diplostance.parties.Attributor`)."""
    from tqdm import tqdm

    from .outputs import RowWriter

    stream = sys.stdout if stream is None else stream
    check_inputs(inputs)
    check_outputs(inputs, out, summary, html, force)
    writer = RowWriter(out, resume=resume, force=force, stream=stream)
    try:
        clf = StanceClassifier.load(model, backend=backend, splitter=splitter, batch_size=batch_size,
                                    threads=threads or None, allow_unguarded=allow_unguarded, device=device)
        clf.attribution = attribution
        if actors:
            clf.attributor  # noqa: B018  (an unknown method or a missing model fails before any row)
        # the backend that runs (what backend resolved to), for --resume to compare
        writer.start({"model": clf.name, "model_version": clf.version, "model_path": str(model),
                      "backend": clf.backend.name})
    except BaseException:
        writer.release()
        raise
    result = ScoreSummary(clf.name, str(model), clf.backend.name, clf.backend_reason)
    summaries: dict[str, dict] = {}
    pages = None
    if html:
        from .report import HtmlWriter

        pages = HtmlWriter(html, clf.name, clf.labels)
    total = None if quiet else count_documents(inputs)  # a total and an ETA where the inputs are countable
    bar = tqdm(desc="scoring", unit="doc", total=total, disable=quiet, file=sys.stderr, dynamic_ncols=True)
    started = time.time()

    def warn(source: str, what: str) -> None:
        print(f"diplostance: warning: {source}: {what}", file=sys.stderr)

    def documents():
        for item in iter_documents(inputs, id_field, text_field, max_doc_bytes=max_doc_bytes):
            if isinstance(item, ReadFailure):
                result.failures.append(item)
                warn(item.source, item.reason)
                bar.update(1)
                continue
            if item.id in writer.done:
                result.documents_skipped_resume += 1
                bar.update(1)
            if item.warning:
                warn(item.source, item.warning)
            yield item

    try:
        for item in score_documents(clf, documents(), skip=writer.done, actors=actors):
            if isinstance(item, ReadFailure):  # a document whose text held no sentence at all
                result.failures.append(item)
                continue
            doc, records = item.document, item.records
            writer.write_document(item.rows)
            result.documents_scored += 1
            if summary:  # kept only when asked for, so memory stays flat otherwise
                summaries[doc.id] = {"source": doc.source, **document_summary(records, clf.labels)}
            if pages is not None:
                pages.add(doc, records)
            result.sentences += len(records)
            bar.update(1)
            bar.set_postfix(sentences=result.sentences,
                            per_s=f"{result.sentences / max(time.time() - started, 1e-9):.0f}")
        if result.documents_scored == 0 and not writer.done and out and Path(out).exists():
            writer.discard()  # nothing scored (every input failed): an existing output is not emptied
            warn(out, "no document scored; kept as it was")
        else:
            writer.close()
            if out:
                result.outputs["out"] = str(out)
    finally:
        bar.close()
        writer.release()
    result.seconds = time.time() - started
    if summary:
        Path(summary).parent.mkdir(parents=True, exist_ok=True)
        Path(summary).write_text(json.dumps({**result.to_dict(), "documents": summaries}, ensure_ascii=False,
                                            indent=2), encoding="utf-8")
        result.outputs["summary"] = str(summary)
    if pages is not None:
        pages.close(result.failures)
        result.outputs["html"] = str(Path(html) / "index.html")
    return result
