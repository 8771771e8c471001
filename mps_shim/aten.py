"""ATen fallback ops from Python: `mps_shim.aten.mm_out(out, a, b)`, `mps_shim.aten.addmv(s, m, v, 1.0, 1.0)`.

Each name is an `aoti_torch_mps_<name>` function of libmps_shim (mps_shim_aten.h), called with the arguments
torch's c_shim_mps.h takes, in Python form, derived from the C signature:

- a tensor (`AtenTensorHandle`): an `mps_shim.Tensor` or a numpy array (wrapped without a copy; where
  device memory is a GPU's, copied there and back after the op);
- an optional tensor or scalar (`AtenTensorHandle*`, `double*`, `int32_t*`, `int64_t*`): the value or None;
- a string (`const char*`) or an optional string (`const char**`): a str, or None;
- a list (`const int64_t*` followed by its length): a sequence of ints;
- a list of tensors, or of optional tensors: a sequence of tensors (or None);
- the trailing result handles (`ret0`, `ret1`, ...) are not passed: they come back as Tensors
  (one, or a tuple); `_out` ops return None and write their `out` argument.

Failures raise mps_shim.MpsShimError subclasses with the op's message.
"""
from ._native import ffi, lib
from .errors import check
from .tensor import Tensor, as_tensor

import os
import re

from ._paths import include_dir

_PREFIX = "aoti_torch_mps_"
_OPTIONAL_SCALARS = {"double*": "double[1]", "int32_t*": "int32_t[1]", "int64_t*": "int64_t[1]"}


def _signatures():
    """{op: [(C type, parameter name), ...]} from mps_shim_aten.h: cffi drops `const` and names, which tell
    a list (`const T*` + `name_len_`) from an optional value (`T*`) and results (`retN`) from inputs."""
    with open(os.path.join(include_dir(), "mps_shim_aten.h"), encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    out = {}
    for name, params in re.findall(r"AOTITorchError\s+" + _PREFIX + r"(\w+)\s*\(([^)]*)\)", text):
        parsed = []
        for p in params.split(","):
            m = re.match(r"\s*(.*?)\s*(\w+)\s*$", p.replace("\n", " "))
            parsed.append((re.sub(r"\s*\*", "*", m.group(1)), m.group(2)))
        out[name] = parsed
    return out


_SIGNATURES = None


class _Call:
    def __init__(self, name, fn, params):
        self.name, self.fn = name, fn
        self.inputs = [p for p in params if not re.fullmatch(r"ret\d+", p[1])]
        self.n_rets = len(params) - len(self.inputs)
        self.n_python = sum(1 for _, n in self.inputs if not n.endswith("_len_"))

    def __call__(self, *args):
        if len(args) != self.n_python:
            raise TypeError(f"aten.{self.name} takes {self.n_python} arguments, got {len(args)}")
        keep, c_args, it = [], [], iter(args)
        i = 0
        while i < len(self.inputs):
            p = self.inputs[i][0]
            has_len = i + 1 < len(self.inputs) and self.inputs[i + 1][1].endswith("_len_")
            value = next(it)
            if p == "AtenTensorHandle":
                t = as_tensor(value)
                keep.append(t)
                c_args.append(t._handle)
            elif p == "AtenTensorHandle*":
                if value is None:
                    c_args.append(ffi.NULL)
                else:
                    t = as_tensor(value)
                    keep.append(t)
                    c_args.append(ffi.new("AtenTensorHandle[1]", [t._handle]))
            elif has_len:
                c_args += self._sequence(p, value, keep)
                i += 1
            elif p in _OPTIONAL_SCALARS:
                c_args.append(ffi.NULL if value is None else ffi.new(_OPTIONAL_SCALARS[p], [value]))
            elif p in ("const char*", "char*"):
                c_args.append(ffi.new("char[]", value.encode()) if value is not None else ffi.NULL)
            elif p in ("const char**", "char**"):  # an optional string
                if value is None:
                    c_args.append(ffi.NULL)
                else:
                    text = ffi.new("char[]", value.encode())
                    keep.append(text)
                    c_args.append(ffi.new("char*[1]", [text]))
            else:
                c_args.append(value)
            i += 1
        rets = [ffi.new("AtenTensorHandle*") for _ in range(self.n_rets)]
        check(self.fn(*c_args, *rets))
        for t in keep:  # numpy arguments copied to a GPU's memory get the results back
            if isinstance(t, Tensor):
                t.sync_to_host()
        results = tuple(Tensor(r[0]) for r in rets)
        return None if not results else results[0] if len(results) == 1 else results

    @staticmethod
    def _sequence(ctype, values, keep):
        values = list(values)
        if ctype == "const AtenTensorHandle*":
            tensors = [as_tensor(v) for v in values]
            keep += tensors
            return [ffi.new("AtenTensorHandle[]", [t._handle for t in tensors]) if tensors else ffi.NULL, len(values)]
        if ctype == "const AtenTensorHandle**":
            slots = []
            for v in values:
                if v is None:
                    slots.append(ffi.NULL)
                else:
                    t = as_tensor(v)
                    keep.append(t)
                    slot = ffi.new("AtenTensorHandle[1]", [t._handle])
                    keep.append(slot)
                    slots.append(slot)
            return [ffi.new("AtenTensorHandle*[]", slots) if slots else ffi.NULL, len(values)]
        base = ctype[len("const "):-1]
        return [ffi.new(f"{base}[]", values) if values else ffi.NULL, len(values)]


def __getattr__(name):
    global _SIGNATURES
    if _SIGNATURES is None:
        _SIGNATURES = _signatures()
    if name not in _SIGNATURES or not hasattr(lib, _PREFIX + name):
        raise AttributeError(f"libmps_shim has no ATen op aoti_torch_mps_{name}")
    return _Call(name, getattr(lib, _PREFIX + name), _SIGNATURES[name])


def available():
    """Names of the ATen fallback ops this build exports."""
    global _SIGNATURES
    if _SIGNATURES is None:
        _SIGNATURES = _signatures()
    return sorted(_SIGNATURES)


def manual_seed(seed):
    """Seeds the stream randint_low_out draws from (mps_shim_manual_seed); every process starts from
    the fixed seed 67280421310721. The numbers are deterministic per seed but are not torch's own."""
    check(lib.mps_shim_manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF))
