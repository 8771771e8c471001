"""Shader libraries and kernel functions: the aoti_torch_mps_* calls, one method each."""
import json
import math
import os
import struct
from collections.abc import Sequence

from ._callbacks import run_command_block
from ._native import ffi, lib
from .errors import check
from .tensor import Tensor, as_tensor


class ShaderLibrary:
    """Metal Shading Language source compiled by the active backend."""

    def __init__(self, source, include_dirs=()):
        """Compiles `source`; #include searches `include_dirs` (then MPS_SHIM_INCLUDE_PATH's folders)."""
        if not isinstance(source, str):
            raise TypeError(f"Metal source must be a str, got {type(source).__name__}")
        if isinstance(include_dirs, (str, bytes, os.PathLike)):
            include_dirs = [include_dirs]
        dirs = [ffi.new("char[]", os.fsencode(d)) for d in include_dirs]
        out = ffi.new("AOTIMetalShaderLibraryHandle*")
        if dirs:
            check(lib.mps_shim_create_shader_library_with_includes(
                source.encode("utf-8"), ffi.new("char*[]", dirs), len(dirs), out))
        else:
            check(lib.aoti_torch_mps_create_shader_library(source.encode("utf-8"), out))
        self._handle = ffi.gc(out[0], lib.aoti_torch_mps_delete_shader_library)
        described = lib.mps_shim_library_describe(self._handle)
        if described == ffi.NULL:
            check(1)
        self.kernels = {k["name"]: k for k in json.loads(ffi.string(described).decode())["kernels"]}
        self._functions = {}

    @property
    def kernel_names(self):
        return sorted(self.kernels)

    def get_kernel_function(self, name):
        if name not in self._functions:
            out = ffi.new("AOTIMetalKernelFunctionHandle*")
            check(lib.aoti_torch_mps_get_kernel_function(self._handle, name.encode("utf-8"), out))
            self._functions[name] = KernelFunction(self, out[0], self.kernels[name])
        return self._functions[name]


def _sizes(values, what):
    if isinstance(values, int) and not isinstance(values, bool):
        return [values]
    if isinstance(values, Sequence) and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return list(values)
    raise TypeError(f"{what} must be an int or a sequence of 1 to 3 ints, got {values!r}")


class KernelFunction:
    """One kernel of a ShaderLibrary (owned by it; the library lives as long as this object)."""

    def __init__(self, library, handle, info):
        self._library = library  # the C library frees this handle with the library
        self._handle = handle
        self.info = info
        self.name = info["name"]
        self._bound = {}  # Python objects whose memory is bound, kept alive until the next start_encoding

    @property
    def max_threads(self):
        """[[max_total_threads_per_threadgroup]], or 1024."""
        return self.info["max_threads"]

    @property
    def threadgroup_memory(self):
        """Bytes of the threadgroup arrays the kernel declares (Metal's staticThreadgroupMemoryLength)."""
        return self.info["threadgroup_memory"]

    @property
    def params(self):
        return self.info["params"]

    def run_command_block(self, callback):
        """Runs callback(self) inside a command block; exceptions it raises propagate."""
        run_command_block(self, callback)

    def start_encoding(self):
        check(lib.aoti_torch_mps_start_encoding(self._handle))
        self._bound.clear()

    def set_arg_tensor(self, index, tensor):
        tensor = as_tensor(tensor)
        check(lib.aoti_torch_mps_set_arg_tensor(self._handle, index, tensor._handle))
        self._bound[index] = tensor

    def set_arg_int(self, index, value):
        check(lib.aoti_torch_mps_set_arg_int(self._handle, index, int(value)))

    def set_arg_bytes(self, index, data):
        data = bytes(data)
        check(lib.mps_shim_set_arg_bytes(self._handle, index, data, len(data)))

    def set_threadgroup_memory_length(self, index, nbytes):
        """Metal's setThreadgroupMemoryLength for the [[threadgroup(index)]] parameter (a multiple of 16 bytes)."""
        check(lib.mps_shim_set_threadgroup_memory_length(self._handle, index, nbytes))

    def set_arg_error_buffer(self, index):
        """Binds the runtime's c10::metal::ErrorMessages buffer; a kernel's TORCH_REPORT_ERROR fails the dispatch."""
        check(lib.mps_shim_set_arg_error_buffer(self._handle, index))

    def set_arg_float(self, index, value):
        """Binds a float32, rounding as Metal would: out of range becomes infinity."""
        try:
            data = struct.pack("<f", value)
        except OverflowError:
            data = struct.pack("<f", math.copysign(math.inf, value))
        self.set_arg_bytes(index, data)

    def dispatch(self, length, group_size=None):
        """dispatchThreads over `length` (int or 1-3 ints), in groups of `group_size`."""
        dims = _sizes(length, "length")
        groups = None if group_size is None else _sizes(group_size, "group_size")
        if any(v < 0 for v in dims + (groups or [])):
            raise ValueError(f"grid and group sizes must be non-negative, got {length!r} and {group_size!r}")
        if isinstance(length, int) and (group_size is None or isinstance(group_size, int)):
            if group_size is None:
                return check(lib.aoti_torch_mps_dispatch_single(self._handle, length))
            return check(lib.aoti_torch_mps_dispatch_single_with_group_size(self._handle, length, group_size))
        grid = ffi.new("uint64_t[]", dims)
        if groups is None:
            return check(lib.aoti_torch_mps_dispatch_array(self._handle, grid, len(dims)))
        check(lib.aoti_torch_mps_dispatch_array_with_group_size(
            self._handle, grid, len(dims), ffi.new("uint64_t[]", groups) if groups else ffi.NULL, len(groups)))

    def __repr__(self):
        return f"KernelFunction({self.name!r})"


__all__ = ["ShaderLibrary", "KernelFunction", "Tensor"]
