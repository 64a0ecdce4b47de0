import json
import time

import pytest

from diplostance.backends.base import windows
from diplostance.bases import HubUnavailableError, load_base
from diplostance.model_dir import ModelDirError, read_meta

ID2LABEL = {0: "commitment", 1: "support", 2: "opposition", 3: "greeting"}


def test_hub_offline_fails_at_once_with_the_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    started = time.time()
    with pytest.raises(HubUnavailableError) as info:
        load_base("almanach/camembert-base", ID2LABEL, 128)
    assert time.time() - started < 20
    message = str(info.value)
    for fix in ("local folder", "cache", "training/offline.toml"):
        assert fix in message


def test_unreachable_hub_fails_within_seconds(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.time()
    with pytest.raises(HubUnavailableError, match="cannot be reached"):
        load_base("almanach/camembert-base", ID2LABEL, 128, hub_timeout=2)
    assert time.time() - started < 30


def test_model_directory_from_another_version_is_refused(tmp_path):
    (tmp_path / "diplostance.json").write_text(json.dumps({"format_version": 99, "versions": {"diplostance": "9.0"}}))
    with pytest.raises(ModelDirError, match="format version 99.*reads version 1.*9.0"):
        read_meta(tmp_path)
    with pytest.raises(ModelDirError, match="no such folder"):
        read_meta(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    with pytest.raises(ModelDirError, match="no diplostance.json"):
        read_meta(tmp_path / "other")


def test_windows_cover_long_inputs():
    ids = list(range(25))
    ws = windows(ids, 10, 5)
    assert ws[0] == ids[:10] and ws[-1][-1] == 24
    assert sorted({i for w in ws for i in w}) == ids
    assert windows(ids[:5], 10, 5) == [ids[:5]]
