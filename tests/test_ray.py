"""Scoring through Ray Data (``score --engine ray``): the same rows as local scoring, failures in
the errors table, resume; and the one-line message when Ray is not installed.

The Ray tests start one real local cluster per session (``local_mode`` is gone), on 2 CPUs with
one actor of 1 CPU: actors that take every CPU leave none for reading, and the dataset waits
forever (ray#44687)."""
import importlib.util
import json
import sys

import pytest

from diplostance.cli import main
from diplostance.outputs import read_rows

from conftest import DATA

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason='Ray is not installed: pip install -c constraints.txt -e ".[ray]"')
RAY = ["--engine", "ray", "--workers", "1", "--threads", "1", "--quiet"]


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def documents(n, start=0):
    lines = (DATA / "documents" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[start:start + n]]


def write_table(path, docs):
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")


def dataset_rows(folder):
    """The rows of a Parquet dataset written by --engine ray (errors table and hidden files aside)."""
    from diplostance.distributed import read_dataset

    return read_dataset(folder).to_pylist()


def assert_same_rows(local, distributed):
    key = lambda r: (r["doc_id"], r["sentence_index"])  # noqa: E731 - Ray does not keep the input order
    local, distributed = sorted(local, key=key), sorted(distributed, key=key)
    assert [key(r) for r in local] == [key(r) for r in distributed]
    for a, b in zip(local, distributed):
        assert sorted(a) == sorted(b)  # the same columns
        for column, value in a.items():
            if column.startswith("p_"):  # rounded to 6 decimals: a difference under 1e-6 may flip the last one
                assert abs(b[column] - value) <= 1e-6 + 1e-12, (key(a), column, value, b[column])
            else:
                assert b[column] == value, (key(a), column)


@needs_ray
def test_ray_rows_equal_local_rows_and_failures_go_to_the_errors_table(tiny_model, ray_cluster, tmp_path):
    from diplostance.distributed import ERRORS_DIR, read_failures

    folder = tmp_path / "in"
    folder.mkdir()
    docs = documents(48)
    write_table(folder / "a.jsonl", docs[:30] + [{"id": "empty", "text": "   "}, {"text": "no id here"}])
    write_table(folder / "b.jsonl", docs[30:])
    (folder / "c.txt").write_text(docs[0]["text"], encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00\x01")

    local = tmp_path / "local.parquet"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(local), "--quiet"]) == 1
    out = tmp_path / "scored"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), *RAY]) == 1

    rows = dataset_rows(out)
    assert_same_rows(read_rows(local), rows)
    assert {"actors", "targets", "actor_spans", "target_spans", "parties"} <= set(rows[0])  # who to whom too
    failures = {(f.id, f.source, f.reason) for f in read_failures(out)}
    assert any(i == "a.jsonl#empty" and "empty document" in reason for i, _, reason in failures)
    assert any(source.endswith("a.jsonl:32") and "missing id" in reason for _, source, reason in failures)
    assert any(source.endswith("notes.bin") and "unsupported file type" in reason for _, source, reason in failures)
    assert len(failures) == 3 and (out / ERRORS_DIR).is_dir()


@needs_ray
def test_ray_resume_scores_only_what_is_missing(tiny_model, ray_cluster, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_table(folder / "a.jsonl", documents(6))
    out = tmp_path / "scored"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), *RAY]) == 0
    first = dataset_rows(out)

    write_table(folder / "b.jsonl", documents(4, start=6))
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), *RAY]) == 2
    assert "use --resume" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), "--resume",
                 *[a for a in RAY if a != "--quiet"]]) == 0
    line = capsys.readouterr().err
    assert "scored 4 document(s)" in line and "6 skipped (resume)" in line, line

    local = tmp_path / "local.parquet"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(local), "--quiet"]) == 0
    rows = dataset_rows(out)
    assert_same_rows(read_rows(local), rows)
    assert {r["doc_id"] for r in first} < {r["doc_id"] for r in rows}


def test_engine_ray_without_ray_names_the_install_command(tiny_model, tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    (tmp_path / "a.txt").write_text("Le Canada condamne fermement ces frappes.", encoding="utf-8")
    code = main(["score", str(tiny_model.output), str(tmp_path / "a.txt"), "--engine", "ray",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install -c constraints.txt -e ".[ray]"' in err
    assert not (tmp_path / "out").exists()


def test_package_imports_without_ray():
    import subprocess

    code = ("import sys; sys.modules['ray'] = None; import diplostance.distributed, diplostance.cli, "
            "diplostance.score")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
