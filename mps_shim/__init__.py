"""mps_shim: PyTorch AOTInductor's MPS C shim, standalone - run Metal compute kernels anywhere.

The C ABI lives in libmps_shim.so (library_path(), header in include_dir());
this package is a thin layer over it: errors become exceptions, numpy arrays
become tensors without a copy, and Python callables run as command blocks.
"""
import json

from . import errors

from ._native import ffi, lib
from ._paths import include_dir, library_path
from .errors import (ArgumentError, CommandBlockError, CompileError, DispatchError, EngineError, InternalError,
                     InvalidHandleError, KernelCheckError, KernelNotFoundError, KernelReportedError, MpsShimError,
                     OpError, OutOfMemoryError, SizeError, check, raise_pending)
from .checked import checked, checked_mode, set_checked_mode, take_check_reports
from .library import KernelFunction, ShaderLibrary, compile_check
from .shader import CompiledShader, compile_shader
from .tensor import Tensor, from_dlpack

__version__ = "0.1.0"


def backend_name():
    """The engine that runs kernels, as MPS_SHIM_BACKEND selects: "host" (the CPU) for now."""
    name = ffi.string(lib.mps_shim_backend_name()).decode()
    if not name:
        raise errors._last_exception()
    return name


def runtime_info():
    """Version, registered backends, selected backend, compiler, cache folder and worker threads, as a dict."""
    info = lib.mps_shim_runtime_info()
    if info == ffi.NULL:
        raise errors._last_exception()
    return json.loads(ffi.string(info).decode())


def synchronize():
    """Waits until all dispatched work has completed, then raises the pending failure, if any.

    The pending failure is the first one since the last report that no caller
    has seen (generated model code ignores return codes); see errors.raise_pending.
    """
    code = lib.mps_shim_synchronize()
    if code != 0:
        raise errors._last_exception()


__all__ = [
    "ArgumentError", "CommandBlockError", "CompileError", "CompiledShader", "DispatchError", "EngineError",
    "InternalError", "InvalidHandleError", "KernelCheckError", "KernelFunction", "KernelNotFoundError",
    "KernelReportedError", "checked", "checked_mode", "set_checked_mode", "take_check_reports",
    "MpsShimError", "OpError", "OutOfMemoryError", "ShaderLibrary", "SizeError", "Tensor", "backend_name",
    "compile_check", "compile_shader", "from_dlpack", "include_dir", "library_path", "raise_pending", "runtime_info", "synchronize",
]
