import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _fake_half(model_dir, model=None, threads=None, name="fake-half"):
    """A backend made for the tests: the transformers forward, its logits rounded to float16."""
    import numpy as np

    from diplostance.backends.pytorch import load_transformers

    inner = load_transformers(model_dir, model)

    class FakeHalf:
        batch_tokens = None

        def __init__(self):
            self.name = name

        def logits(self, input_ids, attention_mask):
            return inner.logits(input_ids, attention_mask).astype(np.float16).astype(np.float32)

    return FakeHalf()


def _register_fake_backend() -> None:
    """One registry row, nothing else: test_backends.py checks it shows up everywhere."""
    from diplostance import backends

    backends.register(backends.Spec("fake-half", _fake_half, rounds=True, help="tests only: logits in float16"))


_register_fake_backend()
DATA = ROOT / "data"


def tiny_config(**overrides):
    """The tiny recipe, with data paths made absolute so tests run from any folder."""
    from diplostance.config import load_config

    sets = [f"data.{s}={DATA / 'sentences' / f'{s}.jsonl'}" for s in ("train", "dev", "test")]
    sets += [f"{k}={v}" for k, v in overrides.items()]
    return load_config(ROOT / "training" / "tiny.toml", sets)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Train the tiny recipe once per session (seconds); shared by the tests that need a model."""
    from diplostance.train import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    result = train(tiny_config(), output=out, quiet=True)
    return result
