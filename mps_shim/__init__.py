"""mps_shim: PyTorch AOTInductor's MPS C shim, standalone - run Metal compute kernels anywhere."""
from ._paths import include_dir, library_path

__all__ = ["include_dir", "library_path"]
