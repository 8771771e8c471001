"""Loads the no-op MPS DeviceGuard (_mps_guard.cpp) into a CPU-only torch, for the length of an export.

torch's Python bindings open a DeviceGuard for tensor arguments, FakeTensors on
"mps" included; a CPU build has no guard for MPS and fails. The guard is built
against torch's c10 headers and linked to torch's libc10 (the registry it
registers into), cached like everything else we build.
"""
import contextlib
import ctypes
import os

from . import _build

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_mps_guard.cpp")
_loaded = None


def _library():
    global _loaded
    if _loaded is not None:
        return _loaded
    import torch
    import torch.utils.cpp_extension as cpp_ext

    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    with open(_SOURCE, "rb") as f:
        source = f.read()
    key = _build.content_key(source, torch.__version__.encode(), torch_lib.encode())

    def build(path):
        _build.compile_shared([_SOURCE], path, include_dirs=cpp_ext.include_paths()[:1],
                              flags=("-std=c++17", "-O1", "-fPIC", "-shared"),
                              libs=[f"-L{torch_lib}", "-lc10", f"-Wl,-rpath,{torch_lib}"])

    path = _build.cached_build(key, "mps_guard.so", build)
    _loaded = ctypes.CDLL(path)
    return _loaded


@contextlib.contextmanager
def mps_device_guard():
    """Registers the no-op MPS guard for the duration of the block (unless torch has one)."""
    lib = _library()
    installed = lib.mps_shim_install_mps_guard()
    try:
        yield
    finally:
        if installed:
            lib.mps_shim_uninstall_mps_guard()
