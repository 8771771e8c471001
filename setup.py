"""Wiring only: libmps_shim.so comes from build_native.py, the cffi module from build_ffi.py."""
import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_native  # noqa: E402


class BuildWithNativeLibrary(build_ext):
    """Builds libmps_shim.so and ships it, with its header, inside the package."""

    def run(self):
        package_dir = "mps_shim" if self.inplace else os.path.join(self.build_lib, "mps_shim")
        build_native.build_library()
        self._install_native(package_dir)
        super().run()

    def _install_native(self, package_dir):
        os.makedirs(os.path.join(package_dir, "include"), exist_ok=True)
        shutil.copy2(os.path.join(build_native.NATIVE_OUT, build_native.LIBRARY_NAME), package_dir)
        for header in ("mps_shim.h", "mps_shim_aten.h"):
            shutil.copy2(os.path.join(build_native.INCLUDE_DIR, header), os.path.join(package_dir, "include"))


setup(cffi_modules=["build_ffi.py:ffibuilder"], cmdclass={"build_ext": BuildWithNativeLibrary})
