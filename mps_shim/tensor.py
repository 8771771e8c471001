"""Tensors: AtenTensorHandles wrapped for Python, built from numpy without copying.

On the host backend device memory is host memory, so Tensor.from_numpy() hands
the array's own memory to kernels (writes land in the array) and .numpy()
returns a view of the tensor's memory. The Tensor keeps the array alive, and
the array returned by .numpy() keeps the Tensor alive.
"""
import numpy as np

from ._native import ffi, lib
from .errors import check

DEVICES = {"cpu": 0, "mps": 13}
_DEVICE_NAMES = {v: k for k, v in DEVICES.items()}

# numpy dtype <-> c10::ScalarType code. bfloat16 (15) has no numpy dtype.
_CODES = {
    np.dtype(np.uint8): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
    np.dtype(np.int64): 4, np.dtype(np.float16): 5, np.dtype(np.float32): 6, np.dtype(np.float64): 7,
    np.dtype(np.bool_): 11, np.dtype(np.uint16): 27, np.dtype(np.uint32): 28, np.dtype(np.uint64): 29,
}
_DTYPES = {code: dt for dt, code in _CODES.items()}
BFLOAT16 = 15
_NAMES = {code: dt.name for code, dt in _DTYPES.items()}
_NAMES[BFLOAT16] = "bfloat16"


def dtype_code(dtype):
    """The c10 code for a numpy dtype, or for the name 'bfloat16'."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        return BFLOAT16
    dt = np.dtype(dtype).newbyteorder("=")
    if dt not in _CODES:
        raise TypeError(f"dtype {dt} has no mps_shim equivalent (supported: {', '.join(sorted(_NAMES.values()))})")
    return _CODES[dt]


def _device_code(device):
    if device not in DEVICES:
        raise ValueError(f"device must be one of {sorted(DEVICES)}, got {device!r}")
    return DEVICES[device]


def _int64_array(values):
    values = [int(v) for v in values]
    return ffi.new("int64_t[]", values) if values else ffi.NULL


def _delete(handle):
    lib.aoti_torch_delete_tensor_object(handle)


class _ArrayView:
    """Exposes a tensor's memory through the numpy array interface; holds the tensor."""

    def __init__(self, tensor, dtype):
        self.tensor = tensor
        self.__array_interface__ = {
            "version": 3,
            "typestr": dtype.str,
            "shape": tensor.shape,
            "strides": tuple(s * dtype.itemsize for s in tensor.strides),
            "data": (tensor.data_ptr, False),
        }


class Tensor:
    """A strided tensor owned by libmps_shim (an AtenTensorHandle)."""

    def __init__(self, handle, keep_alive=None):
        self._handle = ffi.gc(handle, _delete)
        self._keep_alive = keep_alive  # the numpy array whose memory this tensor borrows

    @classmethod
    def from_numpy(cls, array, device="mps"):
        """Wraps `array`'s memory (no copy). Kernels that write the tensor write the array."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"expected a numpy array, got {type(array).__name__}")
        code = dtype_code(array.dtype)
        if not array.dtype.isnative:
            raise TypeError("byte-swapped arrays are not supported; use a native-endian array")
        itemsize = array.dtype.itemsize
        if any(s < 0 or s % itemsize for s in array.strides):
            raise ValueError("only arrays with non-negative strides that are multiples of the item size can be "
                             "wrapped without a copy; pass np.ascontiguousarray(a)")
        data = array.__array_interface__["data"][0] if array.size else 0
        out = ffi.new("AtenTensorHandle*")
        check(lib.aoti_torch_create_tensor_from_blob(
            ffi.cast("void*", data), array.ndim, _int64_array(array.shape),
            _int64_array(s // itemsize for s in array.strides), 0, code, _device_code(device), 0, out))
        return cls(out[0], keep_alive=array)

    @classmethod
    def empty(cls, shape, dtype=np.float32, device="mps", strides=None):
        """A new tensor with uninitialised memory owned by the library."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        out = ffi.new("AtenTensorHandle*")
        check(lib.aoti_torch_empty_strided(
            len(shape), _int64_array(shape), _int64_array(strides) if strides is not None else ffi.NULL,
            dtype_code(dtype), _device_code(device), 0, out))
        return cls(out[0])

    @classmethod
    def zeros(cls, shape, dtype=np.float32, device="mps"):
        t = cls.empty(shape, dtype, device)
        if t.numel:
            ffi.memmove(ffi.cast("void*", t.data_ptr), b"\0" * t.storage_nbytes, t.storage_nbytes)
        return t

    def _get(self, fn, ctype):
        out = ffi.new(ctype + "*")
        check(fn(self._handle, out))
        return out[0]

    @property
    def ndim(self):
        return self._get(lib.aoti_torch_get_dim, "int64_t")

    @property
    def shape(self):
        ptr = self._get(lib.aoti_torch_get_sizes, "int64_t*")
        return tuple(ptr[i] for i in range(self.ndim))

    @property
    def strides(self):
        """Strides in elements, as in PyTorch."""
        ptr = self._get(lib.aoti_torch_get_strides, "int64_t*")
        return tuple(ptr[i] for i in range(self.ndim))

    @property
    def numel(self):
        return self._get(lib.aoti_torch_get_numel, "int64_t")

    @property
    def storage_offset(self):
        return self._get(lib.aoti_torch_get_storage_offset, "int64_t")

    @property
    def storage_nbytes(self):
        return self._get(lib.aoti_torch_get_storage_size, "int64_t")

    @property
    def dtype_code(self):
        return self._get(lib.aoti_torch_get_dtype, "int32_t")

    @property
    def dtype(self):
        """The numpy dtype, or the string 'bfloat16'."""
        code = self.dtype_code
        return _DTYPES.get(code, _NAMES.get(code))

    @property
    def device(self):
        return _DEVICE_NAMES[self._get(lib.aoti_torch_get_device_type, "int32_t")]

    @property
    def data_ptr(self):
        """Address of element 0 (storage base + storage_offset * element size)."""
        return int(ffi.cast("uintptr_t", self._get(lib.aoti_torch_get_data_ptr, "void*")))

    def numpy(self, bits=False):
        """A numpy view of this tensor's memory (no copy). bfloat16 needs bits=True: raw uint16 bits."""
        code = self.dtype_code
        if code == BFLOAT16:
            if not bits:
                raise TypeError("bfloat16 has no numpy dtype; use .numpy(bits=True) for the raw uint16 bits")
            dtype = np.dtype(np.uint16)
        else:
            dtype = _DTYPES[code]
        if self.numel == 0:
            return np.empty(self.shape, dtype)
        return np.asarray(_ArrayView(self, dtype))

    def view(self, shape, strides=None, storage_offset=0):
        """A view over the same storage (aoti_torch__reinterpret_tensor)."""
        shape = tuple(shape)
        out = ffi.new("AtenTensorHandle*")
        check(lib.aoti_torch__reinterpret_tensor(
            self._handle, len(shape), _int64_array(shape),
            _int64_array(strides) if strides is not None else ffi.NULL, storage_offset, out))
        return Tensor(out[0], keep_alive=self._keep_alive)

    def clone(self, preserve_strides=False):
        out = ffi.new("AtenTensorHandle*")
        fn = lib.aoti_torch_clone_preserve_strides if preserve_strides else lib.aoti_torch_clone
        check(fn(self._handle, out))
        return Tensor(out[0])

    def copy_(self, src):
        """Copies src into self, broadcasting and converting dtype; returns self."""
        src = as_tensor(src)
        check(lib.aoti_torch_copy_(self._handle, src._handle, 0))
        return self

    def __repr__(self):
        return f"Tensor(shape={self.shape}, dtype={_NAMES.get(self.dtype_code)}, device={self.device})"


def as_tensor(value, device="mps"):
    """A Tensor as is, or a numpy array wrapped without a copy."""
    if isinstance(value, Tensor):
        return value
    return Tensor.from_numpy(value, device)
