"""A model.so's AOTInductor container C API, through cffi in ABI mode (declared in _decl/aoti_container.h).

Loading order matters: the model.so leaves every `aoti_torch_*` symbol
undefined, so libmps_shim.so must be in the global symbol namespace before the
model is dlopen'ed. The cffi extension loaded it privately (RTLD_LOCAL);
opening the same file again with RTLD_GLOBAL promotes that one copy, so the
model and Python share one runtime, one handle registry.
"""
import ctypes
import hashlib
import os
import re
import shutil
import tempfile

from cffi import FFI

from .. import _paths

_DECL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_decl", "aoti_container.h")

ffi = FFI()
with open(_DECL, encoding="utf-8") as _f:
    ffi.cdef(re.sub(r"/\*.*?\*/", "", _f.read(), flags=re.S))

_global_runtime = None


class ModelLoadError(OSError):
    """A model.so could not be opened or its container could not be created."""


def ensure_runtime_global():
    """Makes libmps_shim.so's symbols global (once per process)."""
    global _global_runtime
    if _global_runtime is None:
        from .. import _native  # noqa: F401  the cffi extension has loaded the library: promote that copy

        _global_runtime = ctypes.CDLL(_paths.library_path(), mode=os.RTLD_GLOBAL | os.RTLD_NOW)
    return _global_runtime


def _missing_symbols(message):
    return re.findall(r"undefined symbol: (\w+)", message)


_opened = {}  # absolute path -> (size, mtime) of the file that was dlopen'ed there


def _fresh_path(path):
    """`path`, or a private copy of it when another file was dlopen'ed from that path in this process:
    dlopen hands back the module it already holds for a path, so a re-exported model.so would run the
    old code."""
    st = os.stat(path)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    seen = _opened.setdefault(path, stamp)
    if seen == stamp:
        return path
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:24]
    copy = os.path.join(tempfile.gettempdir(), f"mps_shim-model-{os.getuid()}-{digest}.so")
    if not os.path.exists(copy):
        tmp = f"{copy}.{os.getpid()}.tmp"
        shutil.copyfile(path, tmp)
        os.replace(tmp, copy)
    return copy


def open_model(path):
    """dlopen's a model.so (after the runtime); a clear error for symbols libmps_shim does not provide."""
    ensure_runtime_global()
    try:
        return ffi.dlopen(_fresh_path(os.path.abspath(path)), ffi.RTLD_NOW | ffi.RTLD_LOCAL)
    except OSError as exc:
        missing = _missing_symbols(str(exc))
        if missing:
            raise ModelLoadError(
                f"[mps_shim.aoti] {path} needs {', '.join(missing)}, which this libmps_shim does not provide "
                "(an ATen fallback op not implemented yet?); `nm -D --undefined-only` lists all it needs") from None
        raise ModelLoadError(f"[mps_shim.aoti] cannot open {path}: {exc}") from None


def last_error(lib):
    """The model's own last error message (AOTInductorGetLastError), or ""."""
    try:
        get = lib.AOTInductorGetLastError
    except AttributeError:  # models from before the function existed
        return ""
    msg = ffi.new("const char**")
    if get(msg) != 0 or msg[0] == ffi.NULL:
        return ""
    return ffi.string(msg[0]).decode("utf-8", "replace")


def check(lib, code, what):
    if code != 0:
        detail = last_error(lib)
        raise RuntimeError(f"[mps_shim.aoti] {what} failed" + (f": {detail}" if detail else ""))


class Container:
    """One AOTInductorModelContainer on "mps"; deleted with close() or when garbage collected."""

    def __init__(self, lib, path):
        self.lib = lib
        # Looked up now, not in __del__: cffi builds a function's accessor on first use under ffi's
        # (non-reentrant) lock, and a collection inside ffi.dlopen, which holds it, deadlocked.
        self._delete = lib.AOTInductorModelContainerDelete
        handle = ffi.new("AOTInductorModelContainerHandle*")
        code = lib.AOTInductorModelContainerCreateWithDevice(handle, 1, b"mps", ffi.NULL)
        if code != 0:
            raise ModelLoadError(f"[mps_shim.aoti] {path}: creating the model container failed"
                                 + (f": {last_error(lib)}" if last_error(lib) else ""))
        self.handle = handle[0]
        self.num_inputs = self._count(lib.AOTInductorModelContainerGetNumInputs, "GetNumInputs")
        self.num_outputs = self._count(lib.AOTInductorModelContainerGetNumOutputs, "GetNumOutputs")

    def _count(self, fn, what):
        out = ffi.new("size_t*")
        check(self.lib, fn(self.handle, out), what)
        return int(out[0])

    def _string(self, fn, idx, what):
        out = ffi.new("const char**")
        check(self.lib, fn(self.handle, idx, out), what)
        return ffi.string(out[0]).decode() if out[0] != ffi.NULL else ""

    def input_names(self):
        return [self._string(self.lib.AOTInductorModelContainerGetInputName, i, "GetInputName")
                for i in range(self.num_inputs)]

    def output_names(self):
        return [self._string(self.lib.AOTInductorModelContainerGetOutputName, i, "GetOutputName")
                for i in range(self.num_outputs)]

    def call_spec(self):
        ins, outs = ffi.new("const char**"), ffi.new("const char**")
        check(self.lib, self.lib.AOTInductorModelContainerGetCallSpec(self.handle, ins, outs), "GetCallSpec")
        return ffi.string(ins[0]).decode(), ffi.string(outs[0]).decode()

    def constants(self):
        """[(name, original fully qualified name, dtype code, data size in bytes)] of the model's constants."""
        n = self._count(self.lib.AOTInductorModelContainerGetNumConstants, "GetNumConstants")
        out = []
        for i in range(n):
            name = self._string(self.lib.AOTInductorModelContainerGetConstantName, i, "GetConstantName")
            fqn = self._string(self.lib.AOTInductorModelContainerGetConstantOriginalFQN, i, "GetConstantOriginalFQN")
            dtype, size = ffi.new("int32_t*"), ffi.new("size_t*")
            check(self.lib, self.lib.AOTInductorModelContainerGetConstantDtype(self.handle, i, dtype), "GetConstantDtype")
            check(self.lib, self.lib.AOTInductorModelContainerGetConstantDataSize(self.handle, i, size),
                  "GetConstantDataSize")
            out.append((name, fqn, int(dtype[0]), int(size[0])))
        return out

    def constant_kinds(self):
        """[(from_folded, ConstantType)] per constant (1 Parameter, 2 Buffer, 3 TensorConstant, 4 FoldedConstant)."""
        n = self._count(self.lib.AOTInductorModelContainerGetNumConstants, "GetNumConstants")
        out = []
        for i in range(n):
            folded, kind = ffi.new("bool*"), ffi.new("int32_t*")
            check(self.lib, self.lib.AOTInductorModelContainerGetConstantFromFolded(self.handle, i, folded),
                  "GetConstantFromFolded")
            check(self.lib, self.lib.AOTInductorModelContainerGetConstantType(self.handle, i, kind), "GetConstantType")
            out.append((bool(folded[0]), int(kind[0])))
        return out

    def constant_tensors(self):
        """{original FQN: raw AtenTensorHandle (int)} of the constants in use. The handles are the
        container's: borrow them only until the constants change."""
        entries, n = ffi.new("const AOTInductorConstantMapEntry**"), ffi.new("size_t*")
        check(self.lib, self.lib.AOTInductorModelContainerExtractConstantsMapEntries(self.handle, entries, n, False),
              "ExtractConstantsMapEntries")
        return {ffi.string(entries[0][i].name).decode(): int(ffi.cast("uintptr_t", entries[0][i].handle))
                for i in range(n[0])}

    def update_constants(self, pairs):
        """[(constant name, raw AtenTensorHandle)]: copies each tensor's storage into the active constant
        blob, in place (no inactive buffer, no swap); the caller keeps its handles."""
        entries = ffi.new("AOTInductorConstantMapEntry[]", max(len(pairs), 1))
        names = [ffi.new("char[]", name.encode()) for name, _ in pairs]  # alive until the call returns
        for entry, cname, (_, handle) in zip(entries, names, pairs):
            entry.name = cname
            entry.handle = ffi.cast("AtenTensorHandleRaw", handle)
        code = self.lib.AOTInductorModelContainerUpdateConstantBufferPairs(self.handle, entries, len(pairs), False,
                                                                           False)
        check(self.lib, code, "updating the constants")

    def run(self, input_handles):
        """Runs once. `input_handles` (raw AtenTensorHandles, as ints) are stolen, success or not; returns
        the raw output handles, which the caller owns and must delete."""
        assert len(input_handles) == self.num_inputs  # a size mismatch would return before stealing them
        ins = ffi.new("AtenTensorHandleRaw[]", [ffi.cast("void*", h) for h in input_handles] or [ffi.NULL])
        outs = ffi.new("AtenTensorHandleRaw[]", max(self.num_outputs, 1))
        code = self.lib.AOTInductorModelContainerRun(self.handle, ins, self.num_inputs, outs, self.num_outputs,
                                                     ffi.NULL, ffi.NULL)
        # On failure the outputs were never handed over (they are released only at the end of a
        # successful run), so there is nothing of ours to delete.
        check(self.lib, code, "running the model")
        return [int(ffi.cast("uintptr_t", outs[i])) for i in range(self.num_outputs)]

    def close(self):
        if getattr(self, "handle", None) is not None:
            self._delete(self.handle)
            self.handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
