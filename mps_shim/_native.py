"""The cffi module: `ffi` and `lib` (libmps_shim.so's C ABI, declared by mps_shim.h and mps_shim_aten.h)."""
import importlib.util
import os


def _point_at_installed_blas():
    """libmps_shim finds a CBLAS at run time; name scipy_openblas32's when it is installed and none was chosen.

    The library also looks beside its own folder, which covers a normal install; this covers in-place builds
    and installs into another site directory.
    """
    if os.environ.get("MPS_SHIM_BLAS"):
        return
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return
    path = os.path.join(list(spec.submodule_search_locations)[0], "lib", "libscipy_openblas.so")
    if os.path.exists(path):
        os.environ["MPS_SHIM_BLAS"] = path


_point_at_installed_blas()

try:
    from ._ffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only in a source tree that was never built
    raise ImportError(
        "mps_shim's native extension is not built; install the package (pip install .) "
        "or build it in place (python setup.py build_ext --inplace)"
    ) from exc

__all__ = ["ffi", "lib"]
