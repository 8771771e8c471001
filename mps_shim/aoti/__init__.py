"""AOTInductor models on mps_shim: export a PyTorch model for "mps" and run the model.so here.

    meta = mps_shim.aoti.export(model, (x,), "model.so")   # needs torch 2.13 (CPU build is enough)
    model = mps_shim.aoti.load("model.so")                 # needs no torch
    y = model(x_numpy)
    model.update_constants({"fc1.weight": w})              # new weights, same dtype and shape

A package (package=True) is built by load() and cached; with weights_in_so=False its
weights stay files in the package, loaded into the model when it loads.

Modules: _export (export), _patches (what a CPU-only torch needs to compile
for mps), _guard (the no-op MPS device guard), _package (cpp-only packages,
building model.so), _weights (weights kept as files in a package), _build
(compiler and cache), _container (the container C API), _loader (load,
Model), _metadata (inputs/outputs recorded and checked).
"""
from ._container import ModelLoadError
from ._export import export
from ._loader import ConstantError, Model, load
from ._metadata import InputError
from ._package import PackageError, WeightsError

__all__ = ["ConstantError", "InputError", "Model", "ModelLoadError", "PackageError", "WeightsError", "export",
           "load"]
