"""Shader libraries and kernel functions: the aoti_torch_mps_* calls, one method each."""
import json
import math
import os
import struct
from collections.abc import Sequence

import numpy as np

from ._callbacks import run_command_block
from ._native import ffi, lib
from .errors import ArgumentError, check
from .tensor import Tensor, as_tensor, bfloat16_bits


# ShaderLibrary(eager=...) -> mps_shim_compile_mode
_COMPILE_MODES = {None: 0, True: 1, False: 2}

# A function constant's Metal scalar type -> numpy dtype ("bfloat" is packed apart).
_CONSTANT_SCALARS = {"bool": np.bool_, "char": np.int8, "uchar": np.uint8, "short": np.int16, "ushort": np.uint16,
                     "int": np.int32, "uint": np.uint32, "long": np.int64, "ulong": np.uint64, "half": np.float16,
                     "float": np.float32, "bfloat": "bfloat"}


def compile_check(source, backend="cuda", include_dirs=()):
    """Compiles `source` for `backend` without running it, where that backend needs no device for
    it: "cuda" translates every kernel to CUDA C++ and compiles it with NVRTC (for
    MPS_SHIM_CUDA_ARCH, default sm_90). Raises CompileError naming the Metal line where it does
    not compile, EngineError where NVRTC or libcu++'s headers are missing (pip install
    nvidia-cuda-nvrtc-cu12 nvidia-cuda-cccl-cu12)."""
    if isinstance(include_dirs, (str, bytes, os.PathLike)):
        include_dirs = [include_dirs]
    dirs = [ffi.new("char[]", os.fsencode(d)) for d in include_dirs]
    check(lib.mps_shim_compile_check(backend.encode(), source.encode("utf-8"), ffi.new("char*[]", dirs), len(dirs)))


class ShaderLibrary:
    """Metal Shading Language source read by the active backend; its kernels compile now or at first use.

    kernels: name -> description (parameters, bindings, execution...); a kernel not compiled yet is
    described by the front end ("compiled": False, parameter sizes 0, "execution" "undecided" where it
    may wait). function_constants: name -> {"type", "index", "required", ...}.
    """

    def __init__(self, source, include_dirs=(), eager=None):
        """Reads `source` and lists its kernels; #include searches `include_dirs` (then MPS_SHIM_INCLUDE_PATH's).

        eager=True compiles every kernel now; eager=False leaves each kernel to its first
        get_kernel_function (creation only preprocesses and parses, so errors only the C++ compiler
        finds surface there); None (the default) compiles libraries of at most 64 kernels now and
        larger ones kernel by kernel, unless MPS_SHIM_EAGER=1 or 0 says otherwise.
        """
        if not isinstance(source, str):
            raise TypeError(f"Metal source must be a str, got {type(source).__name__}")
        if eager not in _COMPILE_MODES:
            raise TypeError(f"eager must be True, False or None, got {eager!r}")
        if isinstance(include_dirs, (str, bytes, os.PathLike)):
            include_dirs = [include_dirs]
        dirs = [ffi.new("char[]", os.fsencode(d)) for d in include_dirs]
        out = ffi.new("AOTIMetalShaderLibraryHandle*")
        if dirs or eager is not None:
            options = ffi.new("mps_shim_library_options*")
            dir_array = ffi.new("char*[]", dirs)  # kept alive until the call returns
            options.include_dirs = dir_array
            options.num_include_dirs = len(dirs)
            options.compile = _COMPILE_MODES[eager]
            check(lib.mps_shim_create_shader_library_with_options(source.encode("utf-8"), options, out))
        else:
            check(lib.aoti_torch_mps_create_shader_library(source.encode("utf-8"), out))
        self._handle = ffi.gc(out[0], lib.aoti_torch_mps_delete_shader_library)
        self._functions = {}
        self._describe()

    def _describe(self):
        described = lib.mps_shim_library_describe(self._handle)
        if described == ffi.NULL:
            check(1)
        info = json.loads(ffi.string(described).decode())
        self.kernels = {k["name"]: k for k in info["kernels"]}
        self.function_constants = {c["name"]: c for c in info["function_constants"]}

    @property
    def kernel_names(self):
        return sorted(self.kernels)

    def compile_all(self):
        """Compiles every kernel not compiled yet (all of them on the worker threads); raises CompileError."""
        check(lib.mps_shim_compile_all(self._handle))
        self._describe()

    def get_kernel_function(self, name, constants=None):
        """The kernel `name`, compiled on first use; `constants` specialises it.

        constants: {name or index: value} of function constants (`constant T x [[function_constant(i)]]`);
        values are converted to the declared type (a vector takes a sequence). Each specialisation is a
        kernel function of its own, compiled once. A constant without a value is undefined: a kernel
        that reads one the library never tests with is_function_constant_defined raises ArgumentError.
        """
        settings = self._constant_settings(name, constants or {})
        key = (name, tuple(sorted((canonical, data) for _, data, canonical in settings)))
        if key not in self._functions:
            out = ffi.new("AOTIMetalKernelFunctionHandle*")
            if settings:
                array = ffi.new("mps_shim_function_constant[]", len(settings))
                keep = []
                for entry, (which, data, _) in zip(array, settings):  # name NULL: by index
                    if isinstance(which, str):
                        keep.append(ffi.new("char[]", which.encode("utf-8")))
                        entry.name = keep[-1]
                    else:
                        entry.index = which
                    keep.append(ffi.new("char[]", data or b"\0"))
                    entry.value, entry.size = keep[-1], len(data)
                check(lib.mps_shim_get_kernel_function_with_constants(
                    self._handle, name.encode("utf-8"), array, len(settings), out))
            else:
                check(lib.aoti_torch_mps_get_kernel_function(self._handle, name.encode("utf-8"), out))
            described = lib.mps_shim_kernel_function_describe(out[0])
            if described == ffi.NULL:
                check(1)
            info = json.loads(ffi.string(described).decode())
            self._functions[key] = KernelFunction(self, out[0], info)
            if not settings:  # the library's description of the kernel is now the compiled one
                self.kernels[name] = {k: v for k, v in info.items() if k != "constants"}
        return self._functions[key]

    def _constant_settings(self, kernel, constants):
        """[(name or index, bytes, declared name)] for the C call, each value packed as its declared type."""
        if not isinstance(constants, dict):
            raise ArgumentError(f"kernel {kernel!r}: constants must be a dict {{name or index: value}}, "
                                f"got {type(constants).__name__}")
        by_index = {c["index"]: c for c in self.function_constants.values()}
        out = []
        for which, value in constants.items():
            if isinstance(which, bool) or not isinstance(which, (str, int)):
                raise ArgumentError(f"kernel {kernel!r}: a function constant is named by its name or index, "
                                    f"got {which!r}")
            declared = self.function_constants.get(which) if isinstance(which, str) else by_index.get(which)
            # An unknown constant goes to the runtime as it is, which says what the library declares.
            if declared is None:
                out.append((which, b"", str(which)))
            else:
                out.append((which, _pack_constant(kernel, declared, value), declared["name"]))
        return out


def _pack_constant(kernel, declared, value):
    """`value` as the bytes of the constant's type: a number, or a sequence of them for a vector."""
    name, type_name = declared["name"], declared["type"]
    lanes = int(type_name[-1]) if type_name[-1] in "234" else 1
    scalar = _CONSTANT_SCALARS[type_name[:-1] if lanes > 1 else type_name]
    values = list(value) if lanes > 1 and isinstance(value, (list, tuple, np.ndarray)) else [value]
    where = f"kernel {kernel!r}: function constant {name!r} ({type_name})"
    if len(values) != lanes:
        raise ArgumentError(f"{where} takes {lanes} values, got {len(values)}")
    for v in values:
        if not isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)):
            raise ArgumentError(f"{where}: cannot take {v!r}")
        if scalar is np.bool_ and not (isinstance(v, (bool, np.bool_)) or v in (0, 1)):
            raise ArgumentError(f"{where} is a bool, got {v!r}")
        if scalar not in (np.bool_, np.float16, np.float32, "bfloat"):
            if not float(v).is_integer():
                raise ArgumentError(f"{where} is an integer, got {v!r}")
            info = np.iinfo(scalar)
            if not info.min <= int(v) <= info.max:
                raise ArgumentError(f"{where}: {v!r} does not fit ({info.min} to {info.max})")
    if scalar == "bfloat":
        return bfloat16_bits(values).astype("<u2").tobytes()
    if scalar in (np.float16, np.float32):
        with np.errstate(over="ignore"):
            return np.asarray(values, np.float64).astype(scalar).tobytes()
    return np.asarray([int(v) for v in values]).astype(scalar).tobytes()


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
        for tensor in self._bound.values():  # numpy arrays copied to a GPU get the results back
            tensor.sync_to_host()

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
