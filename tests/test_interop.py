"""Tensor interop: DLPack both ways with numpy and torch (zero-copy, strides and offsets,
lifetimes, legacy and versioned capsules) and bfloat16 as ml_dtypes.bfloat16.
"""
import gc
import sys
import weakref

import numpy as np
import pytest

import mps_shim
from mps_shim import Tensor

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)

SOURCE = r"""#include <metal_stdlib>
using namespace metal;
kernel void scale(device float* out, constant float* x, constant float& s, uint i [[thread_position_in_grid]]) {
    out[i] = x[i] * s;
}
kernel void bf16_double(device bfloat* out, constant bfloat* x, uint i [[thread_position_in_grid]]) {
    out[i] = x[i] * bfloat(2.0f);
}
"""


@pytest.fixture(scope="module")
def cs():
    return mps_shim.compile_shader(SOURCE)


def _addr(array):
    return array.__array_interface__["data"][0]


# ---- numpy ------------------------------------------------------------------------------------------------------

def test_numpy_in_zero_copy_writes_both_ways(cs):
    a = np.arange(8, dtype=np.float32)
    t = mps_shim.from_dlpack(a)
    assert t.data_ptr == _addr(a) and t.shape == (8,) and t.dtype == np.float32
    cs.scale(t, t, 3.0)                  # a kernel writes the tensor: the array sees it
    assert a.tolist() == [3.0 * i for i in range(8)]
    a[2] = -1.0                          # the array writes: the tensor sees it
    assert t.numpy()[2] == -1.0


def test_numpy_out_zero_copy_writes_both_ways(cs):
    t = Tensor.zeros((2, 3), np.float32)
    a = np.from_dlpack(t)
    assert _addr(a) == t.data_ptr and a.shape == (2, 3) and a.flags.writeable
    a[1, 2] = 7.0
    assert t.numpy()[1, 2] == 7.0
    cs.scale(t, np.ones(6, np.float32), 5.0)
    assert np.all(a == 5.0)


def test_strides_and_offsets_are_preserved_both_ways():
    base = np.arange(30, dtype=np.int32).reshape(5, 6)
    view = base[1:4, 1::2]               # an offset and a stride of 2
    t = Tensor.from_dlpack(view)
    assert t.shape == (3, 3) and t.strides == (6, 2) and t.data_ptr == _addr(view)
    assert np.array_equal(t.numpy(), view)
    back = np.from_dlpack(t)
    assert back.strides == view.strides and _addr(back) == _addr(view)
    # A Tensor view with a storage offset exports exactly its elements.
    flat = Tensor.from_numpy(np.arange(12, dtype=np.int64))
    v = flat.view((2, 2), (4, 1), storage_offset=5)
    assert np.from_dlpack(v).tolist() == [[5, 6], [9, 10]]
    assert torch.from_dlpack(v).tolist() == [[5, 6], [9, 10]]


def test_legacy_and_versioned_capsules():
    t = Tensor.from_numpy(np.arange(4, dtype=np.float64))
    legacy = t.__dlpack__()
    versioned = t.__dlpack__(max_version=(1, 0))
    assert "dltensor" in repr(legacy) and "dltensor_versioned" not in repr(legacy)
    assert "dltensor_versioned" in repr(versioned)
    for capsule in (legacy, versioned):
        u = mps_shim.from_dlpack(capsule)
        assert u.data_ptr == t.data_ptr and u.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
        with pytest.raises(BufferError, match="consumed once"):
            mps_shim.from_dlpack(capsule)
    assert t.__dlpack_device__() == (1, 0)


def test_every_dtype_round_trips():
    for dt in (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_,
               np.uint16, np.uint32, np.uint64, BF16):
        a = np.arange(6).astype(dt)
        t = mps_shim.from_dlpack(a)
        assert t.dtype == np.dtype(dt), dt
        b = np.from_dlpack(t) if dt is not BF16 else t.numpy()
        assert b.dtype == np.dtype(dt) and _addr(b) == _addr(a)
        assert torch.from_dlpack(t).data_ptr() == _addr(a)


def test_empty_and_zero_dim():
    t = mps_shim.from_dlpack(np.zeros((0, 3), np.float32))
    assert t.shape == (0, 3) and t.numel == 0
    s = mps_shim.from_dlpack(np.array(4.5, np.float32))
    assert s.shape == () and s.numpy() == 4.5
    assert torch.from_dlpack(Tensor.empty((4, 0))).shape == (4, 0)


# ---- torch ------------------------------------------------------------------------------------------------------

def test_torch_in_zero_copy_kernel_writes_the_torch_tensor(cs):
    x = torch.arange(10, dtype=torch.float32)
    out = torch.zeros(10)
    with pytest.raises(mps_shim.ArgumentError, match="torch tensor on the cpu device"):
        cs.scale(out, x, 0.5)            # as torch.mps.compile_shader, kernels refuse CPU tensors
    cs.scale(mps_shim.from_dlpack(out), mps_shim.from_dlpack(x), 0.5)  # wrapped as mps tensors, without a copy
    assert torch.equal(out, x * 0.5)
    t = mps_shim.from_dlpack(out)
    assert t.data_ptr == out.data_ptr()
    t.numpy()[0] = 42.0
    assert out[0].item() == 42.0


def test_torch_out_zero_copy_writes_both_ways():
    t = Tensor.zeros((3, 4), np.float32)
    x = torch.from_dlpack(t)
    assert x.data_ptr() == t.data_ptr and x.shape == (3, 4) and x.stride() == (4, 1)
    x[2, 3] = 9.0
    assert t.numpy()[2, 3] == 9.0
    t.numpy()[0, 0] = -2.0
    assert x[0, 0].item() == -2.0


def test_torch_strided_view_in():
    x = torch.arange(60, dtype=torch.float32).reshape(5, 12)[1:, 2::3]
    t = mps_shim.from_dlpack(x)
    assert t.shape == tuple(x.shape) and t.strides == tuple(x.stride()) and t.data_ptr == x.data_ptr()
    assert np.array_equal(t.numpy(), x.numpy())


# ---- lifetimes --------------------------------------------------------------------------------------------------

def test_the_producer_may_go_and_the_deleter_runs_exactly_once():
    a = np.arange(1000, dtype=np.float32)
    ref = weakref.ref(a)
    refs_before = sys.getrefcount(a)
    t = mps_shim.from_dlpack(a)
    view = t.view((10,), storage_offset=990)
    assert sys.getrefcount(a) == refs_before + 1  # held by the consumed capsule's manager, not by t
    del a
    gc.collect()
    assert ref() is not None, "the consumer must keep the producer's memory alive"
    assert view.numpy().tolist() == list(range(990, 1000))
    del t
    gc.collect()
    assert ref() is not None, "a view keeps it alive too"
    keep = ref()
    del view
    gc.collect()
    # The deleter ran once: one reference gone, no more (twice would take ours too).
    assert sys.getrefcount(keep) == refs_before
    del keep
    gc.collect()
    assert ref() is None


def test_torch_producer_deleted_consumer_still_valid():
    x = torch.arange(1 << 16, dtype=torch.float32)
    t = mps_shim.from_dlpack(x)
    del x
    gc.collect()
    junk = [torch.full((1 << 16,), -1.0) for _ in range(8)]  # reuse of freed memory would show
    assert np.array_equal(t.numpy(), np.arange(1 << 16, dtype=np.float32))
    del junk


def test_the_exported_tensor_outlives_its_python_object():
    t = Tensor.empty((1 << 16,), np.float32)
    t.numpy()[:] = 3.0
    a = np.from_dlpack(t)
    x = torch.from_dlpack(t)
    del t
    gc.collect()
    junk = [Tensor.zeros((1 << 16,), np.float32) for _ in range(8)]
    assert np.all(a == 3.0) and bool(torch.all(x == 3.0))
    del junk


def test_a_rejected_capsule_is_freed_by_its_own_destructor():
    a = np.arange(4, dtype=np.float32)[::-1]  # negative strides: refused before the capsule is consumed
    refs_before = sys.getrefcount(a)
    with pytest.raises(ValueError, match="negative strides"):
        mps_shim.from_dlpack(a)
    gc.collect()
    assert sys.getrefcount(a) == refs_before


# ---- bfloat16 ---------------------------------------------------------------------------------------------------

def test_bfloat16_numpy_round_trip(cs):
    x = np.array([1.5, -2.0, 3.25, 0.0078125], dtype=BF16)
    out = np.zeros(4, dtype=BF16)
    cs.bf16_double(out, x)
    assert out.dtype == BF16 and out.astype(np.float32).tolist() == [3.0, -4.0, 6.5, 0.015625]
    t = Tensor.from_numpy(x)
    assert t.dtype_code == 15 and t.dtype == BF16 and t.dtype == "bfloat16"
    v = t.numpy()
    assert v.dtype == BF16 and _addr(v) == _addr(x) and np.array_equal(v, x)
    bits = t.numpy(bits=True)
    assert bits.dtype == np.uint16 and bits.tolist() == x.view(np.uint16).tolist()


def test_bfloat16_torch_round_trip():
    x = torch.tensor([[1.0, 2.5], [-3.0, 0.125]], dtype=torch.bfloat16)
    t = mps_shim.from_dlpack(x)
    assert t.dtype_code == 15 and t.data_ptr == x.data_ptr()
    assert t.numpy().astype(np.float32).tolist() == x.float().tolist()
    y = torch.from_dlpack(t)
    assert y.dtype == torch.bfloat16 and y.data_ptr() == x.data_ptr()
    y[0, 0] = 8.0
    assert x[0, 0].item() == 8.0
    # a bfloat16 Tensor made here exports as bfloat16, not as uint16
    e = Tensor.empty(3, "bfloat16")
    e.numpy()[:] = np.array([1, 2, 3], dtype=BF16)
    assert torch.from_dlpack(e).tolist() == [1.0, 2.0, 3.0]


# ---- bad input --------------------------------------------------------------------------------------------------

def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="__dlpack__"):
        mps_shim.from_dlpack([1, 2, 3])
    with pytest.raises(ValueError, match="negative strides"):
        mps_shim.from_dlpack(np.arange(5.0)[::-1])
    with pytest.raises(ValueError, match="device"):
        mps_shim.from_dlpack(np.zeros(2), device="gpu")

    class OnAnotherDevice:
        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA

        def __dlpack__(self, **kwargs):
            raise AssertionError("must not be asked for a capsule")

    with pytest.raises(BufferError, match="CPU"):
        mps_shim.from_dlpack(OnAnotherDevice())
