"""Tensors: AtenTensorHandles wrapped for Python, built from numpy or DLPack without copying.

On the host backend device memory is host memory, so Tensor.from_numpy() hands
the array's own memory to kernels (writes land in the array) and .numpy()
returns a view of the tensor's memory. The Tensor keeps the array alive, and
the array returned by .numpy() keeps the Tensor alive.

DLPack, both ways and zero-copy:
- Tensor.__dlpack__ / __dlpack_device__ export the tensor as a CPU DLPack
  tensor (numpy's exporter over a view of the tensor's memory: legacy or
  versioned capsules as the consumer asks; bfloat16 is retagged as kDLBfloat).
  The capsule's owner keeps the Tensor alive until the consumer's deleter runs.
- Tensor.from_dlpack(obj) consumes obj.__dlpack__(): the capsule is renamed
  "used_dltensor[_versioned]" and its DLManagedTensor is held by the new
  Tensor; its deleter runs exactly once, when the last Tensor or view of it is
  gone. The producer object itself may go away at once.

bfloat16 is ml_dtypes.bfloat16 in numpy (the convention of JAX and others)
when ml_dtypes is installed; .numpy(bits=True) gives the raw uint16 bits.
"""
import ctypes
import sys

import numpy as np

from ._native import ffi, lib
from .errors import check


def _bfloat16_dtype(load=False):
    """ml_dtypes.bfloat16 as a numpy dtype, or None.

    ml_dtypes is optional and takes about a second to import, so it is imported
    only to return bfloat16 (load=True); to recognise a bfloat16 input it need
    not be: such an input exists only once ml_dtypes is imported.
    """
    module = sys.modules.get("ml_dtypes")
    if module is None and load:
        try:
            import ml_dtypes as module
        except ImportError:
            return None
    return np.dtype(module.bfloat16) if module is not None else None

DEVICES = {"cpu": 0, "mps": 13}
_DEVICE_NAMES = {v: k for k, v in DEVICES.items()}

# numpy dtype <-> c10::ScalarType code. bfloat16 (15) has no numpy dtype.
_CODES = {
    np.dtype(np.uint8): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
    np.dtype(np.int64): 4, np.dtype(np.float16): 5, np.dtype(np.float32): 6, np.dtype(np.float64): 7,
    np.dtype(np.complex64): 9, np.dtype(np.complex128): 10, np.dtype(np.bool_): 11, np.dtype(np.uint16): 27, np.dtype(np.uint32): 28, np.dtype(np.uint64): 29,
}
_DTYPES = {code: dt for dt, code in _CODES.items()}
BFLOAT16 = 15
_NAMES = {code: dt.name for code, dt in _DTYPES.items()}
_NAMES[BFLOAT16] = "bfloat16"


def _is_bfloat16(dt):
    bfloat16 = _bfloat16_dtype()
    return bfloat16 is not None and dt == bfloat16


def bfloat16_bits(values):
    """The bfloat16 bits (uint16) of float values, rounded to nearest even as Metal converts; NaN stays NaN."""
    floats = np.asarray(values, np.float32)
    bits = floats.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(floats), ((bits >> 16) | 0x40).astype(np.uint16), rounded)


def dtype_code(dtype):
    """The c10 code for a numpy dtype (ml_dtypes.bfloat16 included), or for the name 'bfloat16'."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        return BFLOAT16
    dt = np.dtype(dtype)
    if _is_bfloat16(dt):
        return BFLOAT16
    dt = dt.newbyteorder("=")
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


_DEVICE_MEMORY_IS_HOST = None


def device_memory_is_host():
    """True on the host backend (mps tensors are host memory), False where it is a GPU's."""
    global _DEVICE_MEMORY_IS_HOST
    if _DEVICE_MEMORY_IS_HOST is None:
        _DEVICE_MEMORY_IS_HOST = lib.mps_shim_device_memory_is_host() != 0
    return _DEVICE_MEMORY_IS_HOST


class Tensor:
    """A strided tensor owned by libmps_shim (an AtenTensorHandle)."""

    def __init__(self, handle, keep_alive=None):
        self._handle = ffi.gc(handle, _delete)
        self._keep_alive = keep_alive  # the numpy array whose memory this tensor borrows

    @classmethod
    def from_numpy(cls, array, device="mps"):
        """Wraps `array`'s memory (no copy). Kernels that write the tensor write the array.

        Where device memory is not the host's (the cuda backend), an mps tensor is a copy in
        device memory instead, and `array` its mirror: sync_to_host() copies results back
        (KernelFunction.run_command_block and bound kernels do it for the arrays they bound)."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"expected a numpy array, got {type(array).__name__}")
        code = dtype_code(array.dtype)
        if not array.dtype.isnative:
            raise TypeError("byte-swapped arrays are not supported; use a native-endian array")
        if device == "mps" and not device_memory_is_host():
            return cls._device_copy(array)
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
    def _device_copy(cls, array):
        source = np.ascontiguousarray(array)
        t = cls.empty(array.shape, array.dtype)
        if source.nbytes:
            check(lib.mps_shim_copy_to_device(ffi.cast("void*", t.data_ptr), ffi.from_buffer(source), source.nbytes))
        t._mirror = array
        return t

    def _device_copy_of_host_tensor(self):
        """A device-memory copy of this cpu tensor (DLPack memory on a GPU backend), which sync_to_host()
        copies back into it: kernels never see a host address where device memory is not the host's."""
        out = ffi.new("AtenTensorHandle*")
        check(lib.aoti_torch_empty_strided(len(self.shape), _int64_array(self.shape), ffi.NULL, self.dtype_code,
                                           _device_code("mps"), 0, out))
        t = Tensor(out[0])
        check(lib.aoti_torch_copy_(t._handle, self._handle, 0))
        t._host_tensor = self
        return t

    def _copied_from_host(self):
        return any(getattr(self, a, None) is not None for a in ("_mirror", "_host_tensor", "_base"))

    def sync_to_host(self):
        """Copies a device-memory tensor made from a numpy array (or DLPack memory), or a view of one, back
        into that memory (a no-op otherwise)."""
        base = getattr(self, "_base", None)
        if base is not None:
            base.sync_to_host()
            return
        host_tensor = getattr(self, "_host_tensor", None)
        if host_tensor is not None:
            check(lib.aoti_torch_copy_(host_tensor._handle, self._handle, 0))
            return
        mirror = getattr(self, "_mirror", None)
        if mirror is not None and mirror.size:
            result = self.numpy()
            np.copyto(mirror, result.view(mirror.dtype) if result.dtype != mirror.dtype else result)

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
            zeros = b"\0" * t.storage_nbytes
            if device == "mps" and not device_memory_is_host():
                check(lib.mps_shim_copy_to_device(ffi.cast("void*", t.data_ptr), zeros, len(zeros)))
            else:
                ffi.memmove(ffi.cast("void*", t.data_ptr), zeros, len(zeros))
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
        """The numpy dtype: ml_dtypes.bfloat16 for bfloat16, or the string 'bfloat16' without ml_dtypes."""
        code = self.dtype_code
        if code == BFLOAT16:
            bfloat16 = _bfloat16_dtype(load=True)
            return "bfloat16" if bfloat16 is None else bfloat16
        return _DTYPES.get(code, _NAMES.get(code))

    @property
    def device(self):
        return _DEVICE_NAMES[self._get(lib.aoti_torch_get_device_type, "int32_t")]

    @property
    def data_ptr(self):
        """Address of element 0 (storage base + storage_offset * element size)."""
        return int(ffi.cast("uintptr_t", self._get(lib.aoti_torch_get_data_ptr, "void*")))

    def numpy(self, bits=False):
        """A numpy view of this tensor's memory (no copy).

        bfloat16 comes as ml_dtypes.bfloat16 (needs ml_dtypes), or with bits=True as its raw uint16 bits.
        """
        if self.dtype_code != BFLOAT16 or bits:
            return self._host_array()
        bfloat16 = _bfloat16_dtype(load=True)
        if bfloat16 is None:
            raise TypeError("bfloat16 tensors need ml_dtypes for .numpy() (pip install ml_dtypes); "
                            "or use .numpy(bits=True) for the raw uint16 bits")
        return self._host_array().view(bfloat16)

    def _host_array(self):
        """A numpy view of the memory with a standard dtype (bfloat16 as uint16)."""
        code = self.dtype_code
        dtype = np.dtype(np.uint16) if code == BFLOAT16 else _DTYPES[code]
        if self.numel == 0:
            return np.empty(self.shape, dtype)
        if self.device == "mps" and not device_memory_is_host():  # a copy: the memory is the GPU's
            out = np.empty(self.shape, dtype)
            ext = sum((n - 1) * st for n, st in zip(self.shape, self.strides)) + 1
            raw = np.empty(ext, dtype)
            check(lib.mps_shim_copy_from_device(ffi.from_buffer(raw), ffi.cast("void*", self.data_ptr), raw.nbytes))
            out[...] = np.lib.stride_tricks.as_strided(raw, self.shape, tuple(st * dtype.itemsize for st in self.strides))
            return out
        return np.asarray(_ArrayView(self, dtype))

    # ---- DLPack ----

    def __dlpack_device__(self):
        """(kDLCPU, 0): on the host backend the tensor's memory is host memory."""
        if ffi.string(lib.mps_shim_backend_name()) != b"host":
            raise BufferError("DLPack export needs host memory (the host backend)")
        return (_KDLCPU, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule viewing this tensor's memory (no copy unless copy=True)."""
        self.__dlpack_device__()
        kwargs = {k: v for k, v in (("max_version", max_version), ("dl_device", dl_device), ("copy", copy))
                  if v is not None}
        capsule = self._host_array().__dlpack__(stream=stream, **kwargs)
        if self.dtype_code == BFLOAT16:
            _dltensor(capsule)[0].dtype.code = _KDLBFLOAT  # exported as uint16 bits
        return capsule

    @classmethod
    def from_dlpack(cls, obj, device="mps"):
        """Wraps the memory of anything with __dlpack__ (torch CPU tensors, numpy arrays...) without copying.

        A DLPack capsule is accepted too. Writes through the Tensor are visible to the producer. Where
        device memory is not the host's (the cuda backend), an mps tensor is a copy in device memory, as
        for from_numpy: sync_to_host() copies results back (bound kernels do it for what they bound).
        """
        return _from_dlpack(cls, obj, device)

    def view(self, shape, strides=None, storage_offset=0):
        """A view over the same storage, at element `storage_offset` of the storage (as torch's as_strided).

        Built with aoti_torch__reinterpret_tensor, whose offset is an increment on this tensor's own.
        """
        shape = tuple(shape)
        out = ffi.new("AtenTensorHandle*")
        check(lib.aoti_torch__reinterpret_tensor(
            self._handle, len(shape), _int64_array(shape),
            _int64_array(strides) if strides is not None else ffi.NULL, storage_offset - self.storage_offset, out))
        view = Tensor(out[0], keep_alive=self._keep_alive)
        if self._copied_from_host():  # results written through the view go back to the host memory too
            view._base = self
        return view

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
    """A Tensor as is; a numpy array, or anything with __dlpack__, wrapped without a copy."""
    if isinstance(value, Tensor):
        return value
    if not isinstance(value, np.ndarray) and hasattr(value, "__dlpack__"):
        return Tensor.from_dlpack(value, device)
    return Tensor.from_numpy(value, device)


def from_dlpack(obj, device="mps"):
    """Tensor.from_dlpack(obj): a Tensor over the memory of anything with __dlpack__, without copying."""
    return Tensor.from_dlpack(obj, device)


# ---- DLPack import ---------------------------------------------------------------------------------------------

_KDLCPU = 1
_KDLBFLOAT = 4
_KDLCOMPLEX = 5
_DLPACK_MAJOR = 1
_READ_ONLY_FLAG = 1
# (DLDataTypeCode, bits) -> c10 code
_FROM_DL_DTYPE = {
    (0, 8): 1, (0, 16): 2, (0, 32): 3, (0, 64): 4,
    (1, 8): 0, (1, 16): 27, (1, 32): 28, (1, 64): 29,
    (2, 16): 5, (2, 32): 6, (2, 64): 7,
    (_KDLBFLOAT, 16): BFLOAT16, (6, 8): 11, (_KDLCOMPLEX, 64): 9, (_KDLCOMPLEX, 128): 10,
}
# Capsule names of the DLPack protocol, and what a consumer renames them to. Module
# constants: a renamed capsule keeps a pointer to its name until it is destroyed.
_LEGACY, _VERSIONED = b"dltensor", b"dltensor_versioned"
_USED = {_LEGACY: b"used_dltensor", _VERSIONED: b"used_dltensor_versioned"}

_capi = ctypes.pythonapi
_capi.PyCapsule_IsValid.restype = ctypes.c_int
_capi.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_GetPointer.restype = ctypes.c_void_p
_capi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_SetName.restype = ctypes.c_int
_capi.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _capsule_kind(capsule):
    for name in (_VERSIONED, _LEGACY):
        if _capi.PyCapsule_IsValid(capsule, name):
            return name
    raise BufferError("not an unconsumed DLPack capsule (expected one named 'dltensor' or 'dltensor_versioned'; "
                      "a capsule can be consumed once)")


def _managed(capsule, kind):
    ctype = "DLManagedTensorVersioned*" if kind == _VERSIONED else "DLManagedTensor*"
    return ffi.cast(ctype, _capi.PyCapsule_GetPointer(capsule, kind))


def _dltensor(capsule):
    """The DLTensor inside an unconsumed capsule (a cdata pointer); the capsule still owns it."""
    managed = _managed(capsule, _capsule_kind(capsule))
    return ffi.addressof(managed.dl_tensor)


def _run_deleter(managed):
    if managed.deleter != ffi.NULL:
        managed.deleter(managed)


def _from_dlpack(cls, obj, device):
    if isinstance(obj, np.ndarray) and _is_bfloat16(obj.dtype):
        return cls.from_numpy(obj, device)  # numpy's DLPack export refuses ml_dtypes' bfloat16
    if hasattr(obj, "__dlpack__"):
        if hasattr(obj, "__dlpack_device__"):
            dev_type, dev_id = obj.__dlpack_device__()
            if int(dev_type) != _KDLCPU:
                raise BufferError(f"from_dlpack needs a CPU tensor (DLPack device {_KDLCPU}), got device type "
                                  f"{int(dev_type)}; move it to the CPU first")
        try:
            capsule = obj.__dlpack__(max_version=(_DLPACK_MAJOR, 0))
        except TypeError:  # a producer older than DLPack 1.0 takes no max_version
            capsule = obj.__dlpack__()
    elif type(obj).__name__ == "PyCapsule":
        capsule = obj
    else:
        raise TypeError(f"from_dlpack needs an object with __dlpack__ (or a DLPack capsule), "
                        f"got {type(obj).__name__}")
    kind = _capsule_kind(capsule)
    managed = _managed(capsule, kind)
    if kind == _VERSIONED and managed.version.major != _DLPACK_MAJOR:
        raise BufferError(f"DLPack version {managed.version.major}.{managed.version.minor} is not supported "
                          f"(this consumer reads {_DLPACK_MAJOR}.x)")
    # Everything is checked before the capsule is consumed: on error its own destructor frees it.
    t = managed.dl_tensor
    if t.device.device_type != _KDLCPU:
        raise BufferError(f"from_dlpack needs CPU memory, got DLPack device type {t.device.device_type}")
    key = (t.dtype.code, t.dtype.bits)
    if t.dtype.lanes != 1 or key not in _FROM_DL_DTYPE:
        raise TypeError(f"DLPack dtype (code {t.dtype.code}, {t.dtype.bits} bits, {t.dtype.lanes} lanes) has no "
                        f"mps_shim equivalent")
    code = _FROM_DL_DTYPE[key]
    ndim = t.ndim
    if ndim < 0 or ndim > 64 or (ndim and t.shape == ffi.NULL):
        raise BufferError(f"malformed DLPack tensor: ndim {ndim}")
    shape = [t.shape[i] for i in range(ndim)]
    if t.strides == ffi.NULL:
        strides, step = [0] * ndim, 1
        for i in reversed(range(ndim)):
            strides[i], step = step, step * shape[i]
    else:
        strides = [t.strides[i] for i in range(ndim)]
    if any(s < 0 for s in strides):
        raise ValueError("tensors with negative strides cannot be wrapped without a copy")
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if numel and t.data == ffi.NULL:
        raise BufferError("malformed DLPack tensor: null data")
    data = ffi.cast("char*", t.data) + t.byte_offset if numel else ffi.NULL

    # Consume: from here on the DLManagedTensor is ours, and its deleter must run exactly once.
    if _capi.PyCapsule_SetName(capsule, _USED[kind]) != 0:
        raise BufferError("could not mark the DLPack capsule consumed")
    owner = ffi.gc(managed, _run_deleter)
    del capsule
    on_gpu = device == "mps" and not device_memory_is_host()
    out = ffi.new("AtenTensorHandle*")
    check(lib.aoti_torch_create_tensor_from_blob(
        ffi.cast("void*", data), ndim, _int64_array(shape), _int64_array(strides), 0, code,
        _device_code("cpu" if on_gpu else device), 0, out))
    host = cls(out[0], keep_alive=owner)
    return host._device_copy_of_host_tensor() if on_gpu else host
