"""evaluate/benchmark.py's report: targets judged as ratios of the same run, and the profile.

The benchmark itself is run on demand (it measures speed); these tests check the arithmetic and
wording of its report on made-up figures."""
import importlib.util

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("diplostance_benchmark", ROOT / "evaluate" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(amx: bool, best_per_s: float, fp32_per_s: float = 32.0) -> dict:
    rows = [{"config": "pipeline b1", "per_s": 15.0, "x_baseline": 1.0},
            {"config": "fp32", "per_s": fp32_per_s, "x_baseline": fp32_per_s / 15.0},
            {"config": "int8", "per_s": best_per_s, "x_baseline": best_per_s / 15.0}]
    # flops_per_token * mean_tokens = 1e9 per sentence: GFLOP/s read directly as sentences/s
    ceiling = {"flops_per_token": 1e9 / 50, "mean_tokens": 50, "tokens": 1600,
               "kernels": {"fp32": {"gflops": 33.0}, "fp32-onednn": {"gflops": 40.0}, "bf16": {"gflops": 260.0},
                           "int8": {"gflops": 400.0}}}  # the fp32 backend runs on oneDNN's kernel, not MKL's
    return {"amx": amx, "base": {"rows": rows}, "best_backend": "int8", "ceiling": ceiling,
            "guard": {"backends": {"int8": {"agreement": 0.999, "ok": True}}},
            "train": {"speedup": 3.4}, "stream": [stream(800.0, 860.0), stream(800.0, 810.0), stream(790.0, 860.0)]}


def stream(after_n: float, after_10n: float) -> list[dict]:  # one round: the marks after N and 10N documents
    return [{"documents": 60, "peak_rss_mb": after_n + 50, "scoring_peak_mb": after_n},
            {"documents": 600, "peak_rss_mb": after_10n + 50, "scoring_peak_mb": after_10n}]


def target_rows(bench, r) -> dict[str, str]:
    rows = [line for line in bench.targets(r) if line.startswith("| ") and not line.startswith("| target")]
    return {row.split(" | ")[0][2:]: row for row in rows}


def test_with_amx_the_best_backend_needs_12x_and_60_percent_of_its_ceiling(bench):
    rows = target_rows(bench, result(amx=True, best_per_s=200.0))  # 13.3x but 50% of the 400/s ceiling
    best = next(v for k, v in rows.items() if k.startswith("best guarded backend (int8) >= 12x"))
    assert "13.3x, 50% of ceiling" in best and "400/s = 26.7x" in best and best.endswith("**no** |")
    rows = target_rows(bench, result(amx=True, best_per_s=250.0))
    assert next(v for k, v in rows.items() if k.startswith("best guarded")).endswith("| yes |")


def test_without_amx_6x_is_enough(bench):
    rows = target_rows(bench, result(amx=False, best_per_s=100.0))  # 6.7x, 25% of its ceiling
    best = next(v for k, v in rows.items() if k.startswith("best guarded backend (int8) >= 6x"))
    assert best.endswith("| yes |")


def test_fp32_training_streaming_and_guard_targets(bench):
    rows = target_rows(bench, result(amx=True, best_per_s=250.0, fp32_per_s=27.0))
    fp32 = next(v for k, v in rows.items() if k.startswith("exact fp32 >= 2x"))
    assert "1.8x, 68% of ceiling" in fp32 and fp32.endswith("**no** |")
    assert next(v for k, v in rows.items() if k.startswith("training")).endswith("| yes |")
    stream = next(v for k, v in rows.items() if k.startswith("streaming"))
    # round growths +7.5%, +1.25%, +8.9%: the median is +7.5%, more than 5%; peaks are medians too
    assert "scoring peak, median of 3 rounds" in stream and "800 MB -> 860 MB (+7.5%)" in stream
    assert stream.endswith("**no** |")
    assert next(v for k, v in rows.items() if k.startswith("guard")).endswith("| yes |")


def test_profile_section_splits_the_time_above_the_ceiling(bench):
    r = result(amx=True, best_per_s=150.0)
    categories = {"matrix products (linear layers)": 3.0, "attention (scores, softmax, context)": 1.0,
                  "activation quantisation": 1.0, "outside operators (tokeniser, batching, Python)": 1.0}
    r["profile"] = {"int8": {"sentences": 1000, "wall_s": 6.0, "unprofiled_s": 6.0, "categories": categories,
                             "top_ops": [["onednn::qlinear_pointwise", 3.0]]},
                    "bf16": {"sentences": 1000, "wall_s": 6.0, "unprofiled_s": 6.0, "categories": categories,
                             "top_ops": [["mkldnn::_linear_pointwise", 3.0]]}}
    text = "\n".join(bench.profile_section(r))
    assert "| attention (scores, softmax, context) | 1.00 (17%) | 1.00 (17%) |" in text
    # int8: 6 ms per sentence against 2.5 ms at its 400/s ceiling; the matrix products' own excess is
    # 3.0 - 2.5 = 0.5 ms, the rest is attention, quantisation and Python (1 ms each)
    assert "**int8**: 3.50 ms per sentence above the ceiling (140% of the ceiling time)" in text
    assert "matrix products below their ceiling speed 14%" in text and "attention (scores, softmax, context) 29%" in text


def test_without_avx512_3x_and_fp32_at_1_5x_are_enough(bench):
    r = result(amx=False, best_per_s=48.0, fp32_per_s=24.0)  # 3.2x and 1.6x
    r["tier"], r["caps"] = "avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    rows = target_rows(bench, r)
    assert next(v for k, v in rows.items() if k.startswith("best guarded backend (int8) >= 3x")).endswith("| yes |")
    assert next(v for k, v in rows.items() if k.startswith("exact fp32 >= 1.5x")).endswith("| yes |")
    text = "\n".join(bench.targets(r))
    assert "has AVX2 but no AVX-512" in text and "imitated: ONEDNN_MAX_CPU_ISA=AVX2" in text
    r["base"]["rows"][2]["x_baseline"] = 2.9
    assert next(v for k, v in target_rows(bench, r).items() if k.startswith("best guarded")).endswith("**no** |")


def test_results_are_kept_under_the_date_and_cpu_kind(bench):
    r = {"date": "2026-12-07T20:00:00+00:00", "cpu": "AMD EPYC (avx2, fma)", "tier": "avx2",
         "caps": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert bench.run_name(r) == "2026-12-07-amd-epyc-avx2-imitated"
    assert bench.run_name({**r, "caps": {}}) == "2026-12-07-amd-epyc-avx2"
