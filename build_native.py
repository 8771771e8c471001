"""Builds libmps_shim.so, the standalone C++ runtime, from csrc/.

The library has no Python dependency: C programs and AOTInductor-generated code
link to it directly, and the cffi extension links to this same file so that one
process has one runtime. setup.py calls build_library(); developers can also run
`python build_native.py OUT_DIR` for a quick rebuild.

The host engine's headers (csrc/backends/host/metal_include: the entry header,
metal/ for Metal's standard library, host/ for the host runtime) are embedded
into the library as string literals, with their relative paths, so the .so is
self-contained.
"""
import concurrent.futures
import hashlib
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(ROOT, "csrc")
INCLUDE_DIR = os.path.join(CSRC, "include")
METAL_INCLUDE = os.path.join(CSRC, "backends", "host", "metal_include")
# The kernel schema, shared by the runtime and generated modules (as the C ABI's CDEF is by C and cffi).
KERNEL_SCHEMA = os.path.join(INCLUDE_DIR, "mps_shim_kernel_schema.h")
LIBRARY_NAME = "libmps_shim.so"
NATIVE_OUT = os.path.join(ROOT, "build", "native", "lib")

# The ABI sources are Objective-C++ in the C++ subset: g++ builds them as C++.
_LANGUAGE_FLAG = {".cpp": "c++", ".mm": "objective-c++" if sys.platform == "darwin" else "c++"}
# Backends built on one platform only (folder under csrc/backends -> sys.platform).
_PLATFORM_ONLY = {"metal": "darwin"}


def _sources():
    found = []
    for folder, dirs, files in os.walk(CSRC):
        rel = os.path.relpath(folder, CSRC).split(os.sep)
        if rel[0] == "backends" and len(rel) > 1 and _PLATFORM_ONLY.get(rel[1], sys.platform) != sys.platform:
            continue
        dirs.sort()
        found += [os.path.join(folder, f) for f in sorted(files) if os.path.splitext(f)[1] in _LANGUAGE_FLAG]
    return found


def _embed_metal_headers(out_path):
    """Writes a C++ file that holds every compatibility header as a raw string."""
    names = []  # paths relative to METAL_INCLUDE, '/'-separated: the include folder keeps the layout
    for folder, dirs, files in os.walk(METAL_INCLUDE):
        dirs.sort()
        rel = os.path.relpath(folder, METAL_INCLUDE)
        names += [f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}" for f in sorted(files)]
    files = [(name, os.path.join(METAL_INCLUDE, *name.split("/"))) for name in names]
    files.append((os.path.basename(KERNEL_SCHEMA), KERNEL_SCHEMA))
    lines = ['#include "backends/host/embedded_headers.h"', "namespace mps_shim::host {", "const EmbeddedFile kEmbeddedHeaders[] = {"]
    for name, path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        delim = "MPSSHIM"
        while f"){delim}\"" in text:
            delim += "_"
        lines.append(f'  {{"{name}", R"{delim}({text}){delim}"}},')
    lines += ["};", f"const unsigned kEmbeddedHeaderCount = {len(files)};", "}  // namespace mps_shim::host", ""]
    content = "\n".join(lines)
    if not os.path.exists(out_path) or open(out_path, encoding="utf-8").read() != content:
        with open(out_path, "w", encoding="utf-8") as f:
            f.write(content)
    return out_path


def _compiler():
    return shlex.split(os.environ.get("CXX", "g++"))


def build_id():
    """Content hash of the engine's sources: compiled kernels cached by another build are never reused."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(CSRC):
        dirs.sort()
        for name in sorted(files):
            with open(os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def compile_flags(debug=False):
    flags = [f"-DMPS_SHIM_BUILD_ID=\"{build_id()}\"", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden",
             "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread", f"-I{CSRC}", f"-I{INCLUDE_DIR}"]
    flags += ["-O0", "-g"] if debug else ["-O2", "-g0"]
    return flags


def build_library(out_dir=NATIVE_OUT, build_temp=None, debug=None, jobs=None):
    """Compiles csrc/ into out_dir/libmps_shim.so and returns its path."""
    debug = os.environ.get("MPS_SHIM_DEBUG_BUILD") == "1" if debug is None else debug
    build_temp = build_temp or os.path.join(ROOT, "build", "native", "obj")
    os.makedirs(build_temp, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    sources = _sources() + [_embed_metal_headers(os.path.join(build_temp, "embedded_metal_headers.cpp"))]
    cxx, flags = _compiler(), compile_flags(debug)

    def compile_one(src):
        obj = os.path.join(build_temp, hashlib.sha1(src.encode()).hexdigest()[:12] + "_" + os.path.basename(src) + ".o")
        lang = _LANGUAGE_FLAG.get(os.path.splitext(src)[1], "c++")
        cmd = cxx + flags + ["-x", lang, "-c", src, "-o", obj]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {os.path.relpath(src, ROOT)} failed:\n{' '.join(cmd)}\n{proc.stderr}")
        if proc.stderr.strip():
            sys.stderr.write(proc.stderr)
        return obj

    workers = jobs or max(1, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        objects = list(pool.map(compile_one, sources))
    out = os.path.join(out_dir, LIBRARY_NAME)
    tmp = out + ".tmp"
    link = cxx + ["-shared", "-pthread", "-Wl,-soname," + LIBRARY_NAME, "-o", tmp] + objects + ["-ldl"]
    if sys.platform != "darwin":
        link[1:1] = ["-Wl,--no-undefined", "-Wl,--version-script=" + os.path.join(CSRC, "abi", "exports.map")]
    proc = subprocess.run(link, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"linking {LIBRARY_NAME} failed:\n{' '.join(link)}\n{proc.stderr}")
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    print(build_library(sys.argv[1] if len(sys.argv) > 1 else NATIVE_OUT))
