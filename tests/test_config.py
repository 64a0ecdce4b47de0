from pathlib import Path

import tomllib

import pytest

from diplostance.config import ConfigError, load_config

from conftest import ROOT


@pytest.mark.parametrize("recipe", ["offline.toml", "tiny.toml", "camembert-base.toml"])
def test_shipped_recipes_load(recipe):
    config = load_config(ROOT / "training" / recipe)
    # paths in a recipe are relative to the recipe file: the repository's models/ and data/
    assert config.output == str(ROOT / "models" / config.name)
    for split in ("train", "dev", "test"):
        assert Path(getattr(config.data, split)).is_file(), split


def test_overrides_are_typed():
    config = load_config(ROOT / "training" / "tiny.toml", ["training.epochs=3", "model.base=almanach/camembert-base",
                                                            "training.bf16=true"])
    assert config.training.epochs == 3.0 and isinstance(config.training.epochs, float)
    assert config.model.base == "almanach/camembert-base"
    assert config.training.bf16 is True


def test_unknown_key_is_refused_with_its_name(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nepochz = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key training\.epochz"):
        load_config(path)


def test_wrong_type_is_refused_with_its_name(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[training]\nbatch_size = "big"\n')
    with pytest.raises(ConfigError, match=r"training\.batch_size: expected int, got str"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"training\.pos_weight"):
        load_config(None, ["training.pos_weight=sometimes"])


def test_config_round_trips_through_toml(tmp_path):
    config = load_config(ROOT / "training" / "offline.toml", ["training.epochs=2"])
    saved = tmp_path / "saved.toml"
    saved.write_text(config.to_toml())
    assert load_config(saved).to_dict() == config.to_dict()
    assert tomllib.loads(config.to_toml())["training"]["epochs"] == 2.0
