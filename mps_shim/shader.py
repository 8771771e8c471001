"""compile_shader(): kernels as Python callables, in the manner of torch.mps.compile_shader.

    lib = mps_shim.compile_shader(source)
    lib.add(out, a, b)                           # threads default to the first tensor's size
    lib.scale(out, x, 2.5, threads=n, group_size=64)
    lib.fill(out, [1.0, 2.0], arg_casts="fp16")  # a list packs into the parameter's vector or array

Arguments bind to the kernel's buffer indices in increasing order (skipping
error_buf_idx). What each becomes:
- numpy arrays and mps Tensors: buffers, without a copy (outputs land in them);
  mps torch tensors and other DLPack producers too. A torch tensor on another
  device is refused, as torch refuses it, unless it has no dimensions: then
  it is a value, as in torch (float64 and complex128 narrowed to 32 bits).
- Python int: int64; float: float32; complex: float2; numpy scalars: their own type.
- a list or tuple of numbers: their values packed (int64 if all are ints, else
  float32), for a `constant int2&`, `constant float* `...;
- a list or tuple of tensors: an argument buffer, the tensors' device addresses
  packed as 64-bit values, for `constant Struct&` holding `device T*` fields.
arg_casts converts the non-tensor arguments first: one name for all of them, or
{argument index: name}. Names: torch's "fp16", "bf16", "int32", "int16", "int8",
"uint8", or any numpy dtype name ("float16", "bfloat16", "int64"...).
error_buf_idx binds c10's error buffer (c10/metal/error.h) at that buffer index;
an error a kernel reports there with TORCH_REPORT_ERROR is raised after the
dispatch as KernelReportedError (a RuntimeError). threadgroup_memory={n: bytes}
sets the length of each `threadgroup T* p [[threadgroup(n)]]` parameter.
"""
import importlib.util
import os
import re

import numpy as np

from .errors import ArgumentError, CompileError
from .library import ShaderLibrary
from .tensor import Tensor, _bfloat16_dtype, as_tensor, bfloat16_bits

SIMD_WIDTH = 32  # threads of a SIMD-group, on every engine

_TORCH_CASTS = {"fp16": "float16", "bf16": "bfloat16", "int32": "int32", "int16": "int16", "int8": "int8",
                "uint8": "uint8"}
_C10_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]c10/metal/', re.MULTILINE)


def torch_include_dir():
    """The include folder of an installed torch (it holds c10/metal/*.h), or None; torch is not imported."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    include = os.path.join(list(spec.submodule_search_locations)[0], "include")
    return include if os.path.isdir(os.path.join(include, "c10", "metal")) else None


class CompiledShader:
    """A compiled library whose kernels are attributes; dir() lists the kernels."""

    def __init__(self, source, include_dirs=(), eager=None):
        include_dirs = [include_dirs] if isinstance(include_dirs, (str, bytes, os.PathLike)) else list(include_dirs)
        wants_c10 = isinstance(source, str) and _C10_INCLUDE.search(source) is not None
        torch_include = torch_include_dir() if wants_c10 else None
        if torch_include:
            include_dirs.append(torch_include)  # as torch.mps.compile_shader embeds the headers torch ships
        try:
            self.library = ShaderLibrary(source, include_dirs, eager=eager)
        except CompileError as e:
            if wants_c10 and not torch_include:
                raise CompileError(f"{e}\nThe <c10/metal/...> headers come with torch: pip install torch, "
                                   "or pass include_dirs= a folder holding c10/metal") from None
            raise

    def __getattr__(self, name):
        if name.startswith("__") or "library" not in self.__dict__:
            raise AttributeError(name)
        if name not in self.library.kernels:
            self.library.get_kernel_function(name)  # raises KernelNotFoundError (an AttributeError), listing them
        return BoundKernel(self.library, name)

    def __dir__(self):
        return self.library.kernel_names


class BoundKernel:
    """One kernel, callable with arguments, with the attributes of torch's compiled kernels."""

    def __init__(self, library, name):
        self.library = library
        self.name = name

    @property
    def function(self):
        """The kernel function (the default specialisation), compiled on first use."""
        return self.library.get_kernel_function(self.name)

    @property
    def max_threads_per_threadgroup(self):
        return self.function.max_threads

    @property
    def thread_execution_width(self):
        return SIMD_WIDTH

    @property
    def static_thread_group_memory_length(self):
        return self.function.threadgroup_memory

    def __call__(self, *args, threads=None, group_size=None, arg_casts=None, error_buf_idx=None, constants=None,
                 threadgroup_memory=None):
        """Binds the arguments in buffer-index order and dispatches; `constants` specialises the kernel
        ({name or index: value} of its function constants, as ShaderLibrary.get_kernel_function)."""
        function = self.library.get_kernel_function(self.name, constants)
        name = function.name
        bindings = sorted((p for p in function.params if p["kind"] in ("buffer", "scalar")), key=lambda p: p["binding"])
        params = [p for p in bindings if p["binding"] != error_buf_idx]
        if error_buf_idx is not None and len(params) == len(bindings):
            raise ArgumentError(f"kernel {name!r}: error_buf_idx={error_buf_idx!r} is not one of its buffer indices "
                                f"({', '.join(str(p['binding']) for p in bindings) or 'none'})")
        if len(args) != len(params):
            wanted = ", ".join(f"{p['name'] or '?'} ({p['type']})" for p in params)
            raise TypeError(f"kernel {name!r} takes {len(params)} arguments ({wanted}), got {len(args)}")
        casts = _casts(arg_casts, len(args))
        bound = [_argument(name, i, a, casts[i]) for i, a in enumerate(args)]
        if threads is None:
            threads = next((b.numel for b in bound if isinstance(b, Tensor)), None)
            if threads is None:
                raise ArgumentError(f"kernel {name!r}: no tensor argument to size the grid; pass threads=")

        def encode(fn):
            fn.start_encoding()
            for param, value in zip(params, bound):
                if isinstance(value, Tensor):
                    fn.set_arg_tensor(param["binding"], value)
                else:
                    fn.set_arg_bytes(param["binding"], value)
            if error_buf_idx is not None:
                fn.set_arg_error_buffer(error_buf_idx)
            for index, nbytes in (threadgroup_memory or {}).items():
                fn.set_threadgroup_memory_length(index, nbytes)
            fn.dispatch(threads, group_size)

        function.run_command_block(encode)
        for value in bound:  # numpy arrays copied to a GPU get the results back
            for tensor in value.tensors if isinstance(value, _ArgumentBuffer) else [value]:
                if isinstance(tensor, Tensor):
                    tensor.sync_to_host()
        del bound  # the tensors of argument buffers lived until here

    def __repr__(self):
        return f"BoundKernel({self.name!r})"


class _ArgumentBuffer(bytes):
    """Device addresses packed for a kernel, holding the tensors they point into."""

    def __new__(cls, tensors):
        self = super().__new__(cls, np.array([t.data_ptr for t in tensors], np.uint64).tobytes())
        self.tensors = tensors
        return self


def _casts(arg_casts, count):
    """The numpy dtype (or None) each argument is cast to."""
    if arg_casts is None:
        return [None] * count
    if isinstance(arg_casts, dict):
        out = [None] * count
        for index, cast in arg_casts.items():
            if not isinstance(index, int) or not 0 <= index < count:
                raise ArgumentError(f"arg_casts: {index!r} is not an argument index (0 to {count - 1})")
            out[index] = _cast_dtype(cast)
        return out
    if isinstance(arg_casts, (str, np.dtype, type)):
        return [_cast_dtype(arg_casts)] * count
    raise ArgumentError(f"arg_casts must be a dtype name or a dict {{argument index: name}}, "
                        f"got {type(arg_casts).__name__}")


def _cast_dtype(cast):
    name = _TORCH_CASTS.get(cast, cast) if isinstance(cast, str) else cast
    if name == "bfloat16":
        return "bfloat16"
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise ArgumentError(f"arg_casts: unknown dtype {cast!r} (torch's names: {', '.join(_TORCH_CASTS)}, "
                            "or a numpy dtype name)") from None
    if _bfloat16_dtype() is not None and dtype == _bfloat16_dtype():
        return "bfloat16"
    if dtype.kind not in "biufc":
        raise ArgumentError(f"arg_casts: cannot cast to {dtype}")
    return dtype


def _pack(values, cast, default):
    """Numbers as bytes of dtype `cast` (or `default`); bfloat16 rounds to nearest even."""
    if cast == "bfloat16":
        return bfloat16_bits(values).astype("<u2").tobytes()
    dtype = cast if cast is not None else default
    with np.errstate(over="ignore"):  # out of range floats become infinity, as Metal converts
        return np.asarray(values).astype(dtype).tobytes()


def _is_torch_tensor(value):
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "device")


def _is_tensor_like(value):
    return isinstance(value, (Tensor, np.ndarray)) or _is_torch_tensor(value) or hasattr(value, "__dlpack__")


def _argument(kernel, index, value, cast):
    """What argument `index` binds: a Tensor, or bytes."""
    where = f"kernel {kernel!r}, argument {index}"
    if _is_torch_tensor(value) and value.device.type != "mps" and value.dim() == 0:
        return _scalar_tensor(value, cast)  # as torch passes a CPU scalar tensor
    if _is_tensor_like(value):
        return _tensor(where, value)
    if isinstance(value, (list, tuple)):
        return _sequence(where, value, cast)
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return _scalar(where, value, cast)
    raise ArgumentError(f"{where}: cannot bind a {type(value).__name__} (pass an array, a tensor, a number, "
                        "or a list of numbers or of tensors)")


def _tensor(where, value):
    """An mps Tensor over the memory of an array, Tensor or DLPack producer; other devices are refused."""
    if _is_torch_tensor(value) and value.device.type != "mps":
        raise ArgumentError(f"{where}: a torch tensor on the {value.device.type} device; kernels take mps "
                            "tensors (numpy arrays, mps_shim.Tensor, or mps_shim.from_dlpack(t))")
    if isinstance(value, Tensor) and value.device != "mps":
        raise ArgumentError(f"{where}: a {value.device} tensor; kernels take mps tensors")
    return as_tensor(value)


def _scalar(where, value, cast):
    if isinstance(value, np.generic) and cast is None:
        return value.tobytes()
    default = (np.int64 if isinstance(value, (bool, int, np.integer, np.bool_)) else
               np.complex64 if isinstance(value, (complex, np.complexfloating)) else np.float32)
    try:
        return _pack(value, cast, default)
    except OverflowError:
        raise ArgumentError(f"{where}: {value!r} does not fit {cast or np.dtype(default)}") from None


def _sequence(where, values, cast):
    if not values:
        raise ArgumentError(f"{where}: an empty list cannot be bound")
    if all(_is_tensor_like(v) for v in values):
        return _ArgumentBuffer([_tensor(f"{where}, element {i}", v) for i, v in enumerate(values)])
    if not all(isinstance(v, (bool, int, float, np.integer, np.floating)) for v in values):
        raise ArgumentError(f"{where}: a list must hold only numbers or only tensors")
    ints = all(isinstance(v, (bool, int, np.integer)) for v in values)
    try:
        return _pack(list(values), cast, np.int64 if ints else np.float32)
    except OverflowError:
        raise ArgumentError(f"{where}: a value does not fit {cast or ('int64' if ints else 'float32')}") from None


def _scalar_tensor(value, cast):
    """A 0-dim CPU torch tensor as a value of its dtype (64-bit floats narrowed to 32, as torch does)."""
    import torch

    narrow = {torch.float64: torch.float32, torch.complex128: torch.complex64}
    if cast is not None:
        return _pack(value.item(), cast, None)
    value = value.to(narrow.get(value.dtype, value.dtype))
    return value.reshape(1).view(torch.uint8).numpy().tobytes()


def compile_shader(source, include_dirs=(), eager=None):
    """Compiles Metal source; its kernels become callable attributes.

    `#include <c10/metal/...>` finds the headers of an installed torch, as torch.mps.compile_shader
    does; include_dirs adds folders of your own (so does MPS_SHIM_INCLUDE_PATH). eager: as for
    ShaderLibrary (large libraries compile each kernel at its first call). A kernel with function
    constants takes them at the call: lib.k(out, x, constants={"FC_mode": 2}).
    """
    return CompiledShader(source, include_dirs, eager)
