"""Where the installed native pieces live: libmps_shim.so and mps_shim.h ship inside the package."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def library_path():
    """Absolute path of libmps_shim.so, the standalone C ABI library."""
    return os.path.join(_HERE, "libmps_shim.so")


def include_dir():
    """Absolute path of the folder holding mps_shim.h."""
    return os.path.join(_HERE, "include")
