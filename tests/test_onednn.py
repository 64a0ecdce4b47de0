"""oneDNN layers (src/diplostance/onednn.py): each against the plain PyTorch computation it replaces."""
import pytest
import torch

from diplostance import onednn

needs_int8 = pytest.mark.skipif(not onednn.int8_supported(), reason="no oneDNN int8 kernels on this CPU")
needs_bf16 = pytest.mark.skipif(not onednn.bf16_supported(), reason="no oneDNN bf16 kernels on this CPU")


def test_quantiser_round_trips_within_half_a_step_and_keeps_zero_exact():
    torch.manual_seed(0)
    x = (torch.randn(37, 48) * 3 + 1).to(torch.bfloat16)
    x[0, 0] = 0
    for quantise in (onednn._quantize_eager, onednn.quantizer()):
        q, scale, zero = quantise(x)
        assert q.dtype == torch.uint8 and q.shape == x.shape
        back = (q.float() - zero) * scale
        assert (back - x.float()).abs().max() <= scale * 0.5 + 1e-6
        assert back[0, 0] == 0
    # compiled (when a compiler is present) and eager give the same scale and codes within one step
    qe, se, ze = onednn._quantize_eager(x)
    qc, sc, zc = onednn.quantizer()(x)
    assert torch.equal(se, sc) and torch.equal(ze, zc) and (qe.int() - qc.int()).abs().max() <= 1


def test_quantiser_of_an_all_zero_tensor_is_not_nan():
    q, scale, zero = onednn._quantize_eager(torch.zeros(4, 8, dtype=torch.bfloat16))
    assert torch.isfinite(scale) and (q.int() == zero).all()


@needs_int8
@pytest.mark.parametrize("post", ["none", "gelu"])
def test_int8_linear_matches_float_linear(post):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96)
    x = torch.randn(3, 5, 64)
    want = linear(x)
    if post == "gelu":
        want = torch.nn.functional.gelu(want)
    residual = torch.randn(3, 5, 96)
    with torch.inference_mode():
        layer = onednn.Int8Linear(linear, post)
        got = layer(x.to(torch.bfloat16)).float()
        got_res = onednn.Int8Linear(linear)(x.to(torch.bfloat16), residual=residual.to(torch.bfloat16)).float()
    assert got.shape == (3, 5, 96)
    scale = want.abs().max()
    assert (got - want).abs().max() / scale < 0.03
    assert (got_res - (linear(x) + residual)).abs().max() / scale < 0.05


@needs_bf16
def test_fused_qkv_gives_each_part_its_own_projection_and_forgets_the_batch():
    torch.manual_seed(0)
    q, k, v = (torch.nn.Linear(32, 32) for _ in range(3))
    shared = onednn._FusedQKV(q, k, v, onednn.PackedLinear)
    parts = [onednn._QKVPart(shared, i) for i in range(3)]
    x = torch.randn(2, 7, 32)
    with torch.inference_mode():
        xb = x.to(torch.bfloat16)
        got = [p(xb).float() for p in parts]
        assert shared._input is None and shared._output is None  # nothing outlives the layer call
        for lin, g in zip((q, k, v), got):
            assert (g - lin(x)).abs().max() < 0.05
        # a new input recomputes, even if a part is asked twice in a row
        y = torch.randn(2, 7, 32).to(torch.bfloat16)
        assert not torch.equal(parts[0](y), got[0].to(torch.bfloat16))
        assert torch.equal(parts[0](y), parts[0](y))
