"""The gold annotation of who to whom (``data/parties/``) and the measures against it.

Gold files are JSONL, one line per labelled sentence: ``{"id": sentence id, "stances": {label:
{"actor": [[code, span text or null]], "target": [...]}}}``.  :func:`load_gold` reads every
``gold_*.jsonl`` of a folder and finds each span in its sentence, giving it offsets in the
document; :func:`evaluate_attribution` runs a method over the documents of a split with the
gold labels and reports, per role and per label, the share of stances whose code set equals the
gold's, and span F1 (a predicted span counts when its code, start and end equal a gold one's).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..errors import DiplostanceError

ROLES = ("actor", "target")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise DiplostanceError(f"{path}:{n}: not JSON ({exc})") from None
    return rows


def read_annotation(paths) -> dict[str, dict]:
    """``{sentence id: {label: {"actor": [[code, span]], "target": [...]}}}`` from JSONL files
    (a later file's line wins for the same id)."""
    out = {}
    for path in paths:
        for row in _read_jsonl(Path(path)):
            out[row["id"]] = row.get("stances") or {}
    return out


def load_sentences(data_dir: str | Path, split: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """Sentences (by id) and documents (by id) of a split of the corpus."""
    data = Path(data_dir)
    sentences = {r["id"]: r for r in _read_jsonl(data / "sentences" / f"{split}.jsonl")}
    documents = {r["id"]: r for r in _read_jsonl(data / "documents" / f"{split}.jsonl")}
    return sentences, documents


def gold_files(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob("gold_*.jsonl"))


def locate(span: str | None, sentence: dict, document_text: str) -> tuple[int | None, int | None]:
    """Offsets in the document of ``span`` inside the sentence (the first occurrence), or
    (None, None) when the span is null or not found."""
    if not span:
        return None, None
    text = document_text[sentence["start"]:sentence["end"]]
    i = text.find(span)
    if i < 0:
        i = text.replace("’", "'").find(span.replace("’", "'"))
    if i < 0:
        return None, None
    return sentence["start"] + i, sentence["start"] + i + len(span)


def load_gold(folder: str | Path = "data/parties", data_dir: str | Path = "data",
              splits=("dev", "test")) -> dict[str, dict]:
    """``{sentence id: {"split", "doc_id", "stances": {label: {role: [{"code", "text", "start",
    "end"}]}}}}`` with each span's offsets in its document."""
    files = gold_files(folder)
    if not files:
        raise DiplostanceError(f"{folder}: no gold_*.jsonl (the who-to-whom annotation)")
    raw = read_annotation(files)
    out = {}
    for split in splits:
        sentences, documents = load_sentences(data_dir, split)
        for sid, stances in raw.items():
            if sid not in sentences:
                continue
            sentence = sentences[sid]
            text = documents[sentence["doc_id"]]["text"]
            coded = {}
            for label, roles in stances.items():
                coded[label] = {}
                for role in ROLES:
                    items = []
                    for item in roles.get(role) or []:
                        code, span = (item[0], item[1] if len(item) > 1 else None) if isinstance(item, list) \
                            else (item.get("code"), item.get("text"))
                        start, end = locate(span, sentence, text)
                        items.append({"code": code, "text": span, "start": start, "end": end})
                    coded[label][role] = items
            out[sid] = {"split": split, "doc_id": sentence["doc_id"], "stances": coded}
    return out


def predict_split(method: str, split: str, gold: dict, data_dir: str | Path = "data") -> dict[str, dict]:
    """``{sentence id: {label: Roles}}`` of ``method`` over the split's documents, each sentence
    given its gold labels (the stances the gold attributes)."""
    from .extract import Attributor

    attributor = Attributor(method)
    sentences, documents = load_sentences(data_dir, split)
    by_doc = defaultdict(list)
    for s in sentences.values():
        by_doc[s["doc_id"]].append(s)
    out = {}
    for doc_id, ss in by_doc.items():
        ss.sort(key=lambda s: s["index"])
        labels = [list((gold.get(s["id"]) or {}).get("stances", {})) for s in ss]
        roles = attributor.document(documents[doc_id]["text"], [(s["start"], s["end"]) for s in ss], labels)
        for s, r in zip(ss, roles):
            if s["id"] in gold:
                out[s["id"]] = r
    return out


def score(gold: dict, predicted: dict) -> dict:
    """Accuracy of the code sets per role (all and per label) and span F1 per role."""
    hits = defaultdict(lambda: [0, 0])
    spans = {role: [0, 0, 0] for role in ROLES}  # true positives, predicted, gold
    for sid, g in gold.items():
        for label, roles in g["stances"].items():
            p = predicted.get(sid, {}).get(label)
            for role in ROLES:
                gold_codes = {x["code"] for x in roles[role]}
                parties = (p.actors if role == "actor" else p.targets) if p is not None else []
                pred_codes = {x.code for x in parties}
                ok = int(gold_codes == pred_codes)
                for key in (role, f"{role}/{label}"):
                    hits[key][0] += ok
                    hits[key][1] += 1
                gold_spans = {(x["code"], x["start"], x["end"]) for x in roles[role] if x["start"] is not None}
                pred_spans = {(x.code, x.start, x.end) for x in parties if x.start is not None}
                spans[role][0] += len(gold_spans & pred_spans)
                spans[role][1] += len(pred_spans)
                spans[role][2] += len(gold_spans)
    out = {"stances": hits["actor"][1],
           "accuracy": {k: round(v[0] / v[1], 4) for k, v in sorted(hits.items()) if v[1]},
           "support": {k: v[1] for k, v in sorted(hits.items())}, "span_f1": {}}
    for role, (tp, npred, ngold) in spans.items():
        precision = tp / npred if npred else 0.0
        recall = tp / ngold if ngold else 0.0
        out["span_f1"][role] = round(2 * precision * recall / (precision + recall), 4) if tp else 0.0
    return out


def evaluate_attribution(split: str = "test", folder: str | Path = "data/parties", data_dir: str | Path = "data",
                         methods=("auto", "baseline")) -> dict:
    """``{method: score}`` on the split's gold, the baseline beside the method used by ``score``."""
    from .extract import Attributor

    gold = {sid: g for sid, g in load_gold(folder, data_dir, (split,)).items()}
    results = {}
    for method in methods:
        name = Attributor(method).method if method == "auto" else method
        if name in results:
            continue
        results[name] = score(gold, predict_split(name, split, gold, data_dir))
    return results


def agreement(first: dict[str, dict], second: dict[str, dict]) -> dict:
    """Exact match of the code sets per role between two annotations, over the stances (sentence,
    label) both coded."""
    hits = defaultdict(lambda: [0, 0])
    for sid, stances in second.items():
        if sid not in first:
            continue
        for label, roles in stances.items():
            if label not in first[sid]:
                continue
            for role in ROLES:
                a = {item[0] if isinstance(item, list) else item["code"] for item in first[sid][label].get(role) or []}
                b = {item[0] if isinstance(item, list) else item["code"] for item in roles.get(role) or []}
                for key in (role, f"{role}/{label}"):
                    hits[key][0] += int(a == b)
                    hits[key][1] += 1
    return {"stances": hits["actor"][1],
            "agreement": {k: round(v[0] / v[1], 4) for k, v in sorted(hits.items()) if v[1]},
            "support": {k: v[1] for k, v in sorted(hits.items())}}


def report_md(results: dict, split: str, agreement_result: dict | None = None) -> str:
    """A Markdown table of :func:`evaluate_attribution`'s results."""
    methods = list(results)
    keys = sorted({k for r in results.values() for k in r["accuracy"]}, key=lambda k: (k.count("/"), k))
    lines = [f"# Who to whom on {split}", "",
             f"{next(iter(results.values()))['stances']} stances (the gold labels of each sentence); a stance counts "
             f"when the predicted code set equals the gold's. Targets: actor >= 0.90, target >= 0.80.", "",
             "| measure | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for key in keys:
        n = next(iter(results.values()))["support"].get(key, 0)
        lines.append(f"| {key} accuracy ({n}) | " + " | ".join(f"{results[m]['accuracy'].get(key, 0):.3f}"
                                                          for m in methods) + " |")
    for role in ROLES:
        lines.append(f"| {role} span F1 | " + " | ".join(f"{results[m]['span_f1'][role]:.3f}" for m in methods) + " |")
    if agreement_result:
        lines += ["", f"Agreement of two annotators on {agreement_result['stances']} stances (exact match of "
                      f"the code sets): " + ", ".join(f"{k} {v:.3f}" for k, v in agreement_result["agreement"].items()
                                                      if "/" not in k) + "."]
    return "\n".join(lines) + "\n"
