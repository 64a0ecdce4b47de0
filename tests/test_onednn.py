"""oneDNN layers (src/diplostance/onednn.py): each against the plain PyTorch computation it replaces."""
import pytest
import torch

from diplostance.backends import onednn

needs_int8 = pytest.mark.skipif(not onednn.int8_supported(), reason="no oneDNN int8 kernels on this CPU")
needs_bf16 = pytest.mark.skipif(not onednn.bf16_supported(), reason="no oneDNN bf16 kernels on this CPU")


def _both():
    """The eager and the (when a compiler is present) compiled int8 passes."""
    return onednn._Kernels(compiled=False), onednn.kernels()


@needs_int8  # the int8 backend's own passes: unused where oneDNN has no native int8
def test_quantiser_round_trips_each_row_within_half_its_own_step_and_keeps_zero_exact():
    torch.manual_seed(0)
    x = (torch.randn(37, 48) * torch.logspace(-2, 2, 37)[:, None] + 1).to(torch.bfloat16)  # rows of very different ranges
    x[0, 0] = 0
    for kernels in _both():
        q, scale = kernels.quantize(x)
        assert q.dtype == torch.uint8 and q.shape == x.shape and scale.shape == (37, 1)
        back = (q.float() - 128) * scale
        assert ((back - x.float()).abs() <= scale * 0.5 + 1e-6).all()  # the small rows keep their precision
        assert back[0, 0] == 0
    # compiled and eager give the same scales and codes within one step
    (qe, se), (qc, sc) = (k.quantize(x) for k in _both())
    torch.testing.assert_close(se, sc)
    assert (qe.int() - qc.int()).abs().max() <= 1


def test_quantiser_of_an_all_zero_row_is_not_nan():
    for kernels in _both():
        q, scale = kernels.quantize(torch.zeros(4, 8, dtype=torch.bfloat16))
        assert torch.isfinite(scale).all() and (q.int() == 128).all()


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


@needs_int8  # the int8 backend's own passes: unused where oneDNN has no native int8
def test_compiled_passes_take_any_row_count_and_match_the_eager_ones():
    torch.manual_seed(0)
    eager, compiled = _both()
    bias = torch.randn(24)
    for rows in (1, 3, 130, 7):  # one row runs eagerly (see _Kernels)
        x = torch.randn(rows, 24).to(torch.bfloat16)
        (q, scale), (qe, se) = compiled.quantize(x), eager.quantize(x)
        assert q.shape == x.shape and (q.int() - qe.int()).abs().max() <= 1
        for post, residual in (("none", None), ("gelu", None), ("none", x)):
            got = compiled.finish(x, scale, bias, post, residual).float()
            want = eager.finish(x, scale, bias, post, residual).float()
            assert got.shape == (rows, 24)
            torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)


def _layout(lengths, width):
    """Attention's layout for sentences of ``lengths`` padded to ``width``: the packed row of each
    position (``unpack``; padding reads row 0), the position of each packed row (``repack``) and
    the additive mask, as the packed forward makes them."""
    real = torch.arange(width)[None] < torch.tensor(lengths)[:, None]
    pos = torch.arange(len(lengths) * width)[real.reshape(-1)]
    unpack = torch.zeros(len(lengths) * width, dtype=torch.int64)
    unpack[pos] = torch.arange(pos.numel())
    mask = torch.zeros(len(lengths), 1, 1, width).masked_fill_(~real[:, None, None, :], -1e30)
    return unpack, pos, mask


@needs_int8
@pytest.mark.parametrize("lengths, width", [([5, 3, 1], 16), ([7], 7), ([30] * 9 + [2], 32)])
def test_passes_into_and_out_of_attention_layout_match_the_plain_steps(lengths, width):
    """Finishing the query-key-value product straight into (3, sentences, heads, width, head
    size), and quantising attention's output straight from there: the same as the separate finish,
    gather and transpose, compiled or not ([7]: one sentence, which runs eagerly)."""
    torch.manual_seed(0)
    heads, size = 3, 8
    unpack, pos, mask = _layout(lengths, width)
    rows = pos.numel() + 3  # padded rows, never read back
    acc = torch.randn(rows, 3 * heads * size).to(torch.bfloat16)
    scale, bias = torch.rand(rows, 1) + 0.5, torch.randn(3 * heads * size)
    y = onednn._finish(acc, scale, bias).index_select(0, unpack)
    want = y.view(len(lengths), width, 3, heads, size).permute(2, 0, 3, 1, 4)
    a = torch.randn(len(lengths), heads, width, size).to(torch.bfloat16)
    repack = torch.cat([pos, pos[:1].expand(3)])
    want_q, want_scale = onednn._quantize_rows(a.transpose(1, 2).reshape(-1, heads * size).index_select(0, repack))
    for kernels in _both():
        got = kernels.finish_heads(acc, scale, bias, unpack, mask, heads)
        assert got.shape == (3, len(lengths), heads, width, size) and got.is_contiguous()
        torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=1e-2)
        q, row_scale = kernels.heads_quantize(a, repack)
        assert q.shape == (rows, heads * size) and q.dtype == torch.uint8
        assert (q.int() - want_q.int()).abs().max() <= 1
        torch.testing.assert_close(row_scale, want_scale)


@needs_int8
def test_int8_linear_gives_a_sentence_the_same_output_whatever_its_batch():
    """Per-token scales: a row with a large activation elsewhere in the batch changes nothing."""
    torch.manual_seed(0)
    layer = onednn.Int8Linear(torch.nn.Linear(64, 32))
    x = torch.randn(6, 64).to(torch.bfloat16)
    loud = torch.cat([x, 50 * torch.randn(2, 64).to(torch.bfloat16)])
    with torch.inference_mode():
        torch.testing.assert_close(layer(loud)[:6], layer(x), atol=0, rtol=0)


def test_a_failed_compilation_warns_and_runs_the_passes_eagerly():
    """No C++ compiler (or an inductor bug): scoring goes on, slower, and says so once."""
    kernels = onednn._Kernels(compiled=True)

    def broken(*args):
        raise RuntimeError("no C++ compiler found")

    kernels.passes = {name: broken for name in kernels.passes}
    x = torch.randn(6, 32).to(torch.bfloat16)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C\\+\\+ compiler.*eagerly"):
        q, scale = kernels.quantize(x)
    assert not kernels.compiled
    qe, se = onednn._Kernels(compiled=False).quantize(x)
    assert torch.equal(q, qe) and torch.equal(scale, se)
