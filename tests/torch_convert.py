"""torch CPU tensors <-> mps_shim Tensors for the ATen op tests (compared against torch eager).

Both directions copy, so an op under test never shares memory with its reference.
"""
import torch

from mps_shim import Tensor


def to_shim(t, strided=False):
    """An mps_shim Tensor with t's values. By default it keeps t's own sizes, strides and storage offset;
    strided=True lays it out column-major with gaps, at storage offset 3 of a larger buffer."""
    if strided and t.dim():
        strides, step = [], 2
        for n in t.shape:
            strides.append(step)
            step *= max(n, 1)
        view = torch.zeros(step + 4, dtype=t.dtype).as_strided(t.shape, strides, 3)
        view.copy_(t)
        t = view
    storage = t.as_strided((t.untyped_storage().nbytes() // t.element_size(),), (1,), 0).clone()
    return Tensor.from_dlpack(storage).view(t.shape, t.stride(), t.storage_offset())


def to_torch(t):
    """An mps_shim Tensor's values as a new torch CPU tensor (same dtype, bfloat16 included)."""
    return torch.from_dlpack(t).clone()


def to_torch_float(t):
    """An mps_shim Tensor's values as a new float32 torch CPU tensor."""
    return to_torch(t).float()
