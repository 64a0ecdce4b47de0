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
def test_packed_bf16_linear_adds_the_residual_inside_the_product():
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 48)
    x, residual = torch.randn(2, 7, 32), torch.randn(2, 7, 48)
    with torch.inference_mode():
        layer = onednn.PackedLinear(linear)
        got = layer(x.to(torch.bfloat16), residual=residual.to(torch.bfloat16)).float()
        gelu = onednn.PackedLinear(linear, "gelu")(x.to(torch.bfloat16)).float()
    assert got.shape == (2, 7, 48)
    assert (got - (linear(x) + residual)).abs().max() < 0.05
    assert (gelu - torch.nn.functional.gelu(linear(x))).abs().max() < 0.05


@pytest.mark.skipif(not onednn.fp32_supported(), reason="no oneDNN fp32 kernels on this CPU")
def test_packed_fp32_linear_is_exact_with_the_gelu_and_the_residual_inside():
    """The exact backend's layers: fp32 rounding only (a different summation order)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 80)
    x, residual = torch.randn(3, 11, 96), torch.randn(3, 11, 80)
    with torch.inference_mode():
        plain = onednn.PackedLinear(linear, dtype=torch.float32)(x)
        added = onednn.PackedLinear(linear, dtype=torch.float32)(x, residual=residual)
        gelu = onednn.PackedLinear(linear, "gelu", dtype=torch.float32)(x)
        assert plain.dtype == torch.float32 and plain.shape == (3, 11, 80)
        torch.testing.assert_close(plain, linear(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(added, linear(x) + residual, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gelu, torch.nn.functional.gelu(linear(x)), atol=1e-5, rtol=1e-5)


def test_compiled_quantiser_takes_any_shape_and_falls_back_for_odd_sizes():
    torch.manual_seed(0)
    quantise = onednn.quantizer()
    for shape in [(3, 64), (5, 7, 128), (130, 64), (3, 5)]:  # 15 values: not whole rows of 64, eager
        x = torch.randn(*shape).to(torch.bfloat16)
        q, scale, zero = quantise(x)
        qe, se, ze = onednn._quantize_eager(x)
        assert q.shape == x.shape and torch.equal(scale, se) and (q.int() - qe.int()).abs().max() <= 1
