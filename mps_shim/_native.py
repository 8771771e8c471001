"""The cffi module: `ffi` and `lib` (libmps_shim.so's C ABI, declared by mps_shim.h)."""
try:
    from ._ffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only in a source tree that was never built
    raise ImportError(
        "mps_shim's native extension is not built; install the package (pip install .) "
        "or build it in place (python setup.py build_ext --inplace)"
    ) from exc

__all__ = ["ffi", "lib"]
