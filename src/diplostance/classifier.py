"""The Python API: :class:`StanceClassifier`, a trained model directory ready to label
sentences and readouts, and the records it returns."""
from __future__ import annotations

import logging

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .documents import Document
from .labels import decide
from .segment import Splitter, get_splitter

log = logging.getLogger(__name__)

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
    #: Who to whom, per label (:mod:`diplostance.parties`): ``{label: Roles}``; None when the
    #: stances were not attributed (``score --no-actors``).
    parties: dict | None = None

    @property
    def actors(self) -> list[str]:
        """The codes of the parties taking this sentence's stances (all labels)."""
        return _codes(r.actors for r in (self.parties or {}).values())

    @property
    def targets(self) -> list[str]:
        """The codes of the parties the stances are directed at (all labels)."""
        return _codes(r.targets for r in (self.parties or {}).values())

    def party_fields(self) -> dict:
        """``actors``, ``targets`` (codes, all labels), ``actor_spans``, ``target_spans`` (the
        named ones: code, text, start and end in the document) and ``parties`` (per label)."""
        roles = (self.parties or {}).values()
        return {"actors": self.actors, "targets": self.targets,
                "actor_spans": _spans(p for r in roles for p in r.actors),
                "target_spans": _spans(p for r in roles for p in r.targets),
                "parties": {label: r.to_dict() for label, r in (self.parties or {}).items()}}

    def row(self, model: str = "", version: str = "") -> dict:
        row = {"doc_id": self.doc_id, "sentence_index": self.index, "n_sentences": self.n_sentences,
               "start": self.start, "end": self.end, "text": self.text, "labels": self.labels,
               "primary": self.primary,
               **{f"p_{k}": round(float(v), 6) for k, v in self.probabilities.items()},
               "windows": self.windows, "long": self.long, "truncated": self.truncated, "model": model,
               "model_version": version, "source": self.source}
        if self.parties is not None:
            row.update(self.party_fields())
        return add_meta(row, self.meta)


def _codes(groups) -> list[str]:
    return list(dict.fromkeys(p.code for group in groups for p in group))


def _spans(parties) -> list[dict]:
    seen, out = set(), []
    for p in parties:
        if p.text is not None and (p.code, p.start) not in seen:
            seen.add((p.code, p.start))
            out.append({"code": p.code, "text": p.text, "start": p.start, "end": p.end})
    return out


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

    def __init__(self, path, meta, tokenizer, backend, splitter: Splitter, batch_size: int = 32,
                 attribution: str = "auto"):
        self.path = Path(path)
        self.meta = meta
        self.tokenizer = tokenizer
        self.backend = backend
        self.splitter = splitter
        self.batch_size = batch_size
        self.labels = meta.label_set
        self.thresholds = np.asarray(meta.thresholds, dtype=np.float32)
        self.max_sentence_chars = MAX_SENTENCE_CHARS
        self.backend_reason = getattr(backend, "name", "")
        #: how :meth:`score` finds who to whom (:class:`diplostance.parties.Attributor`)
        self.attribution = attribution
        self._attributor = None

    @property
    def attributor(self):
        """The :class:`~diplostance.parties.Attributor`, loaded on first use."""
        if self._attributor is None:
            from .parties import Attributor

            self._attributor = Attributor(self.attribution)
        return self._attributor

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", splitter: str | Splitter = "default",
             batch_size: int = 32, threads: int | None = None,
             allow_unguarded: bool = False, device: str = "auto") -> "StanceClassifier":
        """``backend``: see :mod:`diplostance.backends`; ``auto`` (the default) picks the fastest
        one this machine runs natively and that passed the model's accuracy guard here (its name
        and why: ``backend_reason``).  One whose label decisions on this model agreed with fp32 less
        often than the accuracy guard requires (the record in the model's metadata) raises
        :class:`~diplostance.backends.GuardError` unless ``allow_unguarded``.  ``device``:
        ``auto`` (a GPU when PyTorch sees one), ``cpu`` or ``cuda``.  The labels are the model's
        own (``labels``: its :class:`~diplostance.labels.LabelSet`)."""
        from .backends import choose_backend, load_backend
        from .backends.guard import check_guard
        from .hardware import resolve_device
        from .model_dir import load_tokenizer, read_guard, read_meta

        meta = read_meta(path)  # validates the directory and its format version first
        log.info("loading %s (%s, labels %s)", path, meta.name, ", ".join(meta.labels))
        record = read_guard(path, meta)
        device = resolve_device(device)
        if backend == "auto":
            backend, reason = choose_backend(record, device)
        else:
            reason = f"{backend}, as asked"
        check_guard(record, backend, path, allow_unguarded)
        if threads:
            import torch

            torch.set_num_threads(threads)
        tokenizer = load_tokenizer(path)  # refuses one that reads French as <unk> only
        engine = load_backend(backend, path, threads=threads, device=device)
        split = get_splitter(splitter) if isinstance(splitter, str) else splitter
        clf = cls(path, meta, tokenizer, engine, split, batch_size)
        clf.backend_reason = reason
        log.info("backend %s", reason)
        return clf

    @property
    def name(self) -> str:
        return model_name(self.path, self.meta)

    @property
    def version(self) -> str:
        return model_version(self.meta)

    # ------------------------------------------------------------------ sentences
    def predict_proba(self, sentences: list[str], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and windows per sentence, each scored on at most ``max_sentence_chars``
        characters; a bare string is one sentence.  ``progress``: a bar on standard error."""
        from .backends.base import predict_proba

        texts = [s[:self.max_sentence_chars] for s in _items(sentences)]
        if not progress:
            return predict_proba(self.backend, self.tokenizer, texts, self.meta.max_length, self.batch_size)
        from tqdm import tqdm

        with tqdm(total=len(texts), desc=f"scoring ({self.backend.name})", unit="sentence") as bar:
            return predict_proba(self.backend, self.tokenizer, texts, self.meta.max_length, self.batch_size,
                                 progress=bar.update)

    def predict(self, sentences: Iterable[str] | str) -> list[Prediction]:
        """One prediction per sentence.  A bare string is one sentence (a list of one
        prediction), not a sequence of one-character sentences."""
        sentences = _items(sentences)
        if not sentences:
            return []
        probs, windows = self.predict_proba(sentences)
        return [self._prediction(text, p, w) for text, p, w in zip(sentences, probs, windows)]

    def _prediction(self, text: str, p: np.ndarray, windows: int) -> Prediction:
        labels = self.labels.from_vector(decide(p, self.thresholds))
        return Prediction(text, labels, self.labels.primary(labels), dict(zip(self.labels.names, map(float, p))),
                          int(windows), len(text) > self.max_sentence_chars)

    # ------------------------------------------------------------------ documents
    def score(self, documents: Iterable[Document | tuple[str, str] | str] | str, chunk_sentences: int = 512,
              skip: set[str] | frozenset = frozenset(), actors: bool = True) -> Iterator[list[SentenceRecord]]:
        """Yield, per document and in input order, the list of its sentence records.

        A bare string is one document (id ``"0"``), as is each string of an iterable (id: its
        position); not one document per character.

        Sentences of several documents are batched together (chunks of about
        ``chunk_sentences``), so memory stays flat however many documents stream through.
        Documents whose id is in ``skip`` (already done: ``--resume``) are not yielded; they
        still count when chunks are formed, so the remaining documents are batched exactly as
        in an uninterrupted run and get bit-identical probabilities.

        ``actors``: each record's ``parties`` says who takes each of its stances and towards whom
        (:mod:`diplostance.parties`); False leaves it None.
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
                yield from self._flush(pending, skip, actors)
                pending, count = [], 0
        if pending:
            yield from self._flush(pending, skip, actors)

    def _flush(self, pending, skip=frozenset(), actors: bool = True) -> Iterator[list[SentenceRecord]]:
        if all(doc.id in skip for doc, _ in pending):
            return
        texts = [doc.text[s.start:s.end] for doc, spans in pending for s in spans]
        probs, windows = self.predict_proba(texts) if texts else (np.zeros((0, len(self.labels))), np.zeros(0))
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
                if actors and records:
                    roles = self.attributor.document(doc.text, [(r.start, r.end) for r in records],
                                                     [r.labels for r in records])
                    for record, parties in zip(records, roles):
                        record.parties = parties
                yield records


def model_name(path: str | Path, meta) -> str:
    """The ``model`` of the rows: the model's own name, else its folder's."""
    return meta.name or Path(path).name


def model_version(meta) -> str:
    """The ``model_version`` of the rows: when it was trained, on which data."""
    return f"{meta.created} ({meta.training_data.get('fingerprint', '')[:19]})"


def _items(items):
    """``items`` as a list, a bare string being one item: ``list("Bonjour.")`` would be eight."""
    return [items] if isinstance(items, str) else list(items)
