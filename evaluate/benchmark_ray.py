"""Scoring through Ray Data against local scoring, on demand (not in CI).

    .venv/bin/python evaluate/benchmark_ray.py [--model DIR] [--documents 400] [--threads 1]

On the corpus readouts (data/documents/*.jsonl, repeated with fresh ids up to --documents), it
measures documents/s of local scoring (``score_inputs``, --threads CPUs) and of ``score --engine
ray`` with 1 and 2 actors of --threads CPUs each on a local cluster; Ray's start-up cost (``ray.init``,
and the fixed cost of a run: actors loading the model, the pipeline starting); the peak memory (VmHWM) of each actor process; and, from one
actor's steady throughput, the actors and machines that score 10 million readouts in an hour.
Without --model it trains the tiny test recipe (training/tiny.toml) into models/bench-tiny.

Each engine scores N/4 and then N documents, each run timed whole; the steady rate is
(N - N/4) / (time(N) - time(N/4)), so the fixed cost of a run is not counted in it.  The local cluster gets --threads x actors + 1 logical CPUs
(one for reading and writing; ray#44687), whatever the machine has: on 2 cores, 2 actors of 1
thread share them with the reading.

Writes evaluate/benchmarks/<date>-ray-<cpu>.md and .json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "evaluate" / "benchmarks"
TARGET_DOCS, TARGET_SECONDS = 10_000_000, 3600
#: The default model (offline-e5) in int8 on 2 threads of an AMD EPYC Zen 4, sentences/s, from
#: evaluate/benchmarks/README.md: the projection for it scales the tiny model's Ray efficiency.
DEFAULT_MODEL = {"name": "offline-e5", "backend": "int8", "threads": 2, "sentences_per_s": 191.0}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def corpus_documents(n: int) -> list[dict]:
    docs = []
    for split in ("train", "dev", "test"):
        for line in (ROOT / "data" / "documents" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            docs.append({"id": row["id"], "text": row["text"], "date": row.get("date")})
    return [{**docs[i % len(docs)], "id": f"{docs[i % len(docs)]['id']}-{i}"} for i in range(n)]


def write_table(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path


class ActorMemory:
    """Polls /proc for Ray's actor processes (``ray::MapWorker``) and keeps each one's VmHWM."""

    def __init__(self):
        self.peaks: dict[int, float] = {}
        self._before = set(self._actors())  # actors of an earlier run, not yet gone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _actors():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if "MapWorker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace"):
                    yield pid
            except OSError:
                continue

    def _run(self):
        while not self._stop.is_set():
            for pid in set(self._actors()) - self._before:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peaks[int(pid)] = max(self.peaks.get(int(pid), 0), int(line.split()[1]) / 1024)
                except OSError:
                    continue
            self._stop.wait(0.2)


def time_local(model: str, table: Path, threads: int, work: Path) -> float:
    from diplostance.score import score_inputs

    out = work / f"local-{table.stem}.jsonl"
    started = time.perf_counter()
    result = score_inputs(model, [str(table)], str(out), threads=threads, quiet=True, force=True)
    assert result.exit_code == 0, result.failures
    return time.perf_counter() - started


def time_ray(model: str, table: Path, workers: int, threads: int, work: Path) -> tuple[float, list[float]]:
    from diplostance.distributed import score_with_ray

    out = work / f"ray-{workers}-{table.stem}"
    shutil.rmtree(out, ignore_errors=True)
    with ActorMemory() as memory:
        started = time.perf_counter()
        result = score_with_ray(model, [str(table)], str(out), workers=workers, threads=threads, quiet=True)
        seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.failures
    return seconds, sorted(memory.peaks.values())


def ensure_tiny(model: Path) -> None:
    if (model / "diplostance.json").exists():
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import tiny_config  # the test suite's recipe with absolute data paths

    from diplostance.train import train

    train(tiny_config(), output=model, quiet=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model directory (default: the tiny test recipe, trained into models/bench-tiny)")
    p.add_argument("--documents", type=int, default=400, help="documents per run (default 400)")
    p.add_argument("--threads", type=int, default=1, help="CPUs per actor, and of local scoring (default 1)")
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model = Path(a.model or ROOT / "models" / "bench-tiny")
    if not a.model:
        ensure_tiny(model)
    import ray

    from diplostance.classifier import StanceClassifier
    from diplostance.segment import get_splitter

    docs = corpus_documents(a.documents)
    splitter = get_splitter("default")
    sentences = sum(len(splitter.split(d["text"])) for d in docs)
    backend = StanceClassifier.load(model, threads=a.threads).backend.name
    shown = model.resolve().relative_to(ROOT) if model.resolve().is_relative_to(ROOT) else model
    r = {"date": dt.date.today().isoformat(), "cpu": cpu_name(), "cores": os.cpu_count(), "model": str(shown),
         "backend": backend, "documents": a.documents, "sentences": sentences, "threads": a.threads,
         "ray_version": ray.__version__, "load_average_start": os.getloadavg()[0]}
    small_n = max(1, a.documents // 4)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = write_table(work / "small.jsonl", docs[:small_n])
        many = write_table(work / "many.jsonl", docs)

        def measured(t_small: float, t_many: float) -> dict:
            rate = (a.documents - small_n) / max(t_many - t_small, 1e-9)
            return {"seconds": round(t_many, 2), "small_run_seconds": round(t_small, 2),
                    "documents_per_s": round(a.documents / t_many, 1), "steady_documents_per_s": round(rate, 1),
                    "fixed_seconds": round(max(t_small - small_n / rate, 0.0), 2)}

        r["small_documents"] = small_n
        r["local"] = measured(time_local(str(model), small, a.threads, work),
                              time_local(str(model), many, a.threads, work))
        r["ray"] = {}
        for workers in (1, 2):
            started = time.perf_counter()
            ray.init(num_cpus=workers * a.threads + 1, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
            init = time.perf_counter() - started
            t_small, _ = time_ray(str(model), small, workers, a.threads, work)
            t_many, peaks = time_ray(str(model), many, workers, a.threads, work)
            ray.shutdown()
            r["ray"][workers] = {**measured(t_small, t_many), "ray_init_seconds": round(init, 2),
                                 "actor_peak_rss_mb": [round(m) for m in peaks]}
    per_actor = r["ray"][1]["steady_documents_per_s"]
    needed = TARGET_DOCS / TARGET_SECONDS
    actors = -(-needed // per_actor)
    r["projection"] = {"documents": TARGET_DOCS, "seconds": TARGET_SECONDS, "documents_per_s_needed": round(needed, 1),
                       "per_actor_documents_per_s": per_actor, "actors": int(actors),
                       "machines_16_cores": int(-(-actors * a.threads // 15))}
    efficiency = per_actor / max(r["local"]["steady_documents_per_s"], 1e-9)
    per_actor_default = DEFAULT_MODEL["sentences_per_s"] / (sentences / a.documents) * min(efficiency, 1.0)
    actors_default = -(-needed // per_actor_default)
    r["projection_default_model"] = {**DEFAULT_MODEL, "ray_efficiency": round(efficiency, 3),
                                     "per_actor_documents_per_s": round(per_actor_default, 1),
                                     "actors": int(actors_default),
                                     "machines_16_cores": int(-(-actors_default // (15 // DEFAULT_MODEL["threads"])))}
    r["load_average_end"] = os.getloadavg()[0]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{r['date']}-ray-{r['cpu'].lower().replace(' ', '-')}"
    (out / f"{name}.json").write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(report(r), encoding="utf-8")
    print(report(r))
    return 0


def report(r: dict) -> str:
    sentences_per_doc = r["sentences"] / r["documents"]
    lines = [f"# Scoring through Ray Data, {r['date']}", "",
             f"CPU: {r['cpu']} ({r['cores']} cores, shared with other work: load average {r['load_average_start']:.1f} "
             f"at the start, {r['load_average_end']:.1f} at the end). Model `{r['model']}` (backend `{r['backend']}`), "
             f"{r['documents']} corpus readouts ({r['sentences']} sentences, {sentences_per_doc:.1f} per readout), "
             f"{r['threads']} thread(s) per actor and for local scoring; Ray {r['ray_version']}, a local cluster. "
             f"`python evaluate/benchmark_ray.py` wrote this.", "",
             f"| engine | {r['documents']} documents | documents/s | steady documents/s | fixed cost of a run | "
             "ray.init | peak RSS per actor |", "|---|---:|---:|---:|---:|---:|---:|"]
    loc = r["local"]
    lines.append(f"| local (`score_inputs`) | {loc['seconds']:.1f} s | {loc['documents_per_s']:.1f} | "
                 f"{loc['steady_documents_per_s']:.1f} | {loc['fixed_seconds']:.1f} s | | |")
    for workers, x in r["ray"].items():
        lines.append(f"| Ray, {workers} actor(s) | {x['seconds']:.1f} s | {x['documents_per_s']:.1f} | "
                     f"{x['steady_documents_per_s']:.1f} | {x['fixed_seconds']:.1f} s | {x['ray_init_seconds']:.1f} s | "
                     f"{', '.join(f'{m} MB' for m in x['actor_peak_rss_mb'])} |")
    lines += ["", f"Steady documents/s: ({r['documents']} - {r['small_documents']}) / (time of {r['documents']} "
                  f"documents - time of {r['small_documents']}), so the fixed cost of a run (Ray: actors starting "
                  f"and loading the model, the pipeline starting) is not counted in it; the fixed cost is what the "
                  f"{r['small_documents']}-document run took beyond its documents at that rate."]
    pj = r["projection"]
    lines += ["", f"Projection: {pj['documents']:,} readouts in an hour need {pj['documents_per_s_needed']:,.0f} "
                  f"documents/s; at one actor's steady {pj['per_actor_documents_per_s']:.1f} documents/s that is "
                  f"{pj['actors']:,} actors of {r['threads']} CPU(s), about {pj['machines_16_cores']:,} machines of 16 "
                  f"cores (15 actors each, one CPU left for reading and writing), for this model on this CPU; "
                  f"the time per readout scales with the model."]
    d = r["projection_default_model"]
    lines += ["", f"For the default model ({d['name']}, `{d['backend']}`, {d['sentences_per_s']:.0f} sentences/s on "
                  f"{d['threads']} threads of an AMD EPYC Zen 4, [README.md](README.md) beside this file), not measured "
                  f"here: {d['sentences_per_s']:.0f} / {sentences_per_doc:.1f} sentences per readout x the Ray efficiency "
                  f"measured above (one actor's steady rate / local's, {d['ray_efficiency']:.2f}, at most 1) = "
                  f"{d['per_actor_documents_per_s']:.1f} readouts/s per actor of {d['threads']} CPUs, so "
                  f"{d['actors']:,} actors ({d['actors'] * d['threads']:,} CPUs), about {d['machines_16_cores']:,} "
                  f"machines of 16 cores ({15 // d['threads']} actors each), for 10 million readouts in an hour.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
