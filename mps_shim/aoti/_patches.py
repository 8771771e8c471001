"""What a CPU-only torch 2.13 needs to compile a model with AOTInductor for "mps".

Everything here is undone when the `mps_export_environment()` block ends,
normally or not: exporting leaves torch's global state as it found it.

- The model's parameters and buffers, and the example inputs, become
  FakeTensors on "mps" in one FakeTensorMode (`MpsFakes`). Fakes have no data,
  so `RealData` remembers, per fake storage, the real CPU tensor it stands for;
  the places where AOTInductor reads constant values (serialising the weights
  blob, inlining small 1-D constants through `tolist()`, 0-d constants through
  `item()`, de-duplicating constants by storage, grouping the weights kept
  outside the .so into files by storage) read the real data instead.
- torch's Python bindings open a DeviceGuard for "mps": a no-op one (_guard).
- Inductor asks for the GPU's core count (reduction-split heuristics): a
  constant, `CORE_COUNT`.
- Pattern initialisation (`joint_graph.lazy_init`) and constant folding run
  real tensors on the input device: they run on the CPU instead.
- Compiling the Metal kernels (`compile_mps_shaders`) would call
  `torch.mps.compile_shader`: kernels are not compiled at export (the runtime
  compiles them when the model first runs).
- `MetalKernel.headers` is a class-level set that every kernel adds to, so
  headers leak from kernel to kernel and from compile to compile: each kernel
  gets its own set.
- AOTInductor clones buffers to keep their initial values: clones of fakes
  get clones of the real data.
- The C++ wrapper's GPU is "mps", as on a Mac (`get_gpu_type()` answers
  "cuda" when no GPU exists).
- `scaled_dot_product_attention` on "mps" becomes
  `aten._scaled_dot_product_attention_math_for_mps`, as on a Mac when dropout
  is 0 and no gradient is needed.
"""
import contextlib

import torch

from ._guard import mps_device_guard

# The GPU core count Inductor sees. 10 is an M1 Pro/M2's; it only steers how reductions are split.
CORE_COUNT = 10
MPS = torch.device("mps")
CPU = torch.device("cpu")


class RealData:
    """Maps FakeTensors (by their storage) to the real CPU tensors they stand for."""

    def __init__(self):
        self._owners = {}  # fake storage id -> (fake, real tensor laid out like the fake storage)

    @staticmethod
    def _key(t):
        return t.untyped_storage()._cdata

    def add(self, fake, real):
        self._owners[self._key(fake)] = (fake, real)

    def real_of(self, t):
        """The real CPU tensor behind `t` (a view with t's size, stride and offset), or None."""
        from torch._subclasses.fake_tensor import FakeTensor
        from torch.utils._python_dispatch import _disable_current_modes

        if not isinstance(t, FakeTensor):
            return t
        entry = self._owners.get(self._key(t))
        if entry is None:
            return None
        with _disable_current_modes():
            return entry[1].as_strided(t.size(), t.stride(), t.storage_offset())

    def require(self, t, what):
        real = self.real_of(t)
        if real is None:
            raise RuntimeError(f"[mps_shim.aoti.export] {what} has no real value: it is a tensor created while "
                               "tracing, not a parameter or buffer of the model; register it as a buffer")
        return real


def make_fake_mode():
    """A FakeTensorMode whose fakes of real tensors live on "mps" (it tracks fakes, as export needs)."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    class MpsFakes(FakeTensorMode):
        def __init__(self):
            super().__init__(shape_env=ShapeEnv(tracked_fakes=[]), allow_non_fake_inputs=True, export=True)
            self.real_data = RealData()
            self._moved = {}

        def from_tensor(self, tensor, *args, **kwargs):
            # Example inputs arrive here through export's fakify (with their symbolic dims); the
            # fake keeps those dims and moves to "mps".
            fake = super().from_tensor(tensor, *args, **kwargs)
            if isinstance(tensor, FakeTensor) or fake.device.type != "cpu" or tensor.device.type != "cpu":
                return fake
            key = id(tensor)
            if key not in self._moved:
                with self:
                    self._moved[key] = (tensor, fake.to(MPS))
            return self._moved[key][1]

        def fake_of(self, tensor):
            """The fake that stands for example input `tensor` in the traced graph."""
            return self._moved[id(tensor)][1]

        def constant_fake(self, real):
            """A fake on "mps" for a parameter or buffer, remembered with its real data."""
            real = real.detach()
            if real.device != CPU:
                raise ValueError(f"[mps_shim.aoti.export] model tensors must be on the CPU, found one on {real.device}")
            if real.storage_offset() != 0 or real.untyped_storage().nbytes() != real.numel() * real.element_size():
                real = real.contiguous().clone()
            with self:
                fake = torch.empty_strided(real.size(), real.stride(), dtype=real.dtype, device=MPS)
            self.real_data.add(fake, real)
            return fake

    return MpsFakes()


class _Patcher:
    def __init__(self):
        self._undo = []

    def set(self, obj, name, value):
        had = name in vars(obj) if isinstance(obj, type) else hasattr(obj, name)
        old = vars(obj).get(name) if isinstance(obj, type) else getattr(obj, name, None)
        setattr(obj, name, value)
        self._undo.append((obj, name, had, old))

    def undo(self):
        while self._undo:
            obj, name, had, old = self._undo.pop()
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)


def _sdpa_as_on_mac(original):
    """scaled_dot_product_attention that, on "mps", calls the op a Mac's torch calls (dropout 0, no grad)."""
    math_for_mps = torch.ops.aten._scaled_dot_product_attention_math_for_mps.default

    def scaled_dot_product_attention(query, *args, **kwargs):
        if isinstance(query, torch.Tensor) and query.device.type == "mps":
            return _sdpa_math_for_mps(math_for_mps, query, *args, **kwargs)
        return original(query, *args, **kwargs)

    return scaled_dot_product_attention


def _sdpa_math_for_mps(op, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                       enable_gqa=False):
    if dropout_p != 0.0:
        raise ValueError("[mps_shim.aoti.export] scaled_dot_product_attention with dropout_p != 0 cannot be "
                         "exported for mps; put the model in eval() mode (dropout 0)")
    return op(query, key, value, attn_mask, 0.0, is_causal, None, scale=scale, enable_gqa=enable_gqa)[0]


def _conv_memory_format_as_on_mac(original):
    """Convolution's output layout on "mps" as a Mac's torch picks it (ATen's mps_conv_use_channels_last):
    channels-last when the input or the weight has exactly channels-last strides. A CPU-only torch picks
    no MPS backend and would answer "contiguous", and the generated code reads the output with the strides
    chosen here; mps_shim's convolution follows the same rule (csrc/ops/convolution.cpp)."""

    def exactly_channels_last(t):
        if t.dim() not in (4, 5):
            return False
        sizes, strides, step = list(t.shape), [0] * t.dim(), 1
        for d in [1] + list(range(t.dim() - 1, 1, -1)) + [0]:
            strides[d] = step
            step *= max(int(sizes[d]), 1)
        return list(t.stride()) == strides and not t.is_contiguous()

    def determine(input_, weight, backend):
        if input_.device.type != "mps":
            return original(input_, weight, backend)
        if exactly_channels_last(input_) or exactly_channels_last(weight):
            return torch.channels_last_3d if weight.dim() == 5 else torch.channels_last
        return torch.contiguous_format

    return determine


@contextlib.contextmanager
def mps_export_environment(fake_mode):
    """Patches torch so that AOTInductor compiles for "mps" with `fake_mode`'s fakes; undoes it all after."""
    import torch._inductor.codecache as codecache
    import torch._inductor.codegen.cpp_wrapper_gpu as cpp_wrapper_gpu
    import torch._inductor.codegen.mps as mps_codegen
    import torch._inductor.codegen.mps_device_op_overrides  # noqa: F401  registers "mps" device op overrides
    import torch._inductor.compile_fx as compile_fx
    import torch._inductor.constant_folding as constant_folding
    import torch._inductor.fx_passes.joint_graph as joint_graph
    import torch._inductor.graph as graph
    import torch._inductor.runtime.runtime_utils as runtime_utils
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.utils._ordered_set import OrderedSet
    from torch.utils._python_dispatch import _disable_current_modes

    real_data = fake_mode.real_data
    patch = _Patcher()
    serialising = [False]

    def core_count():
        return CORE_COUNT

    lazy_init = joint_graph.lazy_init

    def lazy_init_on_cpu(input_device=None):
        return lazy_init(CPU)

    def compile_mps_shaders(kernels):
        # Kernels compile when the model first runs, in the mps_shim runtime.
        return {name: _UncompiledKernel(name) for name, _, _ in kernels}

    run_node = constant_folding.ConstantFolder.run_node

    def run_node_on_cpu(self, node):
        # Folding computes real values: a factory call on "mps" computes on the CPU instead.
        device = node.kwargs.get("device") if node.op == "call_function" else None
        if device is not None and torch.device(device).type == "mps":
            node.kwargs = {**node.kwargs, "device": CPU}
            try:
                return run_node(self, node)
            finally:
                node.kwargs = {**node.kwargs, "device": device}
        return run_node(self, node)

    original_value = graph.GraphLowering.get_original_value_of_constant

    def original_value_with_data(self, name):
        value = original_value(self, name)
        return real_data.require(value, f"constant {name!r}") if serialising[0] else value

    aot_compile = codecache.AotCodeCompiler.compile.__func__

    def aot_compile_with_data(cls, *args, **kwargs):
        serialising[0] = True
        try:
            return aot_compile(cls, *args, **kwargs)
        finally:
            serialising[0] = False

    def same_tensor(data, value):
        return (data.size() == value.size() and data.stride() == value.stride() and data.dtype == value.dtype
                and data.device == value.device and data.storage_offset() == value.storage_offset()
                and data.untyped_storage()._cdata == value.untyped_storage()._cdata)

    clone_preserve_strides = compile_fx.clone_preserve_strides

    def clone_with_data(t):
        # AOTInductor keeps a clone of each buffer as its initial value: the clone's data is a clone
        # of the real buffer.
        clone = clone_preserve_strides(t)
        real = real_data.real_of(t)
        if real is not None and real is not t:
            with _disable_current_modes():
                real_data.add(clone, clone_preserve_strides(real))
        return clone

    tolist = torch.Tensor.tolist
    item = torch.Tensor.item

    def fake_tolist(self):
        real = real_data.real_of(self)
        return tolist(real if real is not None else self)

    def fake_item(self):
        real = real_data.real_of(self)
        return item(real if real is not None else self)

    tensor_properties = codecache.TensorProperties

    def properties_of_real(t):
        # Weights kept outside the .so (pickle_weights) are grouped into files by storage address:
        # fakes have none (all would share one file), so describe the real tensor, which has the
        # fake's size, stride and offset.
        real = real_data.real_of(t)
        return tensor_properties(real if real is not None else t)

    kernel_init = mps_codegen.MetalKernel.__init__

    def kernel_init_own_headers(self, *args, **kwargs):
        self.headers = OrderedSet(["utils"])
        kernel_init(self, *args, **kwargs)

    sdpa = _sdpa_as_on_mac(torch.nn.functional.scaled_dot_product_attention)
    try:
        with mps_device_guard():
            patch.set(torch.backends.mps, "get_core_count", core_count)
            patch.set(joint_graph, "lazy_init", lazy_init_on_cpu)
            patch.set(constant_folding.ConstantFolder, "run_node", run_node_on_cpu)
            patch.set(runtime_utils, "compile_mps_shaders", compile_mps_shaders)
            patch.set(cpp_wrapper_gpu, "get_gpu_type", lambda: "mps")
            patch.set(graph.GraphLowering, "get_original_value_of_constant", original_value_with_data)
            patch.set(codecache.AotCodeCompiler, "compile", classmethod(aot_compile_with_data))
            patch.set(graph, "is_same_tensor", same_tensor)
            patch.set(compile_fx, "clone_preserve_strides", clone_with_data)
            patch.set(FakeTensor, "tolist", fake_tolist)
            patch.set(FakeTensor, "item", fake_item)
            patch.set(mps_codegen.MetalKernel, "__init__", kernel_init_own_headers)
            patch.set(codecache, "TensorProperties", properties_of_real)
            # Python callers (nn.MultiheadAttention included) look the function up in these modules.
            patch.set(torch.nn.functional, "scaled_dot_product_attention", sdpa)
            patch.set(torch._C._nn, "scaled_dot_product_attention", sdpa)
            patch.set(torch._C, "_conv_determine_backend_memory_format",
                      _conv_memory_format_as_on_mac(torch._C._conv_determine_backend_memory_format))
            yield
    finally:
        patch.undo()


class _UncompiledKernel:
    """Stands for a Metal kernel in Inductor's Python wrapper, which export never runs."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"[mps_shim.aoti.export] Metal kernel {self.name} was generated for a model.so; "
                           "it does not run in Python")
