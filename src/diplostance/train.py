"""The scripted training loop: data -> (offline tokenizer, pretraining) -> fine-tuning ->
dev thresholds -> model directory.  ``diplostance train`` is a thin wrapper over :func:`train`.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import corpus, metrics
from .config import ConfigError, RunConfig
from .errors import OutputExistsError  # noqa: F401 (also importable from here, its first home)
from .hardware import bf16_arguments, cpu_name, reuse_freed_memory, use_bf16
from .model_dir import META_FILE, RECIPE_FILE, SPM_FILE, ModelMeta, library_versions, save_model, write_card

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
WORK = "work"


@dataclass
class TrainResult:
    output: Path
    thresholds: list[float]
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0


def _prepare_output(out: Path, config: RunConfig, resume: bool, force: bool) -> Path:
    """Check ``out`` and return the folder to train into.

    That is ``out`` itself, except when ``--force`` replaces an existing model (or an interrupted
    run): then the new model is built in a hidden sibling (:func:`_build_dir`) and renamed over
    ``out`` only once it is complete (:func:`_swap_into_place`), so the old model survives any
    failure.  ``--force`` replaces only what training wrote (a folder holding ``diplostance.json``
    or ``training_config.toml``) or an empty folder: never a folder of other files.
    """
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is a file, not a model directory; choose another --output")
    saved = out / RECIPE_FILE
    if out.exists() and any(out.iterdir()):
        complete = (out / META_FILE).exists()
        if resume:
            if complete:
                build = _interrupted_build(out)
                if build is None:
                    raise OutputExistsError(f"{out}: this run already finished; nothing to resume "
                                            "(use --force to train again from scratch)")
                _check_same_config(build / RECIPE_FILE, config)
                log.warning("%s: resuming the interrupted replacement of this model (built in %s); the model "
                            "there now stays until the new one is complete", out, build)
                return build
            if not saved.exists():
                raise OutputExistsError(f"{out}: not a diplostance training run (no training_config.toml); "
                                        "nothing to resume")
            _check_same_config(saved, config)
            return out
        elif force:
            if not complete and not saved.exists():
                raise OutputExistsError(
                    f"{out}: --force replaces only a model directory (with {META_FILE}) or an interrupted "
                    f"training run (with training_config.toml), and this folder has neither; its files are "
                    f"kept. Choose another --output, or move its files away yourself")
            _refuse_running_build(out)
            build = _build_dir(out)
            if build.exists():  # ours: left by an earlier failed call in this same process
                shutil.rmtree(build)
            build.mkdir()
            (build / RECIPE_FILE).write_text(config.to_toml(), encoding="utf-8")
            return build
        elif (out / CHECKPOINTS).exists() and not complete:
            raise OutputExistsError(f"{out}: an interrupted training run is here; continue it with --resume, "
                                    "or start again with --force")
        else:
            pending = _interrupted_build(out) if complete else None
            hint = (f" (an interrupted replacement of it is in {pending}: continue it with --resume)"
                    if pending else "")
            raise OutputExistsError(f"{out}: output directory exists and is not empty{hint}; "
                                    "use --force to replace it or --output to choose another")
    elif resume:
        raise OutputExistsError(f"{out}: nothing to resume (the directory does not exist)")
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(config.to_toml(), encoding="utf-8")
    return out


def _check_same_config(saved: Path, config: RunConfig) -> None:
    from .config import load_config

    before = load_config(saved).to_dict()
    now = config.to_dict()
    before.pop("output", None), now.pop("output", None)
    if before != now:
        diff = _first_difference(before, now)
        raise ConfigError(f"--resume: the configuration differs from the interrupted run's ({diff}); "
                          f"resume with the same recipe, or use --force to start again")


def _run_id() -> int:
    """The process that owns a build folder: this one, or under a distributed launcher (torchrun,
    accelerate: ``LOCAL_RANK`` is set) the launcher, so that every rank builds in the same folder."""
    return os.getppid() if "LOCAL_RANK" in os.environ else os.getpid()


def _build_dir(out: Path, run_id: int | None = None) -> Path:
    """The hidden sibling a replacement of ``out`` is built in: ``.<name>.training-<pid>``."""
    out = out.absolute()
    return out.with_name(f".{out.name}.training-{_run_id() if run_id is None else run_id}")


def _builds(out: Path) -> list[tuple[int, Path]]:
    """Replacements of ``out`` being built or left by an interrupted run: (pid, folder), oldest first."""
    out = out.absolute()
    found = []
    for path in out.parent.glob(f".{out.name}.training-*"):
        pid = path.name.rsplit("-", 1)[-1]
        try:
            if pid.isdigit() and path.is_dir() and (path / RECIPE_FILE).exists():
                found.append((path.stat().st_mtime, int(pid), path))
        except OSError:  # removed meanwhile by the run that owned it
            continue
    return [(pid, path) for _, pid, path in sorted(found)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _interrupted_build(out: Path) -> Path | None:
    """The newest replacement of ``out`` whose run ended before it was complete and that has
    checkpoints to resume from, or None."""
    builds = [p for pid, p in _builds(out) if (pid == _run_id() or not _alive(pid)) and (p / CHECKPOINTS).exists()]
    return builds[-1] if builds else None


def _refuse_running_build(out: Path) -> None:
    for pid, path in _builds(out):
        if pid != _run_id() and _alive(pid):
            raise OutputExistsError(f"{out}: another training run (pid {pid}) is building a replacement of it in "
                                    f"{path}; wait for it to finish, or stop it first")


def discard_failed_build(out: str | Path) -> None:
    """After a run that failed: remove the folder this process was building a replacement of
    ``out`` in, when it holds no checkpoint to resume from (``out`` itself is never touched)."""
    build = _build_dir(Path(out))
    if build.is_dir() and not (build / CHECKPOINTS).exists():
        shutil.rmtree(build, ignore_errors=True)


def _swap_into_place(build: Path, out: Path) -> None:
    """Put the complete model built in ``build`` at ``out``: the old folder is renamed aside, the
    new one renamed in, and only then is the old one deleted, so that at no moment is neither
    on disk (a crash between the two renames leaves the old one as ``.<name>.replaced-<pid>``).
    Replacements left by earlier interrupted runs of the same output are superseded: removed."""
    if build.absolute() == out.absolute():
        return
    old = out.absolute().with_name(f".{out.absolute().name}.replaced-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.rename(out, old)
    os.rename(build, out)
    shutil.rmtree(old, ignore_errors=True)
    for pid, stale in _builds(out):
        if not _alive(pid):
            log.info("removing %s, an interrupted replacement of %s superseded by this run", stale, out)
            shutil.rmtree(stale, ignore_errors=True)


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        elif a.get(key) != b.get(key):
            return f"{prefix}{key}: {a.get(key)!r} then, {b.get(key)!r} now"
    return ""


def _dataset(examples: list[corpus.Example], tokenizer, max_length: int, labels, first_row: int = 0):
    """The examples tokenised, with their ``length`` (for length-grouped batches) and ``row``
    (``first_row`` + position: their index in the frozen bottom's cache, frozen.py)."""
    from datasets import Dataset, Features, Sequence, Value

    enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
    features = Features({"input_ids": Sequence(Value("int32")), "attention_mask": Sequence(Value("int8")),
                         "labels": Sequence(Value("float32")), "length": Value("int32"), "row": Value("int32")})
    return Dataset.from_dict({
        "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
        "labels": [labels.vector(e.labels) for e in examples],
        "length": [len(ids) for ids in enc["input_ids"]],
        "row": list(range(first_row, first_row + len(examples))),
    }, features=features)


def _bce_loss(pos_weight):
    import torch

    weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        w = None if weight is None else weight.to(logits.device)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=w)

    return loss


def _selection_metrics(label_set):
    """Dev macro-F1 with per-label thresholds tuned on the same predictions (model selection)."""
    def compute(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        probs = 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))
        y = np.asarray(labels).astype(int)
        thresholds = metrics.tune_thresholds(y, probs)
        report = metrics.multilabel_report(y, metrics.decide(probs, thresholds), label_set)
        return {"macro_f1": report["macro_f1"], "micro_f1": report["micro_f1"]}

    return compute


def load_split(config: RunConfig, split: str, limit: int = 0) -> list[corpus.Example]:
    path = getattr(config.data, split)
    if not Path(path).exists():
        raise FileNotFoundError(f"data.{split}: {path} does not exist (paths in a recipe are relative to the "
                                f"recipe file; --set data.{split}=PATH gives another, relative to here)")
    examples = corpus.load_examples(path, config.data.text_field, config.data.labels_field, config.label_set)
    return examples[:limit] if limit else examples


@dataclass
class Splits:
    """The labelled sentences of a run, read and validated before anything is written."""

    train: list[corpus.Example]
    dev: list[corpus.Example]
    test: list[corpus.Example] | None


def load_data(config: RunConfig) -> Splits:
    """Seam 1, data: the recipe's splits, each row checked against the recipe's labels."""
    test = load_split(config, "test") if Path(config.data.test).exists() else None
    return Splits(load_split(config, "train", config.data.limit), load_split(config, "dev"), test)


def train(config: RunConfig, output: str | Path | None = None, resume: bool = False, force: bool = False,
          quiet: bool = False) -> TrainResult:
    """Train a model as ``config`` describes and write its model directory; return its metrics.

    The seams, each a function of its own: :func:`load_data`, :func:`build_model`, :func:`fit`,
    :func:`tune_and_measure`, :func:`write_model`, :func:`run_guard`."""
    import torch
    import transformers

    started = time.time()
    out = Path(output or config.output)
    config.output = str(out)
    data = load_data(config)  # all data read and validated before the output directory is touched
    log.info("%s: %d training and %d dev sentences, labels %s", config.name, len(data.train), len(data.dev),
             ", ".join(config.label_set.names))
    final, out = out, _prepare_output(out, config, resume, force)  # out: where to build (see _prepare_output)
    if config.training.threads:
        torch.set_num_threads(config.training.threads)
    if quiet:
        transformers.logging.set_verbosity_error()
    bf16, why = use_bf16(config.training.bf16, "cuda" if torch.cuda.is_available() else "cpu")
    if why.startswith("warning"):
        warnings.warn(why.removeprefix("warning: "), stacklevel=2)
    else:
        log.info("precision: %s (%s)", "bf16 autocast" if bf16 else "fp32", why)
    args = training_arguments(config, out, bf16, quiet)
    tokenizer, model = build_model(config, data, out / WORK, bf16, args)
    trainer = fit(config, model, tokenizer, data, args, bf16, quiet, out / CHECKPOINTS if resume else None)
    if not trainer.is_world_process_zero():
        return TrainResult(out, [], {}, time.time() - started)
    # Without accelerate's mixed-precision wrapper: the dev thresholds, the metrics and the guard's
    # reference come from the model's own fp32 forward, as scoring computes it, not under autocast.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).float().cpu().eval()
    thresholds, results, p_dev = tune_and_measure(model, tokenizer, data, config)
    results.update(run_facts(trainer, bf16, time.time() - started))
    meta = write_model(out, model, tokenizer, config, data, thresholds, results)
    results["guard"] = run_guard(out, meta, data.dev, p_dev, config.training.eval_batch_size)
    (out / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
    _swap_into_place(out, final)
    return TrainResult(final, thresholds, results, time.time() - started)


def training_arguments(config: RunConfig, out: Path, bf16: bool, quiet: bool):
    import torch
    from transformers import TrainingArguments

    t = config.training
    eval_kwargs = ({"eval_strategy": "steps", "eval_steps": t.eval_steps, "save_strategy": "steps",
                    "save_steps": t.eval_steps} if t.eval_steps else
                   {"eval_strategy": "epoch", "save_strategy": "epoch"})
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS), num_train_epochs=t.epochs, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size, learning_rate=t.learning_rate, weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio, seed=t.seed, data_seed=t.seed, **bf16_arguments(bf16),
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        load_best_model_at_end=True, metric_for_best_model="macro_f1", greater_is_better=True,
        save_total_limit=2, logging_steps=t.logging_steps, report_to="none", disable_tqdm=quiet,
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(), remove_unused_columns=False,
        **eval_kwargs,
    )


def build_model(config: RunConfig, data: Splits, work: Path, bf16: bool, args):
    """Seam 2, model: the tokenizer and the classifier to fine-tune, with one output per label of
    the recipe: a base checkpoint (:func:`diplostance.bases.load_base`), or the offline model's
    tokenizer and pretraining, done here (kept in ``work`` until the run is complete)."""
    from transformers import set_seed

    t = config.training
    id2label = dict(enumerate(config.label_set.names))
    set_seed(t.seed)
    if config.is_offline:
        from . import offline

        with args.main_process_first(desc="offline tokenizer and pretraining"):
            tokenizer, model = offline.prepare(config, [e.text for e in data.train], id2label, work, bf16)
    else:
        from .bases import load_base

        tokenizer, model = load_base(config.model.base, id2label, config.model.max_length)
    tokenizer.model_max_length = config.model.max_length
    if t.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return tokenizer, model


def fit(config: RunConfig, model, tokenizer, data: Splits, args, bf16: bool, quiet: bool,
        resume_from: Path | None):
    """Seam 3, fit: the Trainer over the training split, selecting on dev macro-F1; with
    ``training.freeze_layers`` and frozen embeddings, the frozen bottom runs once per sentence and
    only the layers above it train (frozen.py).  ``resume_from``: the checkpoints folder of an
    interrupted run.  Returns the trainer, its best model loaded."""
    from transformers import EarlyStoppingCallback, Trainer

    t = config.training
    labels = config.label_set
    train_set = _dataset(data.train, tokenizer, config.model.max_length, labels)
    dev_set = _dataset(data.dev, tokenizer, config.model.max_length, labels, first_row=len(data.train))
    collator, bottom = _collator(tokenizer), None
    if t.freeze_layers and t.freeze_embeddings:  # the bottom's output never changes: compute it once
        from .frozen import FrozenBottom, collator as cached_collator

        bottom = FrozenBottom(model, t.freeze_layers)
        cache = _encode_bottom(bottom, list(train_set["input_ids"]) + list(dev_set["input_ids"]),
                               tokenizer.pad_token_id, bf16, quiet)
        collator = cached_collator(cache)
        bottom.detach()
    pos_weight = None
    if t.pos_weight == "auto":
        y = np.array([labels.vector(e.labels) for e in data.train])
        pos = y.sum(axis=0)
        pos_weight = np.minimum((len(y) - pos) / np.maximum(pos, 1), 10.0).tolist()
    callbacks = [EarlyStoppingCallback(t.early_stopping_patience)] if t.early_stopping_patience else []
    trainer = Trainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
        data_collator=collator, compute_metrics=_selection_metrics(labels),
        compute_loss_func=_bce_loss(pos_weight), callbacks=callbacks,
    )
    _logs_to_stderr(trainer, quiet)
    last = _last_checkpoint(resume_from) if resume_from else None
    reuse_freed_memory()
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    if bottom is not None:
        bottom.restore()
    return trainer


def _logs_to_stderr(trainer, quiet: bool) -> None:
    """The Trainer prints its logs (loss, learning rate, ...) on standard output, where they would
    mix with a command's result (``train --json``): send them to this module's logger instead
    (standard error, silent under ``--quiet``), and keep the progress bar (standard error)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                log.info("%s", {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items()
                                if k != "total_flos"})

    class Bar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(Bar())
    trainer.add_callback(Logs())


def tune_and_measure(model, tokenizer, data: Splits, config: RunConfig) -> tuple[list[float], dict, np.ndarray]:
    """Seam 4, thresholds: each label's threshold tuned on dev (rounded as saved), then the dev and
    test metrics with exactly those thresholds and the decision rule scoring uses.  Returns the
    thresholds, the metrics and the dev probabilities (the guard's reference)."""
    from .backends.base import TorchBackend, predict_proba

    labels, t = config.label_set, config.training
    backend = TorchBackend(model)

    def measure(examples):
        y = np.array([labels.vector(e.labels) for e in examples], dtype=int)
        p, _ = predict_proba(backend, tokenizer, [e.text for e in examples], config.model.max_length,
                             t.eval_batch_size)
        return y, p

    y_dev, p_dev = measure(data.dev)
    thresholds = [round(x, 6) for x in metrics.tune_thresholds(y_dev, p_dev)]
    results = {"dev": metrics.multilabel_report(y_dev, metrics.decide(p_dev, thresholds), labels)}
    if data.test is not None:
        y_test, p_test = measure(data.test)
        results["test"] = metrics.multilabel_report(y_test, metrics.decide(p_test, thresholds), labels)
    return thresholds, results, p_dev


def run_facts(trainer, bf16: bool, seconds: float) -> dict:
    """How the run went: time, hardware, precision, steps."""
    loop_seconds = next((h["train_runtime"] for h in reversed(trainer.state.log_history) if "train_runtime" in h), 0.0)
    return {"train_seconds": round(seconds, 1), "train_device": training_device(trainer.args),
            "precision": "bf16 autocast" if bf16 else "fp32", "train_steps": trainer.state.global_step,
            "seconds_per_step": round(loop_seconds / max(trainer.state.global_step, 1), 3),
            "best_dev_macro_f1_during_training": trainer.state.best_metric}


def write_model(out: Path, model, tokenizer, config: RunConfig, data: Splits, thresholds: list[float],
                results: dict) -> ModelMeta:
    """Seam 5, write: the model directory (:func:`diplostance.model_dir.save_model`); the run's
    work files and checkpoints are removed once it is complete."""
    data_files = [config.data.train, config.data.dev]
    labels = config.label_set
    meta = ModelMeta(
        name=config.name, labels=list(labels.names), primary_order=list(labels.primary_order),
        thresholds=thresholds, max_length=config.model.max_length, config=config.to_dict(),
        training_data={"fingerprint": corpus.fingerprint(data_files), "files": data_files,
                       "train_examples": len(data.train), "dev_examples": len(data.dev)},
        metrics=results, versions=library_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    save_model(out, model, tokenizer, meta, spm=out / WORK / "spm" / SPM_FILE)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    shutil.rmtree(out / WORK, ignore_errors=True)
    return meta


def run_guard(out: Path, meta: ModelMeta, dev: list[corpus.Example], p_dev: np.ndarray, batch_size: int) -> dict:
    """Seam 6, guard: the rounding backends this machine runs natively against the fp32 forward on
    dev, recorded in ``guard.json`` and in the card; scoring then refuses a backend whose decisions
    stray (:func:`diplostance.backends.guard.check_guard`).  An emulated backend is not measured: it
    would take minutes and never be used."""
    from .backends import native_rounding_backends
    from .backends.guard import guard, record_guard

    names = native_rounding_backends()
    log.info("accuracy guard: %s against fp32 on the dev split (%d sentences)", ", ".join(names) or "nothing to check",
             len(dev))
    report = guard(out, [e.text for e in dev], names, batch_size, reference=p_dev)
    record = record_guard(out, report, f"dev split, {len(dev)} sentences")
    write_card(out, meta, record)
    return record


def training_device(args) -> str:
    """What trained the model (the Trainer's ``args``): the GPUs' name and count, or this CPU's name
    and the instruction sets that decide its kernels.  Recorded with the metrics because the same
    recipe, seed and data train to the same weights on one kind of hardware but to slightly
    different ones on another (its fp32 and bf16 kernels round differently; see the README)."""
    device = args.device
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
        return f"{args.world_size} x {name}" if args.world_size > 1 else name
    if device.type == "cpu":
        return cpu_name()
    return str(device)


def _encode_bottom(bottom, sequences, pad_id: int, bf16: bool, quiet: bool):
    """The frozen bottom's output for every training and dev sentence, with a progress bar."""
    from tqdm import tqdm

    started = time.time()
    with tqdm(total=len(sequences), desc=f"frozen layers 1-{bottom.k}", unit="sentence", disable=quiet) as bar:
        cache = bottom.encode(sequences, pad_id, bf16=bf16, progress=bar.update)
    log.info("the frozen embeddings and %d layers ran once over %d sentences in %.1f s", bottom.k, len(sequences),
             time.time() - started)
    return cache


def _collator(tokenizer):
    from transformers import DataCollatorWithPadding

    base = DataCollatorWithPadding(tokenizer)

    def collate(features):
        features = [{k: v for k, v in f.items() if k not in ("length", "row")} for f in features]
        batch = base(features)
        batch["labels"] = batch["labels"].float()
        return batch

    return collate


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that is whole (see :func:`checkpoint_problem`).  A run killed while
    it saved leaves a truncated newest one; resuming from it would crash or load garbage, so the
    one before it is used, with a warning that says which was skipped and why."""
    if not folder.exists():
        return None
    ckpts = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    for ckpt in reversed(ckpts):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt
        log.warning("%s: skipped, not a whole checkpoint (%s); resuming from the one before it", ckpt, problem)
    if ckpts:
        log.warning("%s: no whole checkpoint; training starts again from the beginning", folder)
    return None


def checkpoint_problem(ckpt: Path) -> str | None:
    """What makes a Trainer checkpoint unusable, or None: ``trainer_state.json`` must parse, the
    weights' safetensors header must parse and its tensors fit in the file, and the optimizer and
    scheduler states must be there and not empty (torch files are not unpickled here)."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"trainer_state.json: {exc.strerror if isinstance(exc, OSError) else exc}"
    weights = ckpt / "model.safetensors"
    if weights.exists():
        problem = _safetensors_problem(weights)
        if problem:
            return f"model.safetensors: {problem}"
    elif not (ckpt / "pytorch_model.bin").exists():
        return "no model.safetensors"
    for name in ("optimizer.pt", "scheduler.pt"):
        path = ckpt / name
        if not path.exists() or path.stat().st_size == 0:
            return f"{name} missing or empty"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "shorter than its header"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"header of {n} bytes in a file of {size}"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"unreadable header ({exc})"
    if not isinstance(header, dict):
        return "unreadable header (not a JSON object)"
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and len(v.get("data_offsets") or ()) == 2]
    if ends and 8 + n + max(ends) > size:
        return f"truncated: {size} bytes, its tensors need {8 + n + max(ends)}"
    return None
