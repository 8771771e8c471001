"""aten._scaled_dot_product_attention_math_for_mps(_v2) against torch CPU: output and attention weights, masks
(bool, float, broadcast), causal, scale, GQA, q/k/v as strided views into one qkv buffer, dtypes, errors."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim, to_torch_float as to_torch  # noqa: E402

TOL = {torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 3e-2}


def reference(q, k, v, mask=None, causal=False, scale=None, gqa=False):
    """Math-path reference in float64: (output, weights); fully masked rows give zeros, as torch's math path."""
    q, k, v = q.double(), k.double(), v.double()
    if gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], -3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], -3)
    s = q @ k.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    L, S = s.shape[-2:]
    if causal:
        s = s.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask.double()
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return w @ v, w


def run(q, k, v, mask=None, causal=False, scale=None, gqa=None):
    args = (to_shim(q), to_shim(k), to_shim(v), None if mask is None else to_shim(mask), 0.0, int(causal), None, scale)
    if gqa is None:
        return aten._scaled_dot_product_attention_math_for_mps(*args)
    return aten._scaled_dot_product_attention_math_for_mps_v2(*args, int(gqa))


def check(q, k, v, mask=None, causal=False, scale=None, gqa=None):
    out, attn = run(q, k, v, mask, causal, scale, gqa)
    ro, rw = reference(q, k, v, mask, causal, scale, bool(gqa))
    assert out.shape == tuple(ro.shape) and attn.shape == tuple(rw.shape)
    assert out.strides == tuple(torch.empty(ro.shape).stride())  # contiguous, as the meta function
    tol = TOL[q.dtype]
    np.testing.assert_allclose(to_torch(attn).numpy(), rw.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(to_torch(out).numpy(), ro.numpy(), rtol=tol * 5, atol=tol * 5)
    return out, attn


def rand(*shape, dtype=torch.float32):
    return torch.randn(shape).to(dtype)


def test_plain_and_torch_sdpa_agree():
    torch.manual_seed(0)
    q, k, v = rand(2, 3, 5, 8), rand(2, 3, 7, 8), rand(2, 3, 7, 4)
    out, _ = check(q, k, v)
    np.testing.assert_allclose(to_torch(out).numpy(), torch.nn.functional.scaled_dot_product_attention(q, k, v).numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes_causal_and_scale(dtype):
    torch.manual_seed(1)
    q, k, v = rand(1, 2, 9, 16, dtype=dtype), rand(1, 2, 9, 16, dtype=dtype), rand(1, 2, 9, 16, dtype=dtype)
    out, attn = check(q, k, v, causal=True, scale=0.3)
    assert attn.dtype == out.dtype == ("bfloat16" if dtype == torch.bfloat16 else q.numpy().dtype)


def test_masks_broadcast_and_fully_masked_rows():
    torch.manual_seed(2)
    q, k, v = rand(2, 3, 6, 8), rand(2, 3, 10, 8), rand(2, 3, 10, 8)
    bool_mask = torch.rand(6, 10) > 0.4
    bool_mask[2] = False  # a row with nothing to attend: zeros, as torch's math path
    _, attn = check(q, k, v, mask=bool_mask)
    assert not to_torch(attn)[:, :, 2].any()
    check(q, k, v, mask=torch.randn(3, 1, 10))
    float_mask = torch.zeros(2, 1, 6, 10)
    float_mask[..., 4, :] = float("-inf")
    check(q, k, v, mask=float_mask)
    check(q, k, v, mask=torch.randn(10).half().float())  # a 1-D mask broadcasts over rows


def test_gqa_and_v1_rejects_head_mismatch():
    torch.manual_seed(3)
    q, k, v = rand(2, 8, 5, 16), rand(2, 2, 7, 16), rand(2, 2, 7, 16)
    check(q, k, v, gqa=True, causal=True)
    with pytest.raises(MpsShimError, match="cannot broadcast"):
        run(q, k, v)
    with pytest.raises(MpsShimError, match="must be divisible"):
        run(rand(1, 8, 5, 16), rand(1, 3, 7, 16), rand(1, 3, 7, 16), gqa=True)


def test_qkv_views_into_one_buffer_and_shapes():
    torch.manual_seed(4)
    B, L, H, E = 2, 7, 4, 8
    qkv = torch.randn(B, L, 3, H, E)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, L, E], non-contiguous
    shim_qkv = to_shim(qkv)
    st = qkv.stride()
    views = [shim_qkv.view((B, H, L, E), (st[0], st[3], st[1], st[4]), i * st[2]) for i in range(3)]
    out, attn = aten._scaled_dot_product_attention_math_for_mps(*views, None, 0.0, 1, None, None)
    ro, rw = reference(q, k, v, causal=True)
    np.testing.assert_allclose(to_torch(out).numpy(), ro.numpy(), rtol=1e-5, atol=1e-5)
    # 3-D and 5-D inputs keep their batch dimensions; L = 1 and S = 1 work
    check(rand(3, 1, 4), rand(3, 1, 4), rand(3, 1, 2))
    check(rand(2, 2, 2, 3, 4), rand(2, 2, 2, 5, 4), rand(2, 2, 2, 5, 6))
    out, attn = run(rand(1, 1, 0, 4), rand(1, 1, 3, 4), rand(1, 1, 3, 4))
    assert out.shape == (1, 1, 0, 4) and attn.shape == (1, 1, 0, 3)


def test_errors():
    q = rand(1, 2, 3, 4)
    with pytest.raises(MpsShimError, match="dropout_p must be 0"):
        aten._scaled_dot_product_attention_math_for_mps(to_shim(q), to_shim(q), to_shim(q), None, 0.1, 0, None, None)
    with pytest.raises(MpsShimError, match="attn_mask should not be set when is_causal"):
        run(q, q, q, mask=torch.ones(3, 3, dtype=torch.bool), causal=True)
    with pytest.raises(MpsShimError, match="same head dimension"):
        run(q, rand(1, 2, 3, 5), rand(1, 2, 3, 5))
    with pytest.raises(MpsShimError, match="query and key must have one dtype"):
        run(q, q.half(), q.half())
    with pytest.raises(MpsShimError, match="attn_mask must be bool"):
        run(q, q, q, mask=torch.ones(3, 3, dtype=torch.int32))
    with pytest.raises(MpsShimError, match="cannot broadcast"):
        run(q, q, q, mask=torch.ones(4, 3, dtype=torch.bool))
