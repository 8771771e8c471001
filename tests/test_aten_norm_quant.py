"""aten._fused_rms_norm against torch CPU, and the weight-only quantized products against
dequantize-then-matmul references (int4 in MPS's packing)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim, to_torch_float as to_torch  # noqa: E402

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_rms_norm_against_torch(dtype):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6).to(dtype)
    w = torch.randn(5, 6).to(dtype)
    out, rstd = aten._fused_rms_norm(to_shim(x), [5, 6], to_shim(w), 1e-5)
    ro, rr = torch.ops.aten._fused_rms_norm(x, [5, 6], w, 1e-5)
    assert out.dtype == ("bfloat16" if dtype == torch.bfloat16 else x.numpy().dtype)
    assert rstd.dtype == np.float32 and rstd.shape == tuple(rr.shape) == (3, 4, 1, 1)
    np.testing.assert_allclose(to_torch(rstd).numpy(), rr.numpy(), rtol=1e-5)
    tol = TOL[dtype]
    # MPS multiplies by the weight in float32 and rounds once; torch CPU rounds twice
    exact = (x.float() * rr * w.float()).to(dtype).float()
    np.testing.assert_allclose(to_torch(out).numpy(), exact.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(to_torch(out).numpy(), ro.float().numpy(), rtol=4 * tol, atol=4 * tol)


def test_rms_norm_defaults_strided_and_empty():
    torch.manual_seed(1)
    big = torch.full((4, 20), 1e-3)
    x = big[:, 2:10:2]  # non-contiguous, offset; tiny values make eps visible
    out, rstd = aten._fused_rms_norm(to_shim(x), [4], None, None)
    eps = np.finfo(np.float32).eps  # MPS's default, whatever the dtype
    np.testing.assert_allclose(to_torch(rstd).numpy()[:, 0], 1 / np.sqrt(1e-6 + eps), rtol=1e-4)
    np.testing.assert_allclose(to_torch(out).numpy(), (x * to_torch(rstd)).numpy(), rtol=1e-6)
    out, rstd = aten._fused_rms_norm(np.zeros((0, 4), np.float32), [4], None, None)
    assert out.shape == (0, 4) and rstd.shape == (0, 1)
    out, rstd = aten._fused_rms_norm(np.zeros((3, 0), np.float32), [0], None, None)
    assert np.isnan(rstd.numpy()).all() and rstd.shape == (3, 1)


def test_rms_norm_errors():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(MpsShimError, match="expected input with shape"):
        aten._fused_rms_norm(x, [3], None, None)
    with pytest.raises(MpsShimError, match="same shape as normalized_shape"):
        aten._fused_rms_norm(x, [4], np.ones(3, np.float32), None)
    with pytest.raises(MpsShimError, match="expected weight to have dtype float32"):
        aten._fused_rms_norm(x, [4], np.ones(4, np.float16), None)
    with pytest.raises(MpsShimError, match="at least 1-dimensional"):
        aten._fused_rms_norm(x, [], None, None)
    with pytest.raises(MpsShimError, match="input must be float32"):
        aten._fused_rms_norm(np.zeros((2, 4), np.int32), [4], None, None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_int8pack_mm(dtype):
    torch.manual_seed(2)
    a = torch.randn(5, 64).to(dtype)
    w = torch.randint(-128, 128, (96, 64), dtype=torch.int8)
    s = (torch.rand(96) / 50).to(dtype)
    got = to_torch(aten._weight_int8pack_mm(to_shim(a), to_shim(w), to_shim(s)))
    ref = (a.double() @ w.double().T) * s.double()
    tol = TOL[dtype] * 10
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(got.numpy(), torch.ops.aten._weight_int8pack_mm(a.float(), w, s.float()).numpy(),
                               rtol=tol, atol=tol)


def test_int8pack_errors():
    a = np.zeros((2, 32), np.float32)
    with pytest.raises(MpsShimError, match="expected mat2 to be int8"):
        aten._weight_int8pack_mm(a, np.zeros((4, 32), np.int32), np.ones(4, np.float32))
    with pytest.raises(MpsShimError, match=r"mat2.size\(1\)"):
        aten._weight_int8pack_mm(a, np.zeros((4, 16), np.int8), np.ones(4, np.float32))
    with pytest.raises(MpsShimError, match="scales to be 1-D with size 4"):
        aten._weight_int8pack_mm(a, np.zeros((4, 32), np.int8), np.ones(5, np.float32))


def mps_int4_pack(q):
    """What MPS's _convert_weight_to_int4pack makes of q [N, K] in 0..15: N*K/2 bytes, row-major [N, K/2],
    even k in the low nibble, typed as int32 of the nominal shape [N/8, K/(16*tiles), 32, tiles/2]."""
    n, k = q.shape
    b = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    tiles = 2
    return np.ascontiguousarray(b).view(np.int32).reshape(n // 8, k // (16 * tiles), 32, tiles // 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("group", [32, 64])
def test_int4pack_mm(dtype, group):
    torch.manual_seed(3)
    N, K, M = 32, 128, 3
    q = np.random.default_rng(0).integers(0, 16, (N, K))
    scales = torch.rand(K // group, N) / 10 + 0.01
    zeros = torch.randn(K // group, N) / 10
    sz = torch.stack([scales, zeros], -1).to(dtype)  # [K / group, N, 2]
    a = torch.randn(M, K).to(dtype)
    got = to_torch(aten._weight_int4pack_mm(to_shim(a), mps_int4_pack(q), group, to_shim(sz)))
    g = torch.arange(K) // group
    deq = (torch.from_numpy(q).double() - 8) * sz[g, :, 0].T.double() + sz[g, :, 1].T.double()  # [N, K]
    ref = a.double() @ deq.T
    tol = TOL[dtype] * 20
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=tol, atol=tol)
    # the same semantics as torch CPU's int4 op (its own packing of the same values)
    cpu = torch.ops.aten._weight_int4pack_mm_for_cpu(
        a.float(), torch._convert_weight_to_int4pack_for_cpu(torch.from_numpy(q).int(), 2), group, sz.float())
    np.testing.assert_allclose(got.numpy(), cpu.numpy(), rtol=tol, atol=tol)
    # the same bytes as uint8 [N, K / 2]
    as_bytes = mps_int4_pack(q).view(np.uint8).reshape(N, K // 2)
    np.testing.assert_array_equal(to_torch(aten._weight_int4pack_mm(to_shim(a), as_bytes, group, to_shim(sz))), got)


def test_int4pack_errors():
    a = np.zeros((2, 64), np.float32)
    w = np.zeros((4, 2, 32, 1), np.int32)  # N = 32, K = 64, innerKTiles = 2
    sz = np.zeros((2, 32, 2), np.float32)
    with pytest.raises(MpsShimError, match="qGroupSize to be 32, 64, 128 or 256"):
        aten._weight_int4pack_mm(a, w, 16, sz)
    with pytest.raises(MpsShimError, match="qScaleAndZeros to be a 3-D tensor"):
        aten._weight_int4pack_mm(a, w, 32, np.zeros((2, 16, 2), np.float32))
    with pytest.raises(MpsShimError, match="does not hold"):
        aten._weight_int4pack_mm(np.zeros((2, 32), np.float32), w, 32, sz)
    with pytest.raises(MpsShimError, match="expected mat2 to be int32"):
        aten._weight_int4pack_mm(a, np.zeros((32, 32), np.int8), 32, sz)
