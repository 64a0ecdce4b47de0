"""The accuracy guard: how far a rounding backend strays from the exact fp32 forward on a
model's sentences, recorded per backend and CPU in the model's ``guard.json``, and checked
before a backend is used.

Training measures the rounding backends this machine runs natively on the dev split;
``diplostance guard MODEL`` measures again (``onnx-int8`` included, on another CPU).  Scoring
refuses a backend whose recorded agreement is below :data:`GUARD_MIN_AGREEMENT` for the model
(:func:`check_guard`), and ``auto`` picks only among those that passed on this kind of CPU.
"""
from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np

from . import REGISTRY, load_backend, rounding
from ..errors import DiplostanceError
from ..hardware import device_name
from ..labels import decide

#: A rounding backend whose label decisions agree with fp32 less often than this is not fit to use.
GUARD_MIN_AGREEMENT = 0.995


class GuardError(DiplostanceError, ValueError):
    """A backend whose label decisions, on this model, strayed too far from fp32."""


def guard(model_dir: str | Path, texts: list[str], backends: tuple[str, ...] | None = None,
          batch_size: int = 64, reference=None) -> dict[str, dict]:
    """How close each backend (default: every rounding one) stays to the reference, the
    transformers forward in fp32, on ``texts``; ``reference``: its probabilities for ``texts``,
    when they are at hand (else computed here).

    For each backend: ``max_abs_diff`` (largest probability difference from the reference),
    ``agreement`` (share of label decisions, with the model's thresholds, equal to the
    reference's), ``disagreements`` (their number out of ``decisions``) and ``ok`` (agreement at
    least :data:`GUARD_MIN_AGREEMENT`).  A backend that cannot load here (no ONNX export, no
    kernels) gets ``error``.
    """
    from ..model_dir import load_tokenizer, read_meta
    from .base import predict_proba

    meta = read_meta(model_dir)
    tokenizer = load_tokenizer(model_dir)

    def probabilities(name: str):
        device = REGISTRY[name].device
        engine = load_backend(name, model_dir, device=device)
        return predict_proba(engine, tokenizer, texts, meta.max_length, batch_size)[0]

    ref = reference if reference is not None else probabilities("transformers")
    ref_dec = decide(ref, meta.thresholds)
    report = {}
    for name in (rounding() if backends is None else backends):
        try:
            probs = probabilities(name)
        except (FileNotFoundError, ImportError, DiplostanceError) as exc:
            report[name] = {"error": str(exc)}
            continue
        dec = decide(probs, meta.thresholds)
        agree = float((dec == ref_dec).mean())
        report[name] = {"max_abs_diff": float(np.abs(probs - ref).max()), "agreement": agree,
                        "disagreements": int((dec != ref_dec).sum()), "decisions": int(dec.size),
                        "ok": agree >= GUARD_MIN_AGREEMENT}
    return report


def check_model(model_dir: str | Path, split: str = "dev", data: str | None = None,
                backends: tuple[str, ...] | None = None) -> tuple[dict[str, dict], str]:
    """Run :func:`guard` on a model's ``split`` (from its recipe) or on the labelled JSONL file
    ``data``, and record the result in the model (:func:`record_guard`).  Returns the report and
    what the sentences were."""
    from ..corpus import load_examples
    from ..model_dir import read_meta

    meta = read_meta(model_dir)
    data_cfg = meta.config.get("data", {})
    path = data or data_cfg.get(split)
    if not path or not Path(path).exists():
        raise FileNotFoundError(f"no sentences for the guard: {path or f'the model names no {split} split'}; "
                                "pass --data FILE (a labelled JSONL file)")
    texts = [e.text for e in load_examples(path, data_cfg.get("text_field", "text"),
                                            data_cfg.get("labels_field", "labels"), meta.label_set)]
    report = guard(model_dir, texts, backends)
    what = f"{data} ({len(texts)} sentences)" if data else f"{split} split, {len(texts)} sentences"
    record_guard(model_dir, report, what)
    return report, what


def merge_record(record: dict, report: dict[str, dict], data: str) -> dict:
    """``record`` (a guard record) with the results of :func:`guard` added, one entry per backend
    with this CPU, the date and the implementation's revision; backends measured before and not
    now keep their entry; backends that could not load are left out."""
    entries = dict((record or {}).get("backends") or {})
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for name, entry in report.items():
        if "error" not in entry:
            entries[name] = {**entry, "data": data, "cpu": device_name(REGISTRY[name].device), "measured": when,
                             "revision": REGISTRY[name].revision}
    return {"min_agreement": GUARD_MIN_AGREEMENT, "backends": entries}


def record_guard(model_dir: str | Path, report: dict[str, dict], data: str) -> dict:
    """Add the results of :func:`guard` (``data``: what the sentences were, e.g. "dev split, 957
    sentences") to the model's ``guard.json``; nothing else of the model is rewritten.  Returns
    the record."""
    from ..model_dir import read_guard, write_guard

    record = merge_record(read_guard(model_dir), report, data)
    write_guard(model_dir, record)
    return record


def check_guard(record: dict, backend: str, model_dir: str | Path, allow_unguarded: bool = False) -> None:
    """Refuse ``backend`` (:class:`GuardError`) when the model's guard record says its label
    decisions agreed with fp32 less often than :data:`GUARD_MIN_AGREEMENT`, unless
    ``allow_unguarded``; warn when a rounding backend was never checked for this model, or only
    with an earlier implementation of it (records without a revision are revision 1)."""
    if backend not in REGISTRY or not REGISTRY[backend].rounds or allow_unguarded:
        return
    entries = (record or {}).get("backends") or {}
    entry = entries.get(backend)
    if entry is None:
        warnings.warn(f"{model_dir}: the {backend} backend has not been checked against fp32 for this model; "
                      f"'diplostance guard {model_dir}' measures it", stacklevel=3)
        return
    if entry.get("revision", 1) != REGISTRY[backend].revision:
        warnings.warn(f"{model_dir}: the {backend} backend was checked against fp32 ({100 * entry['agreement']:.2f}% "
                      f"of decisions equal) with an earlier implementation of it, not this one; "
                      f"'diplostance guard {model_dir}' measures it again", stacklevel=3)
        return
    if entry.get("ok"):
        return
    fine = [f"{name} ({100 * e['agreement']:.2f}%)" for name, e in entries.items()
            if e.get("ok") and name in REGISTRY and REGISTRY[name].rounds]
    raise GuardError(
        f"{model_dir}: the {backend} backend agreed with fp32 on {100 * entry['agreement']:.2f}% of this model's "
        f"label decisions ({entry.get('data', '?')}, on {entry.get('cpu', '?')}), below the "
        f"{100 * GUARD_MIN_AGREEMENT:.1f}% the accuracy guard requires; score with --backend fp32"
        + (f" or {', '.join(fine)}" if fine else "")
        + ", or pass --allow-unguarded (Python: allow_unguarded=True) to use it anyway; "
        f"'diplostance guard {model_dir}' measures it again (e.g. on another CPU)")
