"""compile_shader(): kernels as Python callables, in the manner of torch.mps.compile_shader.

    lib = mps_shim.compile_shader(source)
    lib.add(out, a, b)                      # threads default to out.size
    lib.scale(out, x, 2.5, threads=n, group_size=64)

Arguments bind to the kernel's buffer indices in increasing order: numpy arrays
and Tensors as buffers (arrays without a copy, so outputs land in them; torch CPU
tensors and other DLPack producers too),
Python ints as int64, Python floats as float32, numpy scalars as their own type.
"""
import numpy as np

from .library import ShaderLibrary
from .tensor import Tensor, as_tensor


class CompiledShader:
    """A compiled library whose kernels are attributes."""

    def __init__(self, source):
        self.library = ShaderLibrary(source)

    def __getattr__(self, name):
        if name.startswith("__") or name not in self.library.kernels:
            raise AttributeError(f"no kernel named {name!r}; kernels: {', '.join(self.library.kernel_names)}")
        return BoundKernel(self.library.get_kernel_function(name))

    def __dir__(self):
        return list(super().__dir__()) + self.library.kernel_names


class BoundKernel:
    def __init__(self, function):
        self.function = function
        self.bindings = sorted((p for p in function.params if p["kind"] != "thread_position"),
                               key=lambda p: p["binding"])

    def __call__(self, *args, threads=None, group_size=None):
        if len(args) != len(self.bindings):
            wanted = ", ".join(f"{p['name'] or '?'} ({p['type']})" for p in self.bindings)
            raise TypeError(f"kernel {self.function.name!r} takes {len(self.bindings)} arguments "
                            f"({wanted}), got {len(args)}")
        # torch tensors and other DLPack producers are wrapped once, without a copy
        args = [as_tensor(a) if not isinstance(a, (np.ndarray, Tensor)) and hasattr(a, "__dlpack__") else a
                for a in args]
        if threads is None:
            threads = next((a.size if isinstance(a, np.ndarray) else a.numel
                            for a in args if isinstance(a, (np.ndarray, Tensor))), None)
            if threads is None:
                raise TypeError(f"kernel {self.function.name!r}: pass threads= (no array argument to size the grid)")

        def encode(fn):
            fn.start_encoding()
            for param, value in zip(self.bindings, args):
                _bind(fn, param["binding"], value)
            fn.dispatch(threads, group_size)

        self.function.run_command_block(encode)


def _bind(fn, index, value):
    if isinstance(value, (np.ndarray, Tensor)):
        fn.set_arg_tensor(index, value)
    elif isinstance(value, (bool, int)):
        fn.set_arg_int(index, value)
    elif isinstance(value, float):
        fn.set_arg_float(index, value)
    elif isinstance(value, np.generic):
        fn.set_arg_bytes(index, value.tobytes())
    else:
        raise TypeError(f"argument {index}: cannot bind a {type(value).__name__} "
                        "(use a numpy array, Tensor, int, float or numpy scalar)")


def compile_shader(source):
    """Compiles Metal source; its kernels become callable attributes."""
    return CompiledShader(source)
