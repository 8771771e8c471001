"""mps_shim.aoti.export: compile a PyTorch model with AOTInductor for "mps", on a machine without MPS.

torch.export traces the model with its parameters, buffers and inputs as
FakeTensors on "mps" (_patches explains what else a CPU-only torch needs);
AOTInductor then writes a C++-only package: the wrapper source and the weights
object (or, with weights_in_so=False, the weights as files: _weights). With
package=True that package is the result (plus our metadata inside); otherwise
we compile it ourselves with g++ (_package) into a model.so with the weights
linked in, and write the metadata beside it.
"""
import contextlib
import os
import re
import tempfile
import time

import numpy as np

from . import _build, _metadata, _package

SUPPORTED_TORCH = "2.13"


def _require_torch():
    try:
        import torch
    except ImportError:
        raise ImportError("mps_shim.aoti.export needs torch 2.13 (pip install torch==2.13.0); loading and running "
                          "models does not") from None
    version = torch.__version__.split("+")[0]
    if version.split(".")[:2] != SUPPORTED_TORCH.split("."):
        raise RuntimeError(f"mps_shim.aoti.export supports torch {SUPPORTED_TORCH}.x only, this is torch "
                           f"{torch.__version__}: AOTInductor's generated code and the patches export needs "
                           "change between versions")
    return torch


def _as_torch(torch, value, where):
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise ValueError(f"[mps_shim.aoti.export] {where}: example inputs must be CPU tensors or numpy arrays, "
                             f"got a tensor on {value.device}")
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.name == "bfloat16":  # ml_dtypes.bfloat16: same bits
            return torch.from_numpy(np.ascontiguousarray(value).view(np.uint16)).view(torch.bfloat16)
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_as_torch(torch, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return {k: _as_torch(torch, v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"[mps_shim.aoti.export] {where}: unsupported example input type {type(value).__name__}")


@contextlib.contextmanager
def _fake_parameters(model, fake_mode):
    """Replaces the model's parameters and buffers by fakes on "mps" (tied ones stay tied); restores them."""
    import torch

    fakes = {}
    swapped = []
    try:
        for module in model.modules():
            for table in (module._parameters, module._buffers):
                for name, real in list(table.items()):
                    if real is None:
                        continue
                    if id(real) not in fakes:
                        fake = fake_mode.constant_fake(real)
                        if isinstance(real, torch.nn.Parameter):
                            fake = torch.nn.Parameter(fake, requires_grad=False)
                        fakes[id(real)] = (real, fake)
                    swapped.append((table, name, real))
                    table[name] = fakes[id(real)][1]
        yield
    finally:
        for table, name, real in reversed(swapped):
            table[name] = real


def _count_constants(wrapper_source):
    # The wrapper's constructor names each constant: constants_info_[i].name = "...";
    return len(set(re.findall(rb"constants_info_\[(\d+)\]\.name", wrapper_source)))


def _package_config(weights_in_so):
    """AOTInductor's options: a cpp-only package whose weights are an object linked into the model.so or,
    with weights_in_so=False, one torch.save file per storage under data/weights/ (see _weights).

    Weights kept in files must all come from the files: Inductor otherwise inlines 1-D constants of
    at most 8 elements (biases and norms of small layers) and 0-d ones as literals in the kernels,
    where a changed file would be silently ignored. always_keep_tensor_constants keeps them constants.
    """
    if weights_in_so:
        return {"aot_inductor.package_cpp_only": True, "aot_inductor.package_constants_in_so": True}
    return {"aot_inductor.package_cpp_only": True, "aot_inductor.package_constants_in_so": False,
            "aot_inductor.package_constants_on_disk_format": "pickle_weights", "always_keep_tensor_constants": True}


def export(model, example_inputs, path, *, dynamic_shapes=None, package=False, weights_in_so=True):
    """Compiles `model` with AOTInductor for "mps" and writes a model.so (or a .pt2 package) at `path`.

    model: a torch.nn.Module on the CPU (its train/eval mode is used as is: call .eval() for inference).
    example_inputs: a tuple of numpy arrays or CPU tensors (ml_dtypes.bfloat16 arrays for bfloat16).
    dynamic_shapes: as for torch.export.export, e.g. ({0: torch.export.Dim("batch")},).
    package: False writes `path` as a model.so with the weights linked in (and `path`.json with the
    inputs and outputs); True writes an AOTInductor package made with package_cpp_only=True (C++
    sources and weights; mps_shim.aoti.load builds it).
    weights_in_so: with package=True, False keeps the weights out of the model.so, as files in the
    package (AOTInductor's package_constants_in_so=False): load() builds the code once and reads the
    weights from the package each time, so a package with new weights reuses the build.
    Returns the metadata dict (inputs, outputs, dynamic dimensions, constants, timings).
    """
    if not weights_in_so and not package:
        raise ValueError("[mps_shim.aoti.export] weights_in_so=False needs package=True: the weights are kept as "
                         "files in the package")
    torch = _require_torch()
    import torch._inductor.config as inductor_config
    from torch._guards import TracingContext, tracing

    from ._patches import make_fake_mode, mps_export_environment

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"[mps_shim.aoti.export] model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_inputs, tuple):
        example_inputs = tuple(example_inputs) if isinstance(example_inputs, list) else (example_inputs,)
    inputs = tuple(_as_torch(torch, v, f"example_inputs[{i}]") for i, v in enumerate(example_inputs))
    path = os.fspath(path)
    start = time.perf_counter()
    fake_mode = make_fake_mode()
    with tempfile.TemporaryDirectory(prefix="mps_shim_export_") as tmp:
        pt2 = os.path.join(tmp, "model.pt2")
        with mps_export_environment(fake_mode), _fake_parameters(model, fake_mode), torch.no_grad():
            with tracing(TracingContext(fake_mode)):
                ep = torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes, strict=False)
            # AOTInductor checks the recorded example inputs' devices against the graph's: show it the fakes.
            ep.example_inputs = (torch.utils._pytree.tree_map_only(torch.Tensor, fake_mode.fake_of, inputs), {})
            traced = time.perf_counter()
            with inductor_config.patch(_package_config(weights_in_so)):
                torch._inductor.aoti_compile_and_package(ep, package_path=pt2)
        generated = time.perf_counter()
        sources, _ = _package.read(pt2)
        how = ("model.so built by mps_shim with g++ from AOTInductor's C++ wrapper; weights linked in" if not package
               else "AOTInductor package (package_cpp_only): C++ wrapper and weights object" if weights_in_so
               else "AOTInductor package (package_cpp_only): C++ wrapper; weights as files (package_constants_in_so"
                    "=False)")
        meta = _metadata.from_exported_program(ep, how, _count_constants(sources["wrapper"]))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if package:
            _package.add_metadata(pt2, meta)
            _build.copy_atomic(pt2, path)
        else:
            _package.build_model_so(sources, path)
            _metadata.write_sidecar(path, meta)
        done = time.perf_counter()
    meta["seconds"] = {"trace": round(traced - start, 2), "inductor": round(generated - traced, 2),
                       "compile": round(done - generated, 2), "total": round(done - start, 2)}
    return meta
