"""AOTInductor models end to end: export with torch 2.13 for "mps", load with mps_shim.aoti, compare with eager.

Each model is exported once per test session (the `exported` fixture caches
by name), into the session's folder; the models are in aoti_models.py.
"""
import copy
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.__version__.startswith("2.13."):
    pytest.skip(f"mps_shim.aoti.export targets torch 2.13, this is {torch.__version__}", allow_module_level=True)

import mps_shim  # noqa: E402
from mps_shim import aoti  # noqa: E402

_spec = importlib.util.spec_from_file_location("aoti_models", os.path.join(os.path.dirname(__file__), "aoti_models.py"))
models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(models)

ALL = list(models.CASES) + list(models.HALF_CASES)
WEIGHTS_AS_INPUTS = list(models.WEIGHTS_AS_INPUTS_CASES)
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}


class _Exports:
    """One export per (model, options) per session; remembers the seconds each took."""

    def __init__(self, folder):
        self.folder = folder
        self.done = {}
        self.seconds = {}

    def __call__(self, name, package=False, dynamic_shapes=None, tag="", weights_in_so=True):
        tag += "" if weights_in_so else "_weight_files"
        key = (name, package, tag)
        if key not in self.done:
            model, inputs = models.build(name)
            path = os.path.join(self.folder, f"{name}{tag}{'.pt2' if package else '.so'}")
            meta = aoti.export(model, inputs, path, package=package, dynamic_shapes=dynamic_shapes,
                               weights_in_so=weights_in_so)
            self.seconds[key] = meta["seconds"]
            self.done[key] = (path, model, inputs, meta)
        return self.done[key]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    exports = _Exports(str(tmp_path_factory.mktemp("aoti")))
    yield exports
    if exports.seconds:  # shown with -s: what CI pays per export
        for key, s in exports.seconds.items():
            print(f"\nexport {key[0]}{key[2]}{' (package)' if key[1] else ''}: {s}", end="")


def _numpy(t):
    if t.dtype == torch.bfloat16:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _torch(a):
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(a, order="C"))  # ascontiguousarray would make a 0-d result 1-d


def _eager(model, inputs):
    """The float32 eager result (half models run upcast, as the Metal kernels compute)."""
    model = copy.deepcopy(model).float()
    inputs = [x.float() if x.is_floating_point() else x for x in inputs]
    with torch.no_grad():
        out = model(*inputs)
    return out if isinstance(out, tuple) else (out,)


def _compare(got, model, inputs):
    got = got if isinstance(got, tuple) else (got,)
    want = _eager(model, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        dtype = inputs[0].dtype if inputs[0].is_floating_point() else torch.float32
        tol = TOLERANCE[dtype]
        torch.testing.assert_close(_torch(g).float(), w, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ALL)
def test_export_writes_a_model_so_that_needs_only_aoti_symbols(exported, name):
    path, _, inputs, meta = exported(name)
    assert os.path.getsize(path) > 0 and os.path.exists(path + ".json")
    assert len(meta["inputs"]) == len(inputs)
    undefined = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True, text=True,
                               check=True).stdout.split("\n")
    names = [line.split()[-1] for line in undefined if line.strip() and line.split()[0] in ("U", "w")]
    foreign = [n for n in names if not (n.startswith("aoti_torch_") or "@" in n or n.startswith("_ITM_")
                                        or n.startswith("__gmon") or n == "__cxa_finalize")]
    assert foreign == []  # libc/libstdc++ symbols are versioned (name@GLIBC...); nothing from libtorch
    # ... and every shim function and ATen fallback op it calls is one libmps_shim exports
    import ctypes

    shim = ctypes.CDLL(mps_shim.library_path())
    assert [n for n in names if n.startswith("aoti_torch_") and not hasattr(shim, n)] == []


# Inductor's cross-entropy kernel sums int64 with c10's simd_sum<long>, whose shuffles read inactive lanes of a
# partial SIMD-group: checked mode reports it (a finding in c10; the values are right on mps_shim).
_C10_LONG = pytest.mark.checked_reports(reason="c10's simd_sum<long> shuffles in inactive lanes (Inductor's cross entropy)")


def _marked(names):
    return [pytest.param(n, marks=_C10_LONG) if n.startswith("cross_entropy") else n for n in names]


@pytest.mark.parametrize("name", _marked(ALL))
def test_model_matches_eager(exported, name):
    path, model, inputs, _ = exported(name)
    loaded = aoti.load(path)
    _compare(loaded(*[_numpy(x) for x in inputs]), model, inputs)


@pytest.mark.parametrize("name", _marked(WEIGHTS_AS_INPUTS))
def test_model_with_weights_as_inputs_matches_eager(exported, name):
    """The same models with every parameter and buffer an input: the model.so holds no constants."""
    path, model, inputs, meta = exported(name)
    base_inputs = len(inputs) - len(model.names)
    assert meta["constants"] == 0 and len(meta["inputs"]) == len(inputs) > base_inputs
    loaded = aoti.load(path)
    _compare(loaded(*[_numpy(x) for x in inputs]), model, inputs)


def test_weights_are_constants_in_the_so(exported):
    path, model, _, meta = exported("embed_layernorm")
    loaded = aoti.load(path)
    names = {fqn for _, fqn, _, _ in loaded.constants()}
    assert names == {"emb.weight", "pos", "norm.weight", "norm.bias"} and meta["constants"] == 4
    # the blob holds the real weights: run twice (the second run must not see state from the first)
    ids = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]])
    first = loaded(ids)
    np.testing.assert_array_equal(first, loaded(ids))


def test_weights_as_inputs_leave_no_constants(exported):
    path, _, _, meta = exported("layernorm_weights_as_inputs")
    assert meta["constants"] == 0 and [t["name"] for t in meta["inputs"]] == ["ids", "table", "weight", "bias"]


def test_dynamic_batch(exported):
    batch = torch.export.Dim("batch", min=1, max=64)
    path, model, _, meta = exported("groupnorm_silu", dynamic_shapes=({0: batch},), tag="_dynamic")
    dim = meta["inputs"][0]["shape"][0]
    assert isinstance(dim, str) and meta["dims"][dim] == [1, 64]
    loaded = aoti.load(path)
    for n in (1, 3, 5):
        x = torch.randn(n, 16, 8, 8)
        _compare(loaded(x.numpy()), model, (x,))
    with pytest.raises(aoti.InputError, match=r"input 0 \(x\): dynamic dimension 0 \(s\w+\) must be in \[1, 64\]"):
        loaded(np.zeros((65, 16, 8, 8), np.float32))


def test_dynamic_batch_through_matmuls(exported):
    """The batch size reaches mm_out/addmm_out as a run-time size, and the Metal kernels as a bound int."""
    batch = torch.export.Dim("batch", min=1, max=64)
    path, model, _, meta = exported("mlp", dynamic_shapes=({0: batch},), tag="_dynamic")
    assert isinstance(meta["inputs"][0]["shape"][0], str)
    loaded = aoti.load(path)
    for n in (1, 3, 5):
        x = torch.randn(n, 32)
        _compare(loaded(x.numpy()), model, (x,))


def _new_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g).to(v.dtype) for k, v in model.state_dict().items()}


def test_update_constants_replaces_the_weights(exported):
    path, model, inputs, _ = exported("mlp")
    x = inputs[0].numpy()
    loaded, other = aoti.load(path), aoti.load(path)
    new = _new_weights(model, 1)
    loaded.update_constants({k: v.numpy() for k, v in new.items()})  # by original FQN
    updated = copy.deepcopy(model)
    updated.load_state_dict(new)
    _compare(loaded(x), updated, inputs)
    _compare(other(x), model, inputs)  # each container has its own copy of the weights
    # by constant name, from an mps_shim.Tensor; the model keeps a copy, not the caller's memory
    w = np.random.default_rng(2).standard_normal((10, 64)).astype(np.float32)
    loaded.update_constants({"fc2_weight": mps_shim.Tensor.from_numpy(w)})
    updated.fc2.weight.data = torch.from_numpy(w.copy())
    w[:] = 0
    _compare(loaded(x), updated, inputs)
    _compare(loaded(x), updated, inputs)  # and again: runs do not disturb the new weights


def test_update_constants_in_bfloat16(exported):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    path, model, inputs, _ = exported("mlp_bfloat16")
    loaded = aoti.load(path)
    new = _new_weights(model, 3)
    loaded.update_constants({k: _numpy(v) for k, v in new.items()})
    assert all(_numpy(v).dtype == np.dtype(ml_dtypes.bfloat16) for v in new.values())
    updated = copy.deepcopy(model)
    updated.load_state_dict(new)
    _compare(loaded(_numpy(inputs[0])), updated, inputs)


def test_update_constants_errors_change_nothing(exported):
    path, model, inputs, _ = exported("mlp")
    loaded = aoti.load(path)
    bias = np.ones(64, np.float32)  # valid, but listed with an invalid entry: not applied either
    with pytest.raises(aoti.ConstantError, match=re.escape(
            "no constant named 'fc3.weight' (constants: fc1_bias, fc1_weight, fc2_bias, fc2_weight)")):
        loaded.update_constants({"fc1.bias": bias, "fc3.weight": np.zeros(1, np.float32)})
    with pytest.raises(aoti.ConstantError, match=re.escape(
            "constant fc1.weight (fc1_weight): expected shape (64, 32), got (32, 64)")):
        loaded.update_constants({"fc1.bias": bias, "fc1.weight": np.zeros((32, 64), np.float32)})
    with pytest.raises(aoti.ConstantError, match=re.escape("constant fc1_bias: expected dtype float32, got float64")):
        loaded.update_constants({"fc1_bias": np.zeros(64)})
    with pytest.raises(aoti.ConstantError, match="'fc1_bias' and 'fc1.bias' both name constant 'fc1_bias'"):
        loaded.update_constants({"fc1.bias": bias, "fc1_bias": bias})
    with pytest.raises(TypeError, match="expected a numpy array or mps_shim.Tensor, got list"):
        loaded.update_constants({"fc1.bias": [1.0] * 64})
    with pytest.raises(TypeError, match="takes a mapping"):
        loaded.update_constants([("fc1.bias", bias)])
    _compare(loaded(inputs[0].numpy()), model, inputs)


# --- failures inside a real model are loud ---------------------------------------------------------

@pytest.fixture
def refusing_compiler(tmp_path):
    """An environment in which no Metal library builds: a fresh kernel cache and a $CXX that fails.

    The host backend runs $CXX the first time a library is created (it
    preprocesses the Metal source with it), so the model's own
    create_shader_library fails, and the generated code does not look.
    """
    script = tmp_path / "refusing-cxx"
    script.write_text("#!/bin/sh\necho 'refusing-cxx: no compiling today' >&2\nexit 1\n")
    script.chmod(0o755)
    cache = tmp_path / "kernel-cache"
    cache.mkdir(mode=0o700)
    return {"CXX": str(script), "MPS_SHIM_CACHE_DIR": str(cache), "MPS_SHIM_ABORT_ON_ERROR": None}


@pytest.fixture(scope="module")
def aoti_host(tmp_path_factory):
    """tests/c/aoti_host.cpp built: a C++ host that loads libmps_shim and a model.so with dlopen."""
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    exe = str(tmp_path_factory.mktemp("aoti_host") / "aoti_host")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "aoti_host.cpp")
    subprocess.run([cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", mps_shim.include_dir(), src, "-o", exe,
                    "-ldl"], check=True, capture_output=True)

    def run_host(model_path, shape, env=None):
        full = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        return subprocess.run([exe, mps_shim.library_path(), model_path, *map(str, shape)], env=full,
                              capture_output=True, text=True, timeout=120)

    return run_host


def _report(stdout):
    """aoti_host's "key value" lines as a dict (the error message may continue on further lines)."""
    keys = ("run", "synchronize", "kind", "error", "output")
    out, key = {}, None
    for line in stdout.splitlines():
        head, _, rest = line.partition(" ")
        if head in keys:
            key, out[head] = head, rest
        elif key is not None:
            out[key] += "\n" + line
    return out


def test_a_kernel_that_does_not_compile_raises_from_the_model(exported, run_python, refusing_compiler):
    path = exported("mlp")[0]
    r = run_python("import numpy as np, mps_shim\n"
                   "from mps_shim import aoti\n"
                   f"m = aoti.load({path!r})\n"
                   "for attempt in range(2):\n"
                   "    try:\n"
                   "        m(np.ones((4, 32), np.float32))\n"
                   "    except mps_shim.MpsShimError as e:\n"
                   "        print(type(e).__name__, repr(str(e)))\n"
                   "    else:\n"
                   "        print('returned')\n", env=refusing_compiler)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith("CompileError '[aoti_torch_mps_create_shader_library] Metal preprocessing failed")
    assert "refusing-cxx: no compiling today" in first
    assert second != "returned"  # the library never came to be: the next run fails too


def test_an_op_that_rejects_its_arguments_raises_op_error(exported, tmp_path):
    path, model, inputs, _ = exported("mlp")
    bare = str(tmp_path / "bare_mlp.so")
    shutil.copyfile(path, bare)
    loaded = aoti.load(bare)  # no model.so.json: the inputs are not checked before the run
    with pytest.raises(mps_shim.OpError, match=re.escape(
            "[aoti_torch_mps_mm_out] mm: mat1 and mat2 shapes cannot be multiplied (4x16 and 32x64)")) as info:
        loaded(np.ones((4, 16), np.float32))
    assert "API call failed" in str(info.value.__cause__)  # AOTInductor's own report, kept as the cause
    _compare(loaded(inputs[0].numpy()), model, inputs)  # nothing stale is left pending


def test_c_host_sees_failures_at_synchronize(exported, aoti_host, refusing_compiler):
    path = exported("mlp")[0]
    r = aoti_host(path, (4, 32), env=refusing_compiler)
    assert r.returncode == 0, r.stderr
    report = _report(r.stdout)
    # generated code ignores the shim's codes: the run "succeeds", with garbage...
    assert report["run"] == "0" and report["synchronize"] == "1"
    # ...and mps_shim_synchronize() says why
    assert int(report["kind"]) == mps_shim.CompileError.kind
    assert report["error"].startswith("[aoti_torch_mps_create_shader_library] Metal preprocessing failed")
    assert "refusing-cxx: no compiling today" in report["error"]
    # an ATen op's failure fails the run itself, and synchronize names the op
    report = _report(aoti_host(path, (4, 16)).stdout)
    assert report["run"] == "1" and report["synchronize"] == "1"
    assert int(report["kind"]) == mps_shim.OpError.kind
    assert report["error"] == "[aoti_torch_mps_mm_out] mm: mat1 and mat2 shapes cannot be multiplied (4x16 and 32x64)"


def test_abort_on_error_stops_a_host_at_the_failing_call(exported, aoti_host, refusing_compiler):
    path = exported("mlp")[0]
    r = aoti_host(path, (4, 32), env={**refusing_compiler, "MPS_SHIM_ABORT_ON_ERROR": "1"})
    assert r.returncode == -6  # SIGABRT
    assert "mps_shim: [aoti_torch_mps_create_shader_library] Metal preprocessing failed" in r.stderr
    assert "refusing-cxx: no compiling today" in r.stderr
    assert "run " not in r.stdout  # it never got back from the run


def test_input_mismatches_are_clear_errors(exported):
    loaded = aoti.load(exported("groupnorm_silu")[0])
    with pytest.raises(aoti.InputError, match=r"takes 1 input\(s\) \(x: float32\[2x16x8x8\]\), got 2"):
        loaded(np.zeros((2, 16, 8, 8), np.float32), np.zeros(1, np.float32))
    with pytest.raises(aoti.InputError, match=r"input 0 \(x\): expected dtype float32, got float64"):
        loaded(np.zeros((2, 16, 8, 8)))
    with pytest.raises(aoti.InputError, match=r"input 0 \(x\): dimension 1 must be 16 .* got shape \(2, 8, 8, 8\)"):
        loaded(np.zeros((2, 8, 8, 8), np.float32))
    with pytest.raises(TypeError, match="expected a numpy array"):
        loaded([1.0])


def test_inputs_as_mps_shim_tensors_and_strided_arrays(exported):
    path, model, inputs, _ = exported("groupnorm_silu")
    loaded = aoti.load(path)
    x = inputs[0].numpy()
    _compare(loaded(mps_shim.Tensor.from_numpy(x.copy())), model, inputs)
    wide = np.zeros((2, 16, 8, 16), np.float32)
    wide[..., ::2] = x
    _compare(loaded(wide[..., ::2]), model, inputs)  # copied to the layout the model was compiled for


def test_outputs_own_their_memory(exported):
    loaded = aoti.load(exported("groupnorm_silu")[0])
    x = np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32)
    a = loaded(x)
    keep = a.copy()
    loaded(-x)
    assert a.flags.owndata and np.array_equal(a, keep)


def test_bare_model_so_without_metadata(exported, tmp_path):
    path, model, inputs, _ = exported("upsample")
    bare = str(tmp_path / "bare.so")
    shutil.copyfile(path, bare)
    loaded = aoti.load(bare)
    assert loaded.metadata is None and loaded.num_inputs == 1
    _compare(loaded(inputs[0].numpy()), model, inputs)
    with pytest.raises(aoti.InputError, match=r"takes 1 input\(s\) \(arg0_1\), got 0"):
        loaded()


def test_bfloat16_in_and_out(exported):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    path, model, inputs, _ = exported("groupnorm_silu_bfloat16")
    out = aoti.load(path)(_numpy(inputs[0]))
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    _compare(out, model, inputs)


def test_package_builds_once_and_loads_from_the_cache_quickly(exported, run_python):
    path, model, inputs, meta = exported("embed_layernorm", package=True)
    assert "package_cpp_only" in meta["built"]
    loaded = aoti.load(path)  # builds the .so into the cache
    assert loaded.path != path and loaded.metadata["inputs"] == meta["inputs"]
    _compare(loaded(inputs[0].numpy()), model, inputs)
    # a fresh process: the cached build is found by content hash, nothing compiles
    r = run_python("import time, mps_shim.aoti as a\n"
                   f"t = time.perf_counter(); a.load({path!r}); print(time.perf_counter() - t)")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) <= 0.5


def test_missing_symbols_are_named_at_load(tmp_path):
    """A model.so that calls an ATen op libmps_shim lacks fails at load, naming the op."""
    src = tmp_path / "needs_fft.c"
    src.write_text("extern int aoti_torch_mps__fft_c2c(void);\nint f(void) { return aoti_torch_mps__fft_c2c(); }\n")
    lib = str(tmp_path / "needs_fft.so")
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", lib], check=True)
    with pytest.raises(aoti.ModelLoadError, match="aoti_torch_mps__fft_c2c, which this libmps_shim does not"):
        aoti.load(lib)


def test_a_model_so_replaced_at_its_path_loads_as_the_new_model(exported, tmp_path):
    """dlopen keeps one module per path: a model exported again to the same path must not run the old one.
    Export replaces the file (a new inode, as any build by rename); writing into a loaded .so in place
    instead would change the code the process is running, which no loader can guard against."""
    path = str(tmp_path / "model.so")
    for name in ("groupnorm_silu", "upsample"):
        src, model, inputs, _ = exported(name)
        for suffix in ("", ".json"):
            shutil.copyfile(src + suffix, path + suffix + ".tmp")
            os.replace(path + suffix + ".tmp", path + suffix)
        _compare(aoti.load(path)(*[_numpy(x) for x in inputs]), model, inputs)


def test_export_leaves_torch_as_it_found_it(exported):
    import torch._inductor.codegen.cpp_wrapper_gpu as cpp_wrapper_gpu
    import torch._inductor.fx_passes.joint_graph as joint_graph
    import torch._inductor.graph as graph
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    before = (torch.nn.functional.scaled_dot_product_attention, torch.backends.mps.get_core_count,
              joint_graph.lazy_init, graph.is_same_tensor, cpp_wrapper_gpu.get_gpu_type,
              graph.GraphLowering.get_original_value_of_constant, "tolist" in vars(FakeTensor))
    model, inputs = models.build("gpt2_block_decomposed")
    aoti.export(model, inputs, os.path.join(exported.folder, "state_check.so"))
    after = (torch.nn.functional.scaled_dot_product_attention, torch.backends.mps.get_core_count,
             joint_graph.lazy_init, graph.is_same_tensor, cpp_wrapper_gpu.get_gpu_type,
             graph.GraphLowering.get_original_value_of_constant, "tolist" in vars(FakeTensor))
    assert before == after
    assert all(not isinstance(p, FakeTensor) for p in model.state_dict().values())
    with FakeTensorMode(), pytest.raises(RuntimeError, match="not linked with support for mps"):
        torch.empty(1, device="mps").to("mps")  # opens a DeviceGuard: the no-op one is gone again


def test_unsupported_torch_version_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch, "__version__", "2.12.1")
    with pytest.raises(RuntimeError, match=r"supports torch 2\.13\.x only, this is torch 2\.12\.1"):
        aoti.export(torch.nn.ReLU(), (torch.zeros(2),), str(tmp_path / "m.so"))


def test_not_a_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.so"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="neither a model.so"):
        aoti.load(str(bad))
    with pytest.raises(FileNotFoundError):
        aoti.load(str(tmp_path / "missing.so"))


def test_cli_info_and_run(exported, run_cli, tmp_path):
    path, model, inputs, _ = exported("groupnorm_silu")
    r = run_cli("aoti", "info", path)
    assert r.returncode == 0, r.stderr
    assert "x" in r.stdout and "float32" in r.stdout and "(2, 16, 8, 8)" in r.stdout and "constants: 2" in r.stdout
    assert "weights: linked into the model.so" in r.stdout
    np.save(tmp_path / "x.npy", inputs[0].numpy())
    r = run_cli("aoti", "run", path, tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    _compare(np.load(tmp_path / "y.npy"), model, inputs)
    np.save(tmp_path / "bad.npy", np.zeros(3))
    r = run_cli("aoti", "run", path, tmp_path / "bad.npy")
    assert r.returncode == 1 and "expected dtype float32, got float64" in r.stderr


def test_process_with_two_models_exits_cleanly(exported, run_python):
    """Models delete their kernel libraries from static destructors while the loader finalises objects
    at exit; unloading kernel modules then crashed the process (SIGSEGV after every test had passed)."""
    paths = [exported(name)[0] for name in ("mlp_float16", "mlp_bfloat16")]
    code = ("import numpy as np, ml_dtypes\nfrom mps_shim import aoti\n"
            f"a = aoti.load({paths[0]!r}); a(np.ones((4, 32), np.float16))\n"
            f"b = aoti.load({paths[1]!r}); b(np.ones((4, 32), ml_dtypes.bfloat16))\nprint('ran')\n")
    r = run_python(code)
    assert r.returncode == 0 and "ran" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_torch_tensors_in_and_zero_copy_tensors_out(exported):
    path, model, inputs, _ = exported("mlp")
    loaded = aoti.load(path)
    x = inputs[0]
    want = _eager(model, inputs)[0]
    got = loaded(x)                                   # a torch CPU tensor, through __dlpack__
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4)
    strided = torch.stack([x, x], dim=2)[..., 0]      # same values, non-contiguous
    torch.testing.assert_close(torch.from_numpy(loaded(strided)), want, rtol=1e-4, atol=1e-4)
    out = loaded(x.numpy(), copy=False)               # the model's own output, no copy
    assert isinstance(out, mps_shim.Tensor)
    viewed = torch.from_dlpack(out)
    torch.testing.assert_close(viewed, want, rtol=1e-4, atol=1e-4)
    again = loaded(x.numpy(), copy=False)             # a new run does not write the first run's output
    assert again.data_ptr != out.data_ptr
    torch.testing.assert_close(viewed, want, rtol=1e-4, atol=1e-4)


# --- weights kept as files in the package (weights_in_so=False) -------------------------------------

WEIGHT_FILE_MODELS = ["mlp", "cnn_batchnorm"]


def _blob_bytes(so_path):
    """_binary_constants_bin_end - _start of a model.so: the size of the weights linked into it."""
    out = subprocess.run(["nm", so_path], capture_output=True, text=True, check=True).stdout
    addr = {line.split()[-1]: int(line.split()[0], 16) for line in out.splitlines()
            if line.split()[-1] in ("_binary_constants_bin_start", "_binary_constants_bin_end")}
    return addr["_binary_constants_bin_end"] - addr["_binary_constants_bin_start"]


def _weights_config(path):
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/weights_config.json"))
        return json.loads(z.read(name))


def _rewrite_package(src, dst, replace=None, drop=(), config=None):
    """Copies a package, replacing members by suffix ({"data/weights/weight_0": bytes}), dropping some, and
    rewriting weights_config.json with config(dict) -> dict."""
    import json
    import zipfile

    replace = dict(replace or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if any(info.filename.endswith("/" + d) for d in drop):
                continue
            data = zin.read(info)
            for suffix, new in replace.items():
                if info.filename.endswith("/" + suffix):
                    data = new
            if config is not None and info.filename.endswith("/weights_config.json"):
                data = json.dumps(config(json.loads(data))).encode()
            zout.writestr(info, data)
    return dst


def _saved(tensor):
    import io

    buf = io.BytesIO()
    torch.save(tensor, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", WEIGHT_FILE_MODELS)
def test_weights_as_package_files_match_eager(exported, name):
    path, model, inputs, meta = exported(name, package=True, weights_in_so=False)
    assert "weights as files" in meta["built"]
    config = _weights_config(path)
    # every parameter and buffer the model reads is a file (small 1-D ones are not inlined in the kernels)
    assert set(config) == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    loaded = aoti.load(path)
    assert "under data/weights/" in loaded.weights
    _compare(loaded(*[_numpy(x) for x in inputs]), model, inputs)
    # the model.so holds AOTInductor's one-byte placeholder, not the weights; the in-.so build holds them all
    assert _blob_bytes(loaded.path) <= 1
    in_so = exported(name)[0]
    assert _blob_bytes(in_so) >= sum(v.numel() * v.element_size() for v in model.state_dict().values()
                                     if v.dim() > 0 and v.numel() > 8)
    assert os.path.getsize(loaded.path) < os.path.getsize(in_so)


@pytest.mark.parametrize("name", WEIGHT_FILE_MODELS)
def test_new_weight_files_change_the_result_without_a_rebuild(exported, tmp_path, name):
    path, model, inputs, _ = exported(name, package=True, weights_in_so=False)
    built = aoti.load(path).path
    new = _new_weights(model, 5)
    if name == "cnn_batchnorm":
        new["bn.running_var"] = new["bn.running_var"].abs() + 0.5
    config = _weights_config(path)
    replace = {}
    for fqn, (file, shape, stride, offset) in config.items():
        assert offset == 0 and list(new[fqn].stride()) == stride  # one contiguous tensor per file here
        replace[f"data/weights/{file}"] = _saved(new[fqn])
    swapped = _rewrite_package(path, str(tmp_path / "swapped.pt2"), replace=replace)
    loaded = aoti.load(swapped)
    assert loaded.path == built  # the build is keyed by the code only: the same model.so
    updated = copy.deepcopy(model)
    updated.load_state_dict({**model.state_dict(), **new})
    _compare(loaded(*[_numpy(x) for x in inputs]), updated, inputs)
    with pytest.raises(AssertionError):  # really different weights
        _compare(loaded(*[_numpy(x) for x in inputs]), model, inputs)
    # the constants loaded from files are the container's own, which update_constants replaces as usual
    loaded.update_constants({k: v.numpy() for k, v in model.state_dict().items() if k in config})
    _compare(loaded(*[_numpy(x) for x in inputs]), model, inputs)


def test_weight_file_errors_are_clear(exported, tmp_path):
    path, model, _, _ = exported("mlp", package=True, weights_in_so=False)
    config = _weights_config(path)
    file = config["fc1.bias"][0]

    def load(**change):
        return aoti.load(_rewrite_package(path, str(tmp_path / "changed.pt2"), **change))

    with pytest.raises(aoti.WeightsError, match=re.escape(
            f"weight file data/weights/{file} (for fc1.bias) is missing from the package")):
        load(drop=[f"data/weights/{file}"])
    with pytest.raises(aoti.PackageError, match=re.escape(f"data/weights/{file}: not a tensor saved by torch.save")):
        load(replace={f"data/weights/{file}": b"not a zip"})
    with pytest.raises(aoti.WeightsError, match="not a tensor saved by torch.save .*torch.nn.modules.linear.Linear "
                                                "is not allowed"):
        load(replace={f"data/weights/{file}": _saved(torch.nn.Linear(2, 2))})
    with pytest.raises(aoti.WeightsError, match=re.escape("weight fc1.bias (fc1_bias): the model expects float32, "
                                                          f"data/weights/{file} holds float64")):
        load(replace={f"data/weights/{file}": _saved(torch.zeros(64, dtype=torch.float64))})
    with pytest.raises(aoti.WeightsError, match=re.escape(f"data/weights/{file} holds 32")):
        load(replace={f"data/weights/{file}": _saved(torch.zeros(32))})
    with pytest.raises(aoti.WeightsError, match=re.escape(
            "weight fc1.bias (fc1_bias): the model expects shape (64,), weights_config.json gives (8, 8)")):
        load(config=lambda c: {**c, "fc1.bias": [file, [8, 8], [8, 1], 0]})
    with pytest.raises(aoti.WeightsError, match=re.escape("entry 'fc1.bias' must be [file, shape, stride, storage "
                                                          "offset], got")):
        load(config=lambda c: {**c, "fc1.bias": [file, [64]]})
    with pytest.raises(aoti.WeightsError, match="weights_config.json: not valid JSON"):
        load(replace={"weights_config.json": b"{"})
    with pytest.raises(aoti.WeightsError, match=re.escape(
            "the package has no weight for parameter fc1.bias (constant fc1_bias)")):
        load(config=lambda c: {k: v for k, v in c.items() if k != "fc1.bias"})
    with pytest.raises(aoti.WeightsError, match=re.escape("weights_config.json names 'fc9.bias', which the model "
                                                          "has no constant for")):
        load(config=lambda c: {**c, "fc9.bias": c["fc1.bias"]})


def test_a_buffer_missing_from_the_weights_warns_and_a_run_fails(exported, tmp_path):
    """As torch's loader: buffers are optional (a warning at load); the model then has no value for it."""
    path, _, inputs, _ = exported("cnn_batchnorm", package=True, weights_in_so=False)
    changed = _rewrite_package(path, str(tmp_path / "no_mean.pt2"),
                               config=lambda c: {k: v for k, v in c.items() if k != "bn.running_mean"})
    with pytest.warns(UserWarning, match="buffer bn.running_mean: not in the package's weights"):
        loaded = aoti.load(changed)
    with pytest.raises(mps_shim.MpsShimError, match="null tensor handle"):
        loaded(_numpy(inputs[0]))


def test_weights_outside_the_so_need_a_package(tmp_path):
    with pytest.raises(ValueError, match="weights_in_so=False needs package=True"):
        aoti.export(torch.nn.ReLU(), (torch.zeros(2),), str(tmp_path / "m.so"), weights_in_so=False)


def test_package_with_weight_files_loads_from_the_cache_quickly(exported, run_python, run_cli):
    path, model, inputs, _ = exported("mlp", package=True, weights_in_so=False)
    aoti.load(path)  # built into the cache
    r = run_python("import time, numpy as np, mps_shim.aoti as a\n"
                   f"t = time.perf_counter(); m = a.load({path!r}); dt = time.perf_counter() - t\n"
                   f"print(m(np.ones((4, 32), np.float32)).sum(), dt)")
    assert r.returncode == 0, r.stderr
    got, seconds = map(float, r.stdout.split())
    assert seconds <= 0.5
    with torch.no_grad():
        np.testing.assert_allclose(got, float(model(torch.ones(4, 32)).sum()), rtol=1e-4)
    r = run_cli("aoti", "info", path)
    assert r.returncode == 0, r.stderr
    assert "weights: 4 file(s) in the package under data/weights/" in r.stdout


@pytest.mark.parametrize("name", ["gpt2_block_decomposed", "groupnorm_silu", "embed_layernorm"])
def test_model_runs_clean_in_checked_mode(exported, name, tmp_path):
    """Checked mode (sanitizers) over a correct model.so: the same results, no report."""
    path, model, inputs, _ = exported(name)
    fresh = str(tmp_path / os.path.basename(path))  # a new load: the model creates its libraries again
    shutil.copy(path, fresh)
    shutil.copy(path + ".json", fresh + ".json")
    with mps_shim.checked() as c:
        got = aoti.load(fresh)(*[_numpy(x) for x in inputs])
    _compare(got, model, inputs)
    assert c.reports == []


def test_checked_mode_from_the_environment_reaches_a_model(exported, run_python, tmp_path):
    """MPS_SHIM_CHECKED=1 turns checked mode on for a model.so's libraries (reported by describe)."""
    path, _, inputs, _ = exported("mlp")
    np.save(tmp_path / "x.npy", _numpy(inputs[0]))
    code = f"""
import numpy as np, mps_shim
from mps_shim import aoti
assert mps_shim.checked_mode() == "on"
out = aoti.load({path!r})(np.load({str(tmp_path / "x.npy")!r}))
print("reports", len(mps_shim.take_check_reports()))
"""
    r = run_python(code, env={"MPS_SHIM_CHECKED": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "reports 0" in r.stdout
