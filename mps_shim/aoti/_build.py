"""Compiling C++ for AOTInductor models with the system compiler, cached by content.

Two things are built here: the generated model wrapper (a `.wrapper.cpp` plus
its `.weights.o`, from a cpp-only package or from an export) into `model.so`,
and the small no-op MPS device guard that exporting loads into torch. Both are
compiled against torch's headers only; nothing links libtorch. The model.so
leaves its `aoti_torch_*` symbols undefined: they resolve at load time from
libmps_shim.so, which the loader makes global first.

Results are kept under the mps_shim cache folder (the one the runtime vets:
owned by this user, not writable by others), in `aoti/`, named by a hash of
everything that goes into them, and written by atomic rename so concurrent
processes are safe.
"""
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile

# DESIGN §5: what a wrapper needs to compile against torch's headers without libtorch.
MODEL_DEFINES = ("TORCH_INDUCTOR_CPP_WRAPPER", "STANDALONE_TORCH_HEADER", "C10_USING_CUSTOM_GENERATED_MACROS",
                 "USE_MPS")
# The wrapper is glue (kernel launches, tensor bookkeeping): -O1 compiles in half the time of -O3
# and the kernels themselves are compiled by the runtime.
MODEL_FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-w")

_private_dir = None


class BuildError(RuntimeError):
    """The C++ compiler failed; the message holds its command line and output."""


def compiler():
    return shlex.split(os.environ.get("CXX", "g++"))


@functools.lru_cache(maxsize=None)
def _compiler_version():
    try:
        out = subprocess.run(compiler() + ["--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def cache_dir():
    """The folder for built models: <mps_shim cache>/aoti, or a private temporary folder."""
    global _private_dir
    from .. import runtime_info

    base = runtime_info().get("cache_dir") or ""
    if base and os.path.isdir(base):
        path = os.path.join(base, "aoti")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            return path
        except OSError:
            pass
    if _private_dir is None:  # the runtime refused the cache folder: keep builds for this process only
        _private_dir = tempfile.mkdtemp(prefix="mps_shim_aoti_")
    return _private_dir


def content_key(*parts):
    """A hex digest of byte strings, file contents and the compiler's identity."""
    h = hashlib.sha256()
    for part in parts + (_compiler_version().encode(), " ".join(compiler()).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:32]


def compile_shared(sources, output, include_dirs=(), defines=(), flags=MODEL_FLAGS, libs=()):
    """Compiles `sources` (.cpp and .o) into the shared library `output`, atomically."""
    cmd = compiler() + list(flags) + [f"-D{d}" for d in defines] + [f"-I{d}" for d in include_dirs]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(output) or ".", suffix=".so.tmp")
    os.close(fd)
    try:
        cmd += list(sources) + list(libs) + ["-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"[mps_shim.aoti] compiling failed:\n$ {shlex.join(cmd)}\n{proc.stderr[-8000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return output


def cached_build(key, name, build):
    """The path <cache>/<key>/<name>; calls build(path) to make it if it is not there yet."""
    folder = os.path.join(cache_dir(), key)
    path = os.path.join(folder, name)
    if os.path.exists(path):
        return path
    os.makedirs(folder, mode=0o700, exist_ok=True)
    build(path)
    return path


def copy_atomic(src, dst):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dst)), suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
