"""AOTInductor packages (.pt2) made with `aot_inductor.package_cpp_only=True`, and building them.

Such a package is a zip archive holding, per model, under
`<archive>/data/aotinductor/<model>/`, the generated C++ wrapper
(`*.wrapper.cpp`) and the weights as an object file (`*.weights.o`, the blob
between `_binary_constants_bin_start` and `_end`) or, for weights kept
outside the .so, a placeholder object plus `weights_config.json` and files
under `<archive>/data/weights/` (read by _weights, never built in). `build_model_so` compiles
them against torch's headers into a model.so that needs only `aoti_torch_*`
symbols (from libmps_shim.so) plus libc/libstdc++; torch is needed for its
headers at build time only. Builds are cached by the hash of the sources.
"""
import importlib.util
import os
import tempfile
import zipfile

from . import _build, _metadata

MODEL_SO = "model.so"
# Weights kept outside the .so (_weights): torch 2.13's pt2 archive names.
WEIGHTS_CONFIG = "weights_config.json"
WEIGHTS_DIR = "data/weights/"


class PackageError(ValueError):
    """The file is not an AOTInductor package we can build."""


class WeightsError(PackageError):
    """A weight file of a package is missing or malformed, or does not fit the model's constant."""


def _members(names, model_name):
    """{'wrapper': member, 'weights': member or None} for one model of the archive."""
    by_model = {}
    for name in names:
        parts = name.split("/")
        if len(parts) >= 5 and parts[1:3] == ["data", "aotinductor"]:
            by_model.setdefault(parts[3], []).append(name)
    if not by_model:
        raise PackageError("no AOTInductor model in the archive (expected <archive>/data/aotinductor/<model>/)")
    if model_name is None:
        model_name = "model" if "model" in by_model else (next(iter(by_model)) if len(by_model) == 1 else None)
        if model_name is None:
            raise PackageError(f"the archive holds several models ({', '.join(sorted(by_model))}); name one")
    if model_name not in by_model:
        raise PackageError(f"no model {model_name!r} in the archive (it has {', '.join(sorted(by_model))})")
    files = by_model[model_name]
    wrappers = [f for f in files if f.endswith(".wrapper.cpp")]
    if len(wrappers) != 1:
        sos = [f for f in files if f.endswith(".so")]
        hint = (" it holds a compiled .so instead: export with aot_inductor.package_cpp_only=True"
                if sos else "")
        raise PackageError(f"model {model_name!r} has {len(wrappers)} C++ wrapper source(s), expected one;{hint}")
    weights = [f for f in files if f.endswith(".weights.o")]
    if len(weights) > 1:
        raise PackageError(f"model {model_name!r} has {len(weights)} weight objects, expected at most one")
    meta = [f for f in files if f.endswith("/" + _metadata.PACKAGE_ENTRY)]
    config = [f for f in files if f.endswith("/" + WEIGHTS_CONFIG)]
    return {"wrapper": wrappers[0], "weights": weights[0] if weights else None, "meta": meta[0] if meta else None,
            "weights_config": config[0] if config else None, "folder": f"{'/'.join(wrappers[0].split('/')[:4])}/",
            "weights_dir": f"{wrappers[0].split('/')[0]}/{WEIGHTS_DIR}"}


def read(path, model_name=None):
    """(sources, metadata or None) of a package.

    sources: {'wrapper': bytes, 'weights': bytes or None (the weights object), 'weights_config': bytes or None,
    'weight_files': {name: bytes}}; the last two only for weights kept outside the .so (_weights), and only
    'wrapper' and 'weights' go into the model.so.
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            m = _members(names, model_name)
            sources = {"wrapper": z.read(m["wrapper"]), "weights": z.read(m["weights"]) if m["weights"] else None,
                       "weights_config": None, "weight_files": {}}
            if m["weights_config"]:
                sources["weights_config"] = z.read(m["weights_config"])
                sources["weight_files"] = {n[len(m["weights_dir"]):]: z.read(n) for n in names
                                           if n.startswith(m["weights_dir"]) and not n.endswith("/")}
            meta = _metadata.parse(z.read(m["meta"]).decode(), f"{path}:{m['meta']}") if m["meta"] else None
    except zipfile.BadZipFile:
        raise PackageError(f"[mps_shim.aoti] {path}: not a .pt2 package (not a zip archive)") from None
    except PackageError as exc:
        raise PackageError(f"[mps_shim.aoti] {path}: {exc}") from None
    return sources, meta


def add_metadata(path, meta, model_name=None):
    """Stores the metadata inside the package, next to the model's sources."""
    with zipfile.ZipFile(path) as z:
        folder = _members(z.namelist(), model_name)["folder"]
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(folder + _metadata.PACKAGE_ENTRY, _metadata.dumps(meta))


def _torch_headers():
    """(torch's include folder, torch/version.py's text), found without importing torch (it is slow)."""
    spec = importlib.util.find_spec("torch")
    folder = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else None
    include = os.path.join(folder, "include") if folder else None
    if not include or not os.path.isdir(os.path.join(include, "torch", "csrc", "inductor", "aoti_runtime")):
        raise PackageError("[mps_shim.aoti] building a model from a package needs torch's C++ headers: "
                           "pip install torch==2.13.0 (it is not needed to run the built model)")
    try:
        with open(os.path.join(folder, "version.py"), "rb") as f:
            version = f.read()
    except OSError:
        version = b""
    return include, version


def build_model_so(sources, output=None):
    """Compiles a model's wrapper and weights into a model.so; returns its path.

    With `output` the library is written there; without, it is cached by content and the cached
    path is returned (a second call with the same sources compiles nothing).
    """
    include, torch_version = _torch_headers()
    key = _build.content_key(sources["wrapper"], sources["weights"] or b"", include.encode(), torch_version,
                             " ".join(_build.MODEL_FLAGS + _build.MODEL_DEFINES).encode())

    def build(out_path):
        with tempfile.TemporaryDirectory(prefix="mps_shim_model_") as tmp:
            files = [os.path.join(tmp, "model.wrapper.cpp")]
            with open(files[0], "wb") as f:
                f.write(sources["wrapper"])
            if sources["weights"]:
                files.append(os.path.join(tmp, "model.weights.o"))
                with open(files[1], "wb") as f:
                    f.write(sources["weights"])
            # The weights object has no .note.GNU-stack: say so rather than get an executable stack.
            _build.compile_shared(files, out_path, include_dirs=[include], defines=_build.MODEL_DEFINES,
                                  libs=["-Wl,-z,noexecstack"])

    cached = _build.cached_build(key, MODEL_SO, build)
    if output is None:
        return cached
    _build.copy_atomic(cached, output)
    return output
