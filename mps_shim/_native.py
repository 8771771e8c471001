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


def _package_dir(name):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # its parent package (nvidia) is absent
        return None
    return list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None


def _point_at_installed_cuda_compiler():
    """The cuda backend loads NVRTC and reads libcu++'s headers at run time; name those of NVIDIA's
    wheels (nvidia-cuda-nvrtc-cu12, nvidia-cuda-cccl-cu12) when they are installed and none was chosen."""
    nvrtc = _package_dir("nvidia.cuda_nvrtc")
    if nvrtc and not os.environ.get("MPS_SHIM_NVRTC"):
        lib_dir = os.path.join(nvrtc, "lib")
        names = sorted(n for n in os.listdir(lib_dir) if n.startswith("libnvrtc.so")) if os.path.isdir(lib_dir) else []
        if names:
            os.environ["MPS_SHIM_NVRTC"] = os.path.join(lib_dir, names[0])
    cccl = _package_dir("nvidia.cuda_cccl")
    if cccl and not os.environ.get("MPS_SHIM_CUDA_INCLUDE"):
        os.environ["MPS_SHIM_CUDA_INCLUDE"] = os.path.join(cccl, "include")


_point_at_installed_blas()
_point_at_installed_cuda_compiler()

try:
    from ._ffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only in a source tree that was never built
    raise ImportError(
        "mps_shim's native extension is not built; install the package (pip install .) "
        "or build it in place (python setup.py build_ext --inplace)"
    ) from exc

__all__ = ["ffi", "lib"]
