"""Weights kept outside the model.so, as files in a package (`export(..., package=True, weights_in_so=False)`).

The layout is torch 2.13's for `aot_inductor.package_constants_in_so=False`
with `package_constants_on_disk_format="pickle_weights"`:
- `<archive>/data/aotinductor/<model>/weights_config.json`: for every constant
  that is not folded, `{original FQN: [file, shape, stride, storage offset]}`;
- `<archive>/data/weights/<file>` (`weight_0`, `weight_1`...): one torch.save'd
  tensor per storage. Constants sharing a storage (tied weights) name the same
  file, each with its own view;
- the wrapper is compiled with `include_weights=false` (its container starts
  with no constant tensors at all), and the package's weights object is
  AOTInductor's one-byte placeholder, linked only to define
  `_binary_constants_bin_start/_end`.

Loading does what torch's `load_pt2(load_weights_from_disk=True)` and
`AOTIModelPackageLoader::load_constants` do: each entry's view is taken
(as_strided) from its file's storage, its FQN is mapped to the container's
constant name, and all of them go into the container through
`UpdateConstantBufferPairs`, which copies them into the container's own blob
with `aoti_torch_mps_copy_buffer` (the path of `Model.update_constants`).
Before anything is copied, each one is checked against the container's
constant (dtype, data size) and the wrapper's `constants_info_` (shape,
stride). Constants the config does not name are handled as the container's
full-update check does: folded ones are skipped; buffers, tensor constants
and parameters without data are optional (one without data gets an empty
tensor, the others a warning, and a run that reads them fails); a missing
parameter with data is an error.

torch.save files are read without torch: each is a zip holding
`<prefix>/data.pkl` (a pickle that rebuilds the tensor from a storage
reference) and `<prefix>/data/<key>` (the storage's raw little-endian bytes).
The unpickler allows only the few globals such a file uses.
"""
import collections
import io
import json
import pickle
import re
import warnings
import zipfile

import numpy as np

from ._package import WEIGHTS_CONFIG as CONFIG_NAME
from ._package import WEIGHTS_DIR, WeightsError

# Legacy typed storages, as torch.save names them -> dtype name.
_STORAGE_DTYPES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
# dtype name -> a numpy dtype with the same item size, for copying bits (bfloat16 needs no ml_dtypes).
_BITS = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": np.uint16,
         "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
         "bool": np.bool_}
# AOTInductor's ConstantType (aoti_runtime/constant_type.h).
PARAMETER, BUFFER, TENSOR_CONSTANT = 1, 2, 3
_KIND_NAMES = {0: "constant", PARAMETER: "parameter", BUFFER: "buffer", TENSOR_CONSTANT: "tensor constant",
               4: "folded constant"}


def _error(message):
    return WeightsError(f"[mps_shim.aoti] {message}")


# --- torch.save files --------------------------------------------------------------------------------

class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _StorageRef:
    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


class _SavedTensor:
    def __init__(self, storage):
        self.storage = storage


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _SavedTensor(storage)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weight file (only a saved tensor is)")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements)
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return _StorageRef(pid[1].dtype, str(pid[2]), pid[4])


def read_saved_tensor(data, where):
    """(dtype name, flat numpy array of the storage's elements, as `_BITS` types) of a torch.save'd tensor."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pickles) != 1:
                raise ValueError("no data.pkl in it")
            prefix = pickles[0][: -len("data.pkl")]
            if prefix + "byteorder" in names and z.read(prefix + "byteorder").strip() != b"little":
                raise ValueError("it was saved big-endian")
            saved = _Unpickler(io.BytesIO(z.read(pickles[0]))).load()
            if not isinstance(saved, _SavedTensor):
                raise ValueError(f"it holds a {type(saved).__name__}, not a tensor")
            ref = saved.storage
            record = f"{prefix}data/{ref.key}"
            if record not in names:
                raise ValueError(f"its storage record {record} is missing")
            raw = z.read(record)
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, EOFError, KeyError) as exc:
        raise _error(f"{where}: not a tensor saved by torch.save ({exc})") from None
    bits = np.dtype(_BITS[ref.dtype])
    if len(raw) < ref.numel * bits.itemsize:
        raise _error(f"{where}: its storage holds {len(raw)} bytes, {ref.numel} {ref.dtype} elements need "
                     f"{ref.numel * bits.itemsize}")
    return ref.dtype, np.frombuffer(raw, dtype=bits, count=ref.numel)


# --- the package's files -----------------------------------------------------------------------------

def parse_config(text, where):
    """{FQN: (file, shape, stride, offset)} of a weights_config.json; WeightsError when malformed."""
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise _error(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _error(f"{where}: expected an object {{FQN: [file, shape, stride, offset]}}")
    out = {}
    for fqn, entry in config.items():
        ok = (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str) and entry[0]
              and "/" not in entry[0] and all(isinstance(v, list) and all(type(d) is int and d >= 0 for d in v)
                                              for v in entry[1:3])
              and len(entry[1]) == len(entry[2]) and type(entry[3]) is int and entry[3] >= 0)
        if not ok:
            raise _error(f"{where}: entry {fqn!r} must be [file, shape, stride, storage offset], got {entry!r}")
        out[fqn] = (entry[0], tuple(entry[1]), tuple(entry[2]), entry[3])
    return out


def constant_layouts(wrapper_source):
    """{constant name: (shape, stride)} from the wrapper's constants_info_ (what the container is built from)."""
    fields = collections.defaultdict(dict)
    for idx, field, value in re.findall(rb"constants_info_\[(\d+)\]\.(name|shape|stride) = ([^;]*);",
                                        wrapper_source):
        fields[int(idx)][field.decode()] = value.decode().strip()
    out = {}
    for info in fields.values():
        if set(info) != {"name", "shape", "stride"}:
            continue

        def dims(text):
            return tuple(int(d) for d in text.strip("{}").split(",") if d.strip())

        out[info["name"].strip('"')] = (dims(info["shape"]), dims(info["stride"]))
    return out


class PackageWeights:
    """The weights of one model of a package: its config and the files it names (bytes)."""

    def __init__(self, config_text, files, where):
        self.where = where
        self.config = parse_config(config_text, f"{where}: {CONFIG_NAME}")
        self.files = files  # file name -> bytes, every file under data/weights/
        self._storages = {}

    def describe(self):
        used = sorted({f for f, *_ in self.config.values()})
        size = sum(len(self.files[f]) for f in used if f in self.files)
        return f"{len(used)} file(s) in the package under {WEIGHTS_DIR} ({size} bytes), loaded when the model loads"

    def storage(self, name, fqn):
        if name not in self._storages:
            if name not in self.files:
                raise _error(f"{self.where}: weight file {WEIGHTS_DIR}{name} (for {fqn}) is missing from the package")
            self._storages[name] = read_saved_tensor(self.files[name], f"{self.where}: {WEIGHTS_DIR}{name}")
        return self._storages[name]

    def view(self, fqn):
        """A numpy view (bit-typed) of the weight `fqn` and its dtype name, as the config lays it out."""
        name, shape, stride, offset = self.config[fqn]
        dtype, flat = self.storage(name, fqn)
        numel = int(np.prod(shape)) if shape else 1
        last = offset + sum((n - 1) * s for n, s in zip(shape, stride)) if numel else offset - 1
        if numel and last >= flat.size:
            raise _error(f"{self.where}: weight {fqn} (shape {shape}, stride {stride}, offset {offset}) reaches "
                         f"element {last}, but {WEIGHTS_DIR}{name} holds {flat.size}")
        if not numel:
            return dtype, np.empty(shape, flat.dtype)
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape, tuple(s * flat.itemsize for s in stride),
                                               writeable=False)
        return dtype, view


# --- into the container ------------------------------------------------------------------------------

def stage(weights, constants, kinds, layouts, dtype_names):
    """[(constant name, new mps_shim.Tensor)] for every constant the package provides, checked.

    constants: the container's [(name, FQN, dtype code, data size)]; kinds: its [(from_folded, type)];
    layouts: the wrapper's {name: (shape, stride)}; dtype_names: {dtype code: name}.
    """
    from ..tensor import Tensor

    where = weights.where
    by_fqn = {fqn: i for i, (_, fqn, _, _) in enumerate(constants)}
    unknown = [fqn for fqn in weights.config if fqn not in by_fqn]
    if unknown:
        raise _error(f"{where}: {CONFIG_NAME} names {', '.join(map(repr, unknown))}, which the model has no "
                     f"constant for (constants: {', '.join(sorted(by_fqn)) or 'none'})")
    staged, optional = [], []
    for (name, fqn, code, size), (folded, kind) in zip(constants, kinds):
        if folded:
            continue  # computed by the model itself (constant folding)
        if name not in layouts:
            raise _error(f"{where}: the wrapper does not describe constant {name} (constants_info_)")
        shape, stride = layouts[name]
        if code not in dtype_names:
            raise _error(f"{where}: constant {name} has dtype code {code}, which mps_shim does not support")
        if fqn not in weights.config:
            if size == 0 and kind in (BUFFER, TENSOR_CONSTANT, PARAMETER):
                # no data to load: an empty tensor, as the in-.so blob would give, rather than none at all
                staged.append((name, Tensor.empty(shape, dtype_names[code], strides=stride)))
                continue
            if kind in (BUFFER, TENSOR_CONSTANT):
                optional.append(f"{_KIND_NAMES[kind]} {fqn}")
                continue
            raise _error(f"{where}: the package has no weight for {_KIND_NAMES.get(kind, 'constant')} {fqn} "
                         f"(constant {name}): {CONFIG_NAME} does not name it")
        dtype, view = weights.view(fqn)
        label = fqn if fqn == name else f"{fqn} ({name})"
        if dtype != dtype_names[code]:
            raise _error(f"{where}: weight {label}: the model expects {dtype_names[code]}, "
                         f"{WEIGHTS_DIR}{weights.config[fqn][0]} holds {dtype}")
        if tuple(view.shape) != shape:
            raise _error(f"{where}: weight {label}: the model expects shape {shape}, {CONFIG_NAME} gives "
                         f"{tuple(view.shape)}")
        tensor = Tensor.empty(shape, dtype_names[code], strides=stride)
        if tensor.storage_nbytes > size:
            raise _error(f"{where}: weight {label} needs {tensor.storage_nbytes} bytes, the model's constant has "
                         f"{size}")
        if tensor.numel:
            np.copyto(tensor.numpy(bits=True), view.view(tensor.numpy(bits=True).dtype), casting="no")
        staged.append((name, tensor))
    if optional:
        # As torch's loader: only a warning (such constants may be unused), but a run that reads one fails.
        warnings.warn(f"[mps_shim.aoti] {where}: {', '.join(optional)}: not in the package's weights, the model has "
                      "no value for it", stacklevel=4)
    return staged
