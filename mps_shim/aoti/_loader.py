"""mps_shim.aoti.load: run an AOTInductor model (a model.so, or a cpp-only .pt2 package) on mps_shim.

Ownership across one call of a Model:
- each input gets a fresh AtenTensorHandle that borrows the caller's memory
  (numpy arrays) or aliases the caller's mps_shim.Tensor (new_tensor_handle);
  the generated code indexes inputs with the (contiguous) strides it was
  exported with, so a strided input is first copied to that layout;
  the container steals these handles, so Python never deletes them. The
  arrays they borrow are held until the run returns.
- the container hands back new output handles, which we own: each output is
  copied into a fresh numpy array and its handle deleted at once, so a result
  never aliases memory the model reuses (or an input, or a constant).
"""
import os

import numpy as np

from .. import _native, errors
from . import _container, _metadata, _package, _weights

_ffi, _lib = _native.ffi, _native.lib

# c10 dtype codes <-> numpy dtype names (bfloat16 through ml_dtypes, when installed).
_CODE_NAMES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
               7: "float64", 11: "bool", 15: "bfloat16", 27: "uint16", 28: "uint32", 29: "uint64"}
_NAME_CODES = {v: k for k, v in _CODE_NAMES.items()}
_MPS = 13


def _numpy_dtype(name):
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("[mps_shim.aoti] the model returns bfloat16: pip install ml_dtypes to receive it as "
                            "ml_dtypes.bfloat16 arrays") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _check(code):
    errors.check(code)


def _raise_pending(cause=None):
    """Raises the runtime's pending failure (typed: CompileError, OpError...), if there is one.

    Generated code ignores the shim's return codes, so a kernel that did not
    compile or a dispatch that was refused leaves only this record. When the
    model itself failed (an ATen op's code is checked, and the container
    returns 1 with AOTInductor's "API call failed at line N"), the runtime's
    record says why, so it is raised instead, from `cause`.
    """
    try:
        errors.raise_pending()
    except errors.MpsShimError as exc:
        if cause is None:
            raise
        raise exc from cause


class Model:
    """A loaded AOTInductor model. Call it with numpy arrays (or mps_shim.Tensors); get numpy arrays back."""

    def __init__(self, so_path, metadata=None, source=None):
        self.path = so_path
        self.source = source or so_path
        self.metadata = metadata
        self.weights = "linked into the model.so"  # where the weights came from (aoti info shows it)
        self._lib = _container.open_model(so_path)
        self._container = _container.Container(self._lib, so_path)
        if metadata is not None and len(metadata.get("inputs", [])) != self._container.num_inputs:
            raise _container.ModelLoadError(
                f"[mps_shim.aoti] {self.source}: the metadata lists {len(metadata['inputs'])} input(s) but the "
                f"model takes {self._container.num_inputs}; the metadata belongs to another model")

    @property
    def num_inputs(self):
        return self._container.num_inputs

    @property
    def num_outputs(self):
        return self._container.num_outputs

    @property
    def inputs(self):
        """[{name, dtype, shape}] from the metadata, or names only for a bare model.so."""
        if self.metadata is not None:
            return self.metadata["inputs"]
        return [{"name": n, "dtype": None, "shape": None} for n in self._container.input_names()]

    @property
    def outputs(self):
        if self.metadata is not None:
            return self.metadata["outputs"]
        return [{"name": n, "dtype": None, "shape": None} for n in self._container.output_names()]

    def constants(self):
        """[(name, original name, dtype, bytes)] of the weights the model holds."""
        return [(n, fqn, _CODE_NAMES.get(code, str(code)), size) for n, fqn, code, size in self._container.constants()]

    def __call__(self, *inputs, copy=True):
        """Runs the model once. Inputs: numpy arrays, mps_shim.Tensors, or anything with __dlpack__ (torch
        CPU tensors...), all taken without a copy when contiguous. Outputs: fresh numpy arrays, or with
        copy=False the model's own output tensors as mps_shim.Tensors (no copy; `torch.from_dlpack(t)` or
        `np.from_dlpack(t)` views them). An output that is a model weight or an input itself shares that memory.
        """
        from ..tensor import Tensor

        inputs = tuple(Tensor.from_dlpack(v) if _is_dlpack_producer(v) else v for v in inputs)
        if len(inputs) != self.num_inputs:
            names = ", ".join(_metadata.describe(t) if t["dtype"] else t["name"] for t in self.inputs)
            raise _metadata.InputError(f"the model takes {self.num_inputs} input(s) ({names}), got {len(inputs)}")
        described = []
        for i, value in enumerate(inputs):
            if isinstance(value, Tensor):
                described.append((_CODE_NAMES.get(value.dtype_code, str(value.dtype_code)), value.shape))
            elif isinstance(value, np.ndarray):
                described.append((_metadata.numpy_dtype_name(value.dtype), value.shape))
            else:
                raise TypeError(f"input {i}: expected a numpy array, an mps_shim.Tensor or a __dlpack__ tensor, "
                                f"got {type(value).__name__}")
        if self.metadata is not None:
            _metadata.check_inputs(self.metadata, described)
        handles, keep = [], []
        try:
            for i, value in enumerate(inputs):
                handle, held = _input_handle(value, i)
                handles.append(handle)
                keep.append(held)
        except BaseException:
            for h in handles:  # not handed over yet: still ours
                _lib.aoti_torch_delete_tensor_object(_ffi.cast("AtenTensorHandle", h))
            raise
        try:
            outputs = self._container.run(handles)  # steals `handles`
        except RuntimeError as failed:
            _raise_pending(failed)
            raise
        try:
            from .. import synchronize

            synchronize()  # the outputs are complete after this
            _raise_pending()
            if copy:
                results = [_take_output(h) for h in outputs]
            else:  # the Tensors own the handles from here on
                results, outputs = [Tensor(_ffi.cast("AtenTensorHandle", h)) for h in outputs], []
        finally:
            for h in outputs:
                if h:
                    _lib.aoti_torch_delete_tensor_object(_ffi.cast("AtenTensorHandle", h))
        del keep
        return results[0] if len(results) == 1 else tuple(results)

    def update_constants(self, mapping):
        """Replaces weights of the loaded model: {constant name or original FQN: numpy array or mps_shim.Tensor}.

        The names are those of constants() (e.g. "fc1_weight" or "fc1.weight").
        Every value is checked (known name, same dtype, same shape) before
        anything changes, so a bad mapping leaves the model as it was. The
        container copies each value into its own constant blob
        (UpdateConstantBuffer -> aoti_torch_mps_copy_buffer), which only reads
        from the start of a libmps_shim allocation: values are first copied
        into a fresh tensor in the constant's own layout, and the caller's
        arrays are never referenced afterwards.
        """
        from .. import synchronize

        staged = [(name, _staged_constant(value, current, name if key == name else f"{key} ({name})"))
                  for key, name, value, current in self._resolve_constants(mapping)]
        synchronize()  # no run may still read the blob we overwrite
        self._submit_constants(staged)

    def _load_package_weights(self, weights, wrapper_source):
        """Fills the container's constants from a package's weight files (_weights explains the layout)."""
        from .. import synchronize

        staged = _weights.stage(weights, self._container.constants(), self._container.constant_kinds(),
                                _weights.constant_layouts(wrapper_source), _CODE_NAMES)
        synchronize()
        self._submit_constants(staged)
        self.weights = weights.describe()

    def _submit_constants(self, staged):
        """Copies [(constant name, staged Tensor)] into the container's active constants."""
        try:
            self._container.update_constants([(name, int(_ffi.cast("uintptr_t", t._handle))) for name, t in staged])
        except RuntimeError as failed:
            _raise_pending(failed)
            raise
        _raise_pending()  # the container ignores copy_buffer's return code

    def _resolve_constants(self, mapping):
        """[(key, constant name, value, the constant's current tensor)]; ConstantError for unknown keys."""
        if not hasattr(mapping, "items"):
            raise TypeError(f"update_constants takes a mapping of name -> array, got {type(mapping).__name__}")
        by_name = {name: fqn for name, fqn, _, _ in self._container.constants()}
        by_fqn = {fqn: name for name, fqn in by_name.items()}
        tensors = self._container.constant_tensors()  # keyed by FQN
        out, seen = [], {}
        for key, value in mapping.items():
            name = key if key in by_name else by_fqn.get(key)
            if name is None or by_name[name] not in tensors:
                known = ", ".join(sorted(by_name)) or "none"
                raise ConstantError(f"[mps_shim.aoti] {self.source}: no constant named {key!r} (constants: {known})")
            if name in seen:
                raise ConstantError(f"[mps_shim.aoti] {key!r} and {seen[name]!r} both name constant {name!r}")
            seen[name] = key
            out.append((key, name, value, tensors[by_name[name]]))
        return out

    def close(self):
        """Deletes the model's container (its weights and buffers). The model.so stays mapped."""
        self._container.close()

    def __repr__(self):
        ins = ", ".join(_metadata.describe(t) if t["dtype"] else t["name"] for t in self.inputs)
        return f"<mps_shim.aoti.Model {self.source} ({ins})>"


class ConstantError(ValueError):
    """update_constants was given an unknown constant, or a value whose dtype or shape does not match."""


def _tensor_layout(raw):
    """(dtype code, shape, strides) of a tensor handle we only borrow."""
    handle = _ffi.cast("AtenTensorHandle", raw)

    def get(fn, ctype):
        out = _ffi.new(ctype + "*")
        _check(fn(handle, out))
        return out[0]

    ndim = get(_lib.aoti_torch_get_dim, "int64_t")
    sizes, strides = get(_lib.aoti_torch_get_sizes, "int64_t*"), get(_lib.aoti_torch_get_strides, "int64_t*")
    return (get(_lib.aoti_torch_get_dtype, "int32_t"), tuple(sizes[i] for i in range(ndim)),
            tuple(strides[i] for i in range(ndim)))


def _data_address(raw):
    out = _ffi.new("void**")
    _check(_lib.aoti_torch_get_data_ptr(_ffi.cast("AtenTensorHandle", raw), out))
    return int(_ffi.cast("uintptr_t", out[0]))


def _staged_constant(value, current, where):
    """A new library-owned mps tensor holding `value`, in the layout of the constant it replaces.

    Why a new tensor: the container copies a tensor's whole storage, from its
    start, with aoti_torch_mps_copy_buffer, which accepts only the base of an
    allocation of ours; and the strides it keeps are the ones we pass.
    """
    from ..tensor import Tensor, as_tensor

    code, shape, strides = _tensor_layout(current)
    if isinstance(value, Tensor):
        got_code, got_shape = value.dtype_code, value.shape
    elif isinstance(value, np.ndarray):
        got_name = _metadata.numpy_dtype_name(value.dtype)
        got_code, got_shape = _NAME_CODES.get(got_name, got_name), value.shape
    else:
        raise TypeError(f"[mps_shim.aoti] constant {where}: expected a numpy array or mps_shim.Tensor, "
                        f"got {type(value).__name__}")
    if got_code != code:
        raise ConstantError(f"[mps_shim.aoti] constant {where}: expected dtype {_CODE_NAMES.get(code, code)}, got "
                            f"{_CODE_NAMES.get(got_code, got_code)}")
    if tuple(got_shape) != shape:
        raise ConstantError(f"[mps_shim.aoti] constant {where}: expected shape {shape}, got {tuple(got_shape)}")
    staged = Tensor.empty(shape, _CODE_NAMES[code], strides=strides)
    if staged.numel:
        staged.copy_(value if isinstance(value, Tensor) else as_tensor(np.ascontiguousarray(value)))
    return staged


def _is_dlpack_producer(value):
    from ..tensor import Tensor

    return hasattr(value, "__dlpack__") and not isinstance(value, (np.ndarray, Tensor))


def _input_handle(value, index):
    """(raw handle the model may steal, object to keep alive until the run ends)."""
    from ..tensor import Tensor, device_memory_is_host

    out = _ffi.new("AtenTensorHandle*")
    if isinstance(value, Tensor):
        if value.strides != _contiguous_strides(value.shape):
            value = value.clone()
        _check(_lib.aoti_torch_new_tensor_handle(value._handle, out))
        return int(_ffi.cast("uintptr_t", out[0])), value
    array = value if value.flags.c_contiguous else np.array(value, order="C")  # 0-d stays 0-d
    name = _metadata.numpy_dtype_name(array.dtype)
    if name not in _NAME_CODES:
        raise TypeError(f"input {index}: dtype {array.dtype} has no mps_shim equivalent")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not device_memory_is_host():  # a GPU's memory: the model reads a device copy
        copy = Tensor.from_numpy(array)
        _check(_lib.aoti_torch_new_tensor_handle(copy._handle, out))
        return int(_ffi.cast("uintptr_t", out[0])), copy
    itemsize = array.dtype.itemsize
    data = array.__array_interface__["data"][0] if array.size else 0
    sizes = _ffi.new("int64_t[]", list(array.shape) or [0])
    strides = _ffi.new("int64_t[]", [s // itemsize for s in array.strides] or [0])
    _check(_lib.aoti_torch_create_tensor_from_blob(_ffi.cast("void*", data), array.ndim, sizes, strides, 0,
                                                   _NAME_CODES[name], _MPS, 0, out))
    return int(_ffi.cast("uintptr_t", out[0])), array


def _contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _take_output(raw):
    """A numpy copy of an output tensor (the handle stays ours to delete)."""
    code, shape, strides = _tensor_layout(raw)
    dtype = _numpy_dtype(_CODE_NAMES[code])
    result = np.empty(shape, dtype)
    if result.size == 0:
        return result
    from ..tensor import device_memory_is_host

    data = _data_address(raw)
    span = 1 + sum((n - 1) * s for n, s in zip(shape, strides))  # elements from the first to the last
    if device_memory_is_host():
        src = np.frombuffer(_ffi.buffer(_ffi.cast("char*", data), span * dtype.itemsize), dtype=dtype)
    else:  # a GPU's memory (the copy waits for the model's kernels)
        src = np.empty(span, dtype)
        _check(_lib.mps_shim_copy_from_device(_ffi.from_buffer(src), _ffi.cast("void*", data), src.nbytes))
    view = np.lib.stride_tricks.as_strided(src, shape, tuple(s * dtype.itemsize for s in strides))
    np.copyto(result, view)
    return result


def load(path):
    """Loads a model.so (with its model.so.json if present) or a cpp-only .pt2 package (built and cached;
    weights kept as files in the package are loaded into the model's container)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"[mps_shim.aoti] no such model: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"\x7fELF":
        return Model(path, _metadata.read_sidecar(path))
    if magic[:2] == b"PK":
        sources, meta = _package.read(path)
        model = Model(_package.build_model_so(sources), meta, source=path)
        if sources["weights_config"] is not None:  # weights kept outside the .so: into the container now
            model._load_package_weights(_weights.PackageWeights(sources["weights_config"], sources["weight_files"],
                                                                path), sources["wrapper"])
        return model
    raise ValueError(f"[mps_shim.aoti] {path}: neither a model.so (ELF) nor a .pt2 package (zip)")
