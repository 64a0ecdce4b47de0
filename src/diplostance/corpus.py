"""Reading, validating, building and fingerprinting the labelled corpus.

Layout of a corpus folder (see data/README.md):

    documents/{train,dev,test}.jsonl   one readout per line: id, text and metadata
    sentences/{train,dev,test}.jsonl   one sentence per line: id, doc_id, index, start, end, text, labels

``text[start:end]`` of the document is the sentence's text.  Every function that reads a
file reports problems as ``path:line: what was expected, what came``.
"""
from __future__ import annotations

import collections
import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DiplostanceError
from .labels import DEFAULT, LABELS, LabelSet, check_labels

SPLITS = ("train", "dev", "test")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


class CorpusError(DiplostanceError, ValueError):
    """A corpus file that cannot be used; the message names the file and line."""


@dataclass
class Example:
    """One labelled sentence."""

    text: str
    labels: list[str]
    id: str = ""
    doc_id: str = ""
    where: str = ""  # "path:line", for messages
    #: Source style and the guidelines' rules the sentence exercises, where the file gives them
    #: (for the breakdowns of evaluation reports).
    style: str = ""
    rules: tuple[int, ...] = ()


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def normalise(text: str) -> str:
    """Lower-cased words joined by single spaces: the key for exact duplicates."""
    return " ".join(w.lower() for w in words(text.replace("’", "'")))


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; blank lines are skipped.

    Raises :class:`CorpusError` naming the file and line for bad encoding, bad JSON or a
    line that is not a JSON object.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not valid UTF-8 (byte {raw[exc.start]:#x} at offset {exc.start})") from exc
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(obj, dict):
            raise CorpusError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def load_examples(path: str | Path, text_field: str = "text", labels_field: str = "labels",
                  labels: LabelSet = DEFAULT) -> list[Example]:
    """Load labelled sentences from a JSONL file, validating every row against ``labels``.

    Stops at the first bad row with a message naming file, line and problem: missing or empty
    text, unknown label, duplicate id, or the same sentence given two different label sets.
    """
    examples: list[Example] = []
    seen_ids: dict[str, int] = {}
    seen_text: dict[str, tuple[int, list[str]]] = {}
    for number, obj in read_jsonl(path):
        where = f"{path}:{number}"
        text = obj.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise CorpusError(f"{where}: missing or empty '{text_field}' (expected a non-empty string, got {text!r})")
        if labels_field not in obj:
            raise CorpusError(f"{where}: missing '{labels_field}' (expected a list, [] for none)")
        try:
            gold = labels.check(obj[labels_field])
        except ValueError as exc:
            raise CorpusError(f"{where}: {exc}") from None
        ident = str(obj.get("id", f"{Path(path).stem}-{number}"))
        if ident in seen_ids:
            raise CorpusError(f"{where}: duplicate id {ident!r} (first on line {seen_ids[ident]})")
        seen_ids[ident] = number
        key = normalise(text)
        if key in seen_text and seen_text[key][1] != gold:
            first_line, first_labels = seen_text[key]
            raise CorpusError(f"{where}: conflicting labels for the same sentence: {gold} here, "
                              f"{first_labels} on line {first_line}")
        seen_text.setdefault(key, (number, gold))
        rules = obj.get("rules") if isinstance(obj.get("rules"), list) else []
        examples.append(Example(text=text, labels=gold, id=ident, doc_id=str(obj.get("doc_id", "")), where=where,
                                style=str(obj.get("style") or obj.get("genre") or ""),
                                rules=tuple(r for r in rules if isinstance(r, int) and not isinstance(r, bool))))
    if not examples:
        raise CorpusError(f"{path}: no examples (expected JSON lines with '{text_field}' and '{labels_field}')")
    return examples


def fingerprint(paths: Iterable[str | Path]) -> str:
    """SHA-256 over the bytes of the given files (in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode())
        digest.update(Path(path).read_bytes())
    return "sha256:" + digest.hexdigest()


# --------------------------------------------------------------------------- building

def assemble(doc: dict) -> tuple[str, list[tuple[int, int]]]:
    """Join an authored document's sentences with their separators; return text and spans."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    sentences = doc["sentences"]
    for i, sent in enumerate(sentences):
        text = sent["text"]
        spans.append((pos, pos + len(text)))
        parts.append(text)
        pos += len(text)
        if i < len(sentences) - 1:
            sep = sent.get("sep", " ")
            parts.append(sep)
            pos += len(sep)
    return "".join(parts), spans


def assign_splits(docs: list[dict], seed: int = 13, dev: float = 0.15, test: float = 0.15) -> dict[str, str]:
    """Split documents (never sentences) about 70/15/15, stratified by source style."""
    rng = random.Random(seed)
    by_style: dict[str, list[str]] = collections.defaultdict(list)
    for doc in docs:
        by_style[doc["style"]].append(doc["doc_id"])
    result: dict[str, str] = {}
    carry = {"dev": 0.0, "test": 0.0}
    for style in sorted(by_style):
        ids = sorted(by_style[style])
        rng.shuffle(ids)
        n = len(ids)
        # Running remainders keep the global proportions right across small strata, while every
        # style with 3+ documents still gets one document in dev and one in test.
        carry["dev"] += n * dev
        carry["test"] += n * test
        n_dev = max(1 if n >= 3 else 0, int(carry["dev"]))
        n_test = max(1 if n >= 3 else 0, int(carry["test"]))
        carry["dev"] -= n_dev
        carry["test"] -= n_test
        for i, ident in enumerate(ids):
            result[ident] = "dev" if i < n_dev else "test" if i < n_dev + n_test else "train"
    return result


def build_corpus(authored: Iterable[str | Path], out_dir: str | Path, seed: int = 13,
                 adjudicated: dict[str, list[str]] | None = None, split: str | None = None) -> dict[str, int]:
    """Build ``documents/`` and ``sentences/`` split files from authored JSONL files.

    ``adjudicated`` maps a sentence id to its final labels after double annotation.  ``split``:
    every document in that one split (e.g. ``challenge``, a held-out set no run trains or tunes
    on), instead of train / dev / test.  Returns the number of sentences per split.
    """
    docs: list[dict] = []
    for path in sorted(map(Path, authored)):
        for number, doc in read_jsonl(path):
            doc["_where"] = f"{path}:{number}"
            docs.append(doc)
    # Each corpus version is split on its own, so that adding documents never moves an
    # earlier document to another split (v1's dev and test stay what was double-annotated).
    splits: dict[str, str] = {}
    if split is not None:
        splits = {doc["doc_id"]: split for doc in docs}
    else:
        versions = sorted({doc.get("corpus_version", 1) for doc in docs})
        for version in versions:
            splits.update(assign_splits([d for d in docs if d.get("corpus_version", 1) == version], seed=seed))
    out_dir = Path(out_dir)
    files = {}
    for kind in ("documents", "sentences"):
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
        for name in ([split] if split is not None else SPLITS):
            files[kind, name] = open(out_dir / kind / f"{name}.jsonl", "w", encoding="utf-8")
    counts = collections.Counter()
    seen: set[str] = set()
    try:
        for doc in sorted(docs, key=lambda d: d["doc_id"]):
            part = splits[doc["doc_id"]]
            text, spans = assemble(doc)
            meta = {k: doc[k] for k in ("style", "genre", "source", "date", "parties", "topic") if k in doc}
            meta["corpus_version"] = doc.get("corpus_version", 1)
            files["documents", part].write(json.dumps({"id": doc["doc_id"], **meta, "text": text}, ensure_ascii=False) + "\n")
            for index, (sent, (start, end)) in enumerate(zip(doc["sentences"], spans)):
                sid = f"{doc['doc_id']}-{index:02d}"
                seen.add(sid)
                labels = check_labels(list((adjudicated or {}).get(sid, sent.get("labels", []))), doc["_where"])
                row = {"id": sid, "doc_id": doc["doc_id"], "index": index, "start": start, "end": end,
                       "text": sent["text"], "labels": labels, "rules": sent.get("rules", []),
                       "style": doc["style"], "corpus_version": meta["corpus_version"]}
                if "genre" in doc:
                    row["genre"] = doc["genre"]
                files["sentences", part].write(json.dumps(row, ensure_ascii=False) + "\n")
                counts[part] += 1
    finally:
        for handle in files.values():
            handle.close()
    unknown = sorted(set(adjudicated or {}) - seen)
    if unknown:
        raise CorpusError(f"adjudicated labels for {len(unknown)} sentence id(s) that no authored document has, "
                          f"e.g. {unknown[:3]}; expected ids like 'w1-001-03' (<doc id>-<index>)")
    return dict(counts)


# --------------------------------------------------------------------------- checking

@dataclass
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _grams(text: str, n: int = 4) -> frozenset:
    w = [x.lower() for x in words(text)]
    return frozenset(tuple(w[i:i + n]) for i in range(len(w) - n + 1))


def near_duplicate_pairs(texts: list[str], threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Index pairs whose word-4-gram Jaccard similarity is at least ``threshold``."""
    grams = [_grams(t) for t in texts]
    index: dict[tuple, list[int]] = collections.defaultdict(list)
    for i, gs in enumerate(grams):
        for g in gs:
            index[g].append(i)
    pairs = []
    for i, gs in enumerate(grams):
        shared = collections.Counter(j for g in gs for j in index[g] if j > i)
        for j, inter in shared.items():
            union = len(gs) + len(grams[j]) - inter
            if union and inter / union >= threshold:
                pairs.append((i, j, inter / union))
    return pairs


def split_stats(rows: list[dict], docs: int) -> dict[str, float]:
    lens = [len(words(r["text"])) for r in rows]
    n = max(len(rows), 1)
    stats: dict[str, float] = {"documents": docs, "sentences": len(rows)}
    for label in LABELS:
        stats[label] = sum(label in r["labels"] for r in rows)
    stats["none"] = sum(not r["labels"] for r in rows)
    stats["multi-label"] = sum(len(r["labels"]) >= 2 for r in rows)
    stats["mean words"] = round(sum(lens) / n, 1)
    stats["% < 15 words"] = round(100 * sum(x < 15 for x in lens) / n, 1)
    stats["% > 50 words"] = round(100 * sum(x > 50 for x in lens) / n, 1)
    openings = {" ".join(w.lower() for w in words(r["text"])[:3]) for r in rows}
    stats["% distinct openings"] = round(100 * len(openings) / n, 1)
    return stats


def check_corpus(directory: str | Path, near_threshold: float = 0.5) -> CheckReport:
    """Validate a corpus folder; collect every problem rather than stopping at the first."""
    directory = Path(directory)
    report = CheckReport()
    add = lambda where, msg: report.problems.append(Problem(where, msg))  # noqa: E731
    all_rows: list[tuple[str, dict]] = []
    doc_split: dict[str, str] = {}
    doc_texts: dict[str, tuple[str, str]] = {}
    for split in SPLITS:
        dpath = directory / "documents" / f"{split}.jsonl"
        spath = directory / "sentences" / f"{split}.jsonl"
        docs: dict[str, str] = {}
        for path in (dpath, spath):
            if not path.exists():
                add(str(path), "missing file")
        if report.problems and not dpath.exists():
            continue
        try:
            for number, doc in read_jsonl(dpath):
                where = f"{dpath}:{number}"
                ident, text = doc.get("id"), doc.get("text")
                if not isinstance(ident, str) or not isinstance(text, str) or not text.strip():
                    add(where, f"a document needs a string 'id' and a non-empty 'text', got id={ident!r}")
                    continue
                if ident in doc_split:
                    add(where, f"duplicate document id {ident!r} (also in {doc_split[ident]})")
                doc_split[ident] = split
                docs[ident] = text
                doc_texts[ident] = (text, where)
        except CorpusError as exc:
            add(str(dpath), str(exc))
        if dpath.exists() and not docs and not any(p.where.startswith(str(dpath)) for p in report.problems):
            add(str(dpath), f"no documents (an empty {split} split); expected one JSON object per line "
                            "with 'id' and 'text'")
        rows: list[dict] = []
        if spath.exists():
            try:
                seen: dict[str, int] = {}
                for number, row in read_jsonl(spath):
                    where = f"{spath}:{number}"
                    missing = [k for k in ("id", "doc_id", "start", "end", "text", "labels") if k not in row]
                    if missing:
                        add(where, f"missing field(s) {missing}")
                        continue
                    wrong = [f"{k}={row[k]!r}" for k in ("id", "doc_id", "text") if not isinstance(row[k], str)]
                    wrong += [f"{k}={row[k]!r}" for k in ("start", "end")
                              if isinstance(row[k], bool) or not isinstance(row[k], int)]
                    if wrong:
                        add(where, f"expected string id, doc_id and text and whole-number start and end, "
                                   f"got {', '.join(wrong)}")
                        continue
                    try:
                        check_labels(row["labels"])
                    except ValueError as exc:
                        add(where, str(exc))
                        continue
                    if row["id"] in seen:
                        add(where, f"duplicate sentence id {row['id']!r} (first on line {seen[row['id']]})")
                    seen[row["id"]] = number
                    text = docs.get(row["doc_id"])
                    if text is None:
                        add(where, f"doc_id {row['doc_id']!r} is not a document of the {split} split")
                    elif not (isinstance(row["start"], int) and isinstance(row["end"], int)
                              and 0 <= row["start"] < row["end"] <= len(text)):
                        add(where, f"offsets [{row['start']}, {row['end']}) outside the document (length {len(text)})")
                    elif text[row["start"]:row["end"]] != row["text"]:
                        add(where, f"offsets [{row['start']}, {row['end']}) give {text[row['start']:row['end']][:40]!r}, "
                                   f"not the sentence text {row['text'][:40]!r}")
                    row["_where"], row["_split"] = where, split
                    rows.append(row)
                    all_rows.append((split, row))
            except CorpusError as exc:
                add(str(spath), str(exc))
            if not rows and not any(p.where.startswith(str(spath)) for p in report.problems):
                add(str(spath), f"no sentences (an empty {split} split)")
            check_coverage(docs, rows, add, {ident: doc_texts[ident][1] for ident in docs})
        report.stats[split] = split_stats(rows, len(docs))
    # exact duplicates, conflicts and cross-split leakage
    by_key: dict[str, dict] = {}
    for split, row in all_rows:
        key = normalise(row["text"])
        first = by_key.get(key)
        if first is None:
            by_key[key] = row
            continue
        if sorted(first["labels"]) != sorted(row["labels"]):
            add(row["_where"], f"conflicting labels: {row['labels']} here, {first['labels']} at {first['_where']}")
        elif first["_split"] != split:
            add(row["_where"], f"leakage: the same sentence is in {first['_split']} ({first['_where']})")
        else:
            add(row["_where"], f"exact duplicate of {first['_where']}")
    texts = [row["text"] for _, row in all_rows]
    report.texts = texts
    for i, j, sim in near_duplicate_pairs(texts, near_threshold):
        a, b = all_rows[i][1], all_rows[j][1]
        if normalise(a["text"]) == normalise(b["text"]):
            continue
        kind = "leakage across splits" if a["_split"] != b["_split"] else "near duplicate"
        add(b["_where"], f"{kind}: 4-gram Jaccard {sim:.2f} with {a['_where']}")
    seen_doc_text: dict[str, str] = {}
    for ident, (text, where) in doc_texts.items():
        key = normalise(text)
        if key in seen_doc_text:
            add(where, f"the same document text as {seen_doc_text[key]}")
        seen_doc_text[key] = where
    return report


def check_coverage(docs: dict[str, str], rows: list[dict], add, where_of: dict[str, str]) -> None:
    """Each document's sentences must tile it: no two spans overlap (a sentence counted twice),
    and no stretch of text other than whitespace lies outside every span (a sentence that was
    never labelled).  ``rows`` are sentence rows already checked (string ids, int offsets)."""
    spans: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
    for row in rows:
        text = docs.get(row["doc_id"])
        if text is not None and 0 <= row["start"] < row["end"] <= len(text):
            spans[row["doc_id"]].append((row["start"], row["end"], row["_where"]))
    for ident, text in docs.items():
        covered = 0
        where_doc = f"document {ident!r}"
        for start, end, where in sorted(spans.get(ident, [])):
            if start < covered:
                add(where, f"sentence [{start}, {end}) overlaps the previous sentence of {where_doc} "
                           f"(which ends at {covered})")
            elif text[covered:start].strip():
                add(where, f"text [{covered}, {start}) of {where_doc} is in no sentence: "
                           f"{text[covered:start].strip()[:40]!r}")
            covered = max(covered, end)
        if text[covered:].strip():
            last = sorted(spans[ident])[-1][2] if spans.get(ident) else where_of.get(ident, where_doc)
            add(last, f"text [{covered}, {len(text)}) of {where_doc} is in no sentence: "
                      f"{text[covered:].strip()[:40]!r}")


def format_stats(stats: dict[str, dict[str, float]], all_texts: list[str] | None = None) -> str:
    """A Markdown table: one row per statistic, one column per split, plus the total
    (the distinct-openings total needs ``all_texts``)."""
    if not stats:
        return ""
    keys = list(next(iter(stats.values())).keys())
    splits = list(stats)
    lines = ["| | " + " | ".join(splits) + " | all |", "|---" * (len(splits) + 2) + "|"]
    for key in keys:
        values = [stats[s].get(key, 0) for s in splits]
        if key == "% distinct openings":
            total = round(100 * len({" ".join(w.lower() for w in words(t)[:3]) for t in all_texts})
                          / max(len(all_texts), 1), 1) if all_texts else 0
        elif key.startswith("%") or key == "mean words":
            weights = [stats[s]["sentences"] for s in splits]
            total = round(sum(v * w for v, w in zip(values, weights)) / max(sum(weights), 1), 1)
        else:
            total = sum(values)
        fmt = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
        lines.append(f"| {key} | " + " | ".join(fmt(v) for v in values) + f" | {fmt(total)} |")
    return "\n".join(lines)
