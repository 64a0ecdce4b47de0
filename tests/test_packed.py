"""The packed forward (src/diplostance/packed.py) against the transformers forward it replaces."""
import pytest
import torch
from transformers import (BertConfig, BertForSequenceClassification, CamembertConfig,
                          CamembertForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification)

from diplostance.backends import onednn, packed

SIZES = dict(vocab_size=120, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=80, num_labels=4, problem_type="multi_label_classification")


def camembert():
    torch.manual_seed(0)
    return CamembertForSequenceClassification(CamembertConfig(**SIZES, pad_token_id=1)).eval()


def bert():  # a pooler, token types, positions from 0: the e5 layout
    torch.manual_seed(1)
    return BertForSequenceClassification(BertConfig(**SIZES, pad_token_id=0)).eval()


def batch(lengths, pad):
    """Right-padded ids (random tokens after a first one) and the mask, as predict_proba makes them."""
    g = torch.Generator().manual_seed(sum(lengths))
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad)
    mask = torch.zeros((len(lengths), width), dtype=torch.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, SIZES["vocab_size"], (n,), generator=g)
        ids[row, 0] = 0 if pad == 1 else 2
        mask[row, :n] = 1
    return ids, mask


BATCHES = [[7], [9, 9, 9], [20, 13, 5, 2], [70] + [3] * 40]  # alone, no padding, mixed, > 64 rows


@pytest.mark.parametrize("make", [camembert, bert])
@pytest.mark.parametrize("lengths", BATCHES)
def test_fp32_equals_the_transformers_forward(make, lengths):
    model = make()
    ids, mask = batch(lengths, model.config.pad_token_id)
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=mask).logits
        got = packed.PackedClassifier(make(), "fp32")(ids, mask)
    assert got.shape == want.shape == (len(lengths), 4)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def skip_without(kind):
    if kind != "fp32" and not (onednn.int8_supported() if kind == "int8" else onednn.bf16_supported()):
        pytest.skip(f"no oneDNN {kind} kernels on this CPU")


@pytest.mark.parametrize("sliced_max", [128, 16])  # 16: batches wider than 16 tokens take the fused kernel
@pytest.mark.parametrize("lengths", BATCHES)
@pytest.mark.parametrize("kind", ["bf16", "int8"])
@pytest.mark.parametrize("make", [camembert, bert])
def test_low_precision_kinds_stay_close(make, kind, lengths, sliced_max, monkeypatch):
    """Sliced attention and the fused kernel alike: one sentence, whole slices, a last slice filled
    with stand-in sentences ([70] + [3] * 40: 41 sentences in slices of 6)."""
    skip_without(kind)
    monkeypatch.setattr(packed, "SLICED_MAX_LENGTH", sliced_max)
    model = make()
    ids, mask = batch(lengths, model.config.pad_token_id)
    with torch.inference_mode():
        want = torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits)
        got = torch.sigmoid(packed.PackedClassifier(make(), kind)(ids, mask).float())
    assert (got - want).abs().max() < 0.03


def test_int8_compiled_and_eager_passes_agree(monkeypatch):
    """The int8 layers' passes between products, compiled (the default where a C++ compiler is
    present) and eager (DIPLOSTANCE_COMPILE=0 or none): the same forward up to rounding."""
    skip_without("int8")
    model = packed.PackedClassifier(camembert(), "int8")
    ids, mask = batch([20, 13, 5, 2], 1)
    with torch.inference_mode():
        compiled = torch.sigmoid(model(ids, mask).float())
        monkeypatch.setattr(onednn, "kernels", lambda: onednn._Kernels(compiled=False))
        eager = torch.sigmoid(model(ids, mask).float())
    assert (compiled - eager).abs().max() < 0.01


def sharp_attention():
    """Head size 24 (1/sqrt of it is no power of two) and queries and keys scaled up, so that
    attention is far from uniform and a wrong scale or mask shows in the output."""
    torch.manual_seed(2)
    config = CamembertConfig(**{**SIZES, "hidden_size": 72, "num_attention_heads": 3}, pad_token_id=1)
    model = CamembertForSequenceClassification(config).eval()
    with torch.no_grad():
        for layer in model.roberta.encoder.layer:
            layer.attention.self.query.weight *= 6
            layer.attention.self.key.weight *= 6
    return model


@pytest.mark.parametrize("kind", ["fp32", "bf16", "int8"])
def test_attention_is_right_when_it_is_sharp(kind):
    if kind != "fp32" and not (onednn.int8_supported() if kind == "int8" else onednn.bf16_supported()):
        pytest.skip(f"no oneDNN {kind} kernels on this CPU")
    model = sharp_attention()
    ids, mask = batch([20, 13, 5, 2], 1)
    with torch.inference_mode():
        want = torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits)
        got = torch.sigmoid(packed.PackedClassifier(sharp_attention(), kind)(ids, mask).float())
    assert (got - want).abs().max() < (1e-5 if kind == "fp32" else 0.03)


@pytest.mark.parametrize("kind", ["fp32", "bf16", "int8"])
def test_padding_never_changes_a_sentence(kind):
    """In fp32 up to float rounding; in bf16 (sliced attention: widths padded to 16, stand-in
    sentences) up to the rounding of the products, which differ in shape; in int8 too, whose
    activations are quantised per token, not per batch."""
    skip_without(kind)
    model = packed.PackedClassifier(camembert(), kind)
    ids, mask = batch([20, 13, 5], 1)
    with torch.inference_mode():
        together = model(ids, mask).float()
        alone = torch.cat([model(ids[i:i + 1, :n], mask[i:i + 1, :n]) for i, n in enumerate([20, 13, 5])]).float()
    torch.testing.assert_close(together, alone, atol=2e-5 if kind == "fp32" else 0.02, rtol=1e-4)


def test_sliced_attention_runs_few_matrix_shapes(monkeypatch):
    """oneDNN builds kernels per matrix shape and keeps them: attention on each batch's own
    (sentences, length) shape grew a long scoring run's memory by hundreds of MB.  Sliced, the
    products see one shape per length padded to 16 tokens, whatever the number of sentences."""
    skip_without("bf16")
    seen = set()
    matmul = torch.matmul

    def recording(a, b, **kw):
        seen.add((tuple(a.shape), tuple(b.shape)))
        return matmul(a, b, **kw)

    model = packed.PackedClassifier(camembert(), "bf16")
    monkeypatch.setattr(torch, "matmul", recording)
    with torch.inference_mode():
        for lengths in ([7], [9, 9, 9], [20, 13, 5, 2], [5] * 11, [12] * 50, [30] * 7, [33, 2], [70] + [3] * 40):
            assert model(*batch(lengths, 1)).shape == (len(lengths), 4)
    heads, size = 4, 16
    # slices of 512 // width sentences; scores, then context; the last layer takes the fused kernel
    want = {shape for width in (16, 32, 48, 80) for per in [512 // width] for shape in
            [((per, heads, width, size), (per, heads, size, width)), ((per, heads, width, width), (per, heads, width, size))]}
    assert seen == want


@pytest.mark.parametrize("make", [camembert, bert])
def test_every_product_sees_a_few_fixed_row_counts(make):
    """oneDNN builds and caches a kernel per matrix shape: a product on each batch's own sentence
    count (the classification head once did) grew the memory of a long scoring run by ~35 MB."""
    model = packed.PackedClassifier(make(), "fp32")
    seen = set()
    for module in model.modules():
        if isinstance(module, (packed._Fp32Linear, onednn.PackedLinear, torch.nn.Linear)):
            module.register_forward_pre_hook(lambda m, args: seen.add(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
    with torch.inference_mode():
        for lengths in ([7], [9, 9, 9], [20, 13, 5, 2], [5] * 11, [70] + [3] * 40):
            assert model(*batch(lengths, make().config.pad_token_id)).shape == (len(lengths), 4)
    assert seen == {64, 256}  # padded_rows: up to 64 tokens or sentences, and 190 tokens


def test_left_padding_is_refused():
    model = packed.PackedClassifier(camembert(), "fp32")
    ids, mask = batch([6, 3], 1)
    with pytest.raises(ValueError, match="right padding only"):
        model(ids, mask.flip(1))


def test_conversion_releases_the_original_layers():
    model = camembert()
    packed.PackedClassifier(model, "fp32")
    assert all(isinstance(layer, torch.nn.Identity) for layer in model.base_model.encoder.layer)


def test_unsupported_models_say_why_and_are_refused():
    torch.manual_seed(0)
    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=2,
                                                                  hidden_dim=64))
    assert "model type 'distilbert'" in packed.unsupported(distil)
    relative = CamembertForSequenceClassification(CamembertConfig(**SIZES, position_embedding_type="relative_key"))
    assert "position embeddings 'relative_key'" in packed.unsupported(relative)
    assert packed.unsupported(camembert()) is None
    with pytest.raises(ValueError, match="cannot pack this model: model type 'distilbert'"):
        packed.PackedClassifier(distil)
    with pytest.raises(ValueError, match=r"unknown kind 'fp16'; expected one of \['fp32', 'bf16', 'int8'\]"):
        packed.PackedClassifier(camembert(), "fp16")


def test_batches_are_padded_to_few_row_counts():
    assert [packed.padded_rows(n, 2048) for n in (1, 64, 65, 200, 257, 513, 1025, 1537, 2047, 2048, 2049)] == \
        [64, 64, 128, 256, 512, 1024, 1536, 2048, 2048, 2048, 4096]


def test_predict_proba_fills_a_packed_backends_batches_by_tokens():
    import numpy as np

    from diplostance.backends.base import _batches

    lengths = [30, 5, 20, 20, 10, 40]
    order = np.argsort([-n for n in lengths], kind="stable")  # 40, 30, 20, 20, 10, 5
    by_tokens = [list(b) for b in _batches(order, lengths, batch_size=2, batch_tokens=50)]
    assert by_tokens == [[5], [0, 2], [3, 4, 1]]  # 40 | 30+20 | 20+10+5; batch_size is not used
    assert [list(b) for b in _batches(order, lengths, batch_size=4, batch_tokens=None)] == [[5, 0, 2, 3], [4, 1]]
    assert [list(b) for b in _batches(order, lengths, 4, batch_tokens=10)] == [[5], [0], [2], [3], [4], [1]]
