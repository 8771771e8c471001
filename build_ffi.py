"""cffi build module (API mode) for mps_shim._ffi.

The declarations come from the public C header csrc/include/mps_shim.h, between
its CDEF-BEGIN/CDEF-END markers, so Python and C see one source of truth. The
extension holds no runtime of its own: it links to libmps_shim.so, found next
to it at run time through an $ORIGIN rpath. Python-only declarations live in
mps_shim/_decl/: callbacks.h (the command-block trampoline) and dlpack.h (the
DLPack structures, compiled into the extension too so cffi checks their layout).
"""
import os
import re
import sys

from cffi import FFI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_native import NATIVE_OUT  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(ROOT, "csrc", "include", "mps_shim.h")
# Declarations cffi sees, in order: the shim and its extensions, then the ATen fallback ops.
HEADERS = [HEADER, os.path.join(ROOT, "csrc", "include", "mps_shim_aten.h")]
DECL_DIR = os.path.join(ROOT, "mps_shim", "_decl")
CALLBACK_DECL = os.path.join(DECL_DIR, "callbacks.h")
DLPACK_DECL = os.path.join(DECL_DIR, "dlpack.h")


def cdef_text(header=HEADER):
    with open(header, encoding="utf-8") as f:
        text = f.read()
    body = text.split("/* CDEF-BEGIN */", 1)[1].split("/* CDEF-END */", 1)[0]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return body.replace("MPS_SHIM_EXPORT ", "")


ffibuilder = FFI()
for header in HEADERS:
    ffibuilder.cdef(cdef_text(header))
with open(CALLBACK_DECL, encoding="utf-8") as f:
    ffibuilder.cdef(f.read())
with open(DLPACK_DECL, encoding="utf-8") as f:
    ffibuilder.cdef(f.read())
ffibuilder.set_source(
    "mps_shim._ffi",
    '#include "mps_shim.h"\n#include "mps_shim_aten.h"\n#include "dlpack.h"\n',
    include_dirs=[os.path.dirname(HEADER), DECL_DIR],
    library_dirs=[NATIVE_OUT],
    libraries=["mps_shim"],
    extra_link_args=["-Wl,-rpath,$ORIGIN"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
