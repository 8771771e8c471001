"""Kernels compiled on first use: creating a library parses it and lists its kernels; each kernel
compiles at its first get_kernel_function, into a module of its own (other kernels' bodies left
out), cached on disk; compile_all builds the rest, one module per worker thread; small libraries
compile at creation unless told otherwise (MPS_SHIM_EAGER, eager=); errors only the C++ compiler
finds surface at the first get; requests from several threads compile each kernel once.
"""
import os
import threading

import numpy as np
import pytest

import mps_shim
from mps_shim import CompileError, ShaderLibrary, compile_shader

# Its libraries hold a kernel that does not compile on purpose, whose error belongs to the first get;
# the CUDA compile check would compile every kernel at creation.
pytestmark = pytest.mark.no_cuda_check(reason="a kernel that does not compile, on purpose, in lazy libraries")

SOURCE = r"""#include <metal_stdlib>
using namespace metal;

template <typename T>
kernel void scale(device T* out, constant T* x, constant T& by, uint i [[thread_position_in_grid]]) {
    out[i] = x[i] * by;
}
template [[host_name("scale_float")]] kernel void scale<float>(device float*, constant float*, constant float&, uint);
template [[host_name("scale_int")]] kernel void scale<int>(device int*, constant int*, constant int&, uint);

kernel void group_sum(device float* out, constant float* x, uint t [[thread_position_in_threadgroup]],
                      uint g [[threadgroup_position_in_grid]], uint n [[threads_per_threadgroup]]) {
    threadgroup float cell[64];
    cell[t] = x[g * n + t];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = n / 2; s > 0; s /= 2) {
        if (t < s) cell[t] += cell[t + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (t == 0) out[g] = cell[0];
}

kernel void broken(device float* out, uint i [[thread_position_in_grid]]) {
    out[i] = undeclared_name;
}
"""

GOOD = SOURCE[:SOURCE.index("kernel void broken")]


def test_a_lazy_library_lists_its_kernels_before_compiling():
    lib = ShaderLibrary(SOURCE, eager=False)  # `broken` would fail now if anything compiled
    assert lib.kernel_names == ["broken", "group_sum", "scale_float", "scale_int"]
    info = lib.kernels["scale_int"]
    assert info["compiled"] is False and info["execution"] == "independent" and info["line"] == 9
    assert [(p["name"], p["kind"], p["binding"], p["space"]) for p in info["params"]] == [
        ("out", "buffer", 0, "device"), ("x", "buffer", 1, "constant"), ("by", "scalar", 2, "constant"),
        ("i", "thread_position", -1, "")]
    assert [(p["reference"], p["writable"], p["size"]) for p in info["params"][:3]] == [(0, 1, 0), (0, 0, 0), (1, 0, 0)]
    assert lib.kernels["group_sum"]["execution"] == "undecided"
    assert lib.kernels["group_sum"]["threadgroup_memory"] == 256


def test_the_first_get_compiles_that_kernel_only():
    lib = ShaderLibrary(SOURCE, eager=False)
    fn = lib.get_kernel_function("scale_int")
    assert fn.info["compiled"] is True and [p["size"] for p in fn.params[:3]] == [4, 4, 4]
    assert lib.kernels["scale_int"]["compiled"] and not lib.kernels["scale_float"]["compiled"]
    x = np.arange(10, dtype=np.int32)
    out = np.zeros_like(x)

    def encode(k):
        k.start_encoding()
        k.set_arg_tensor(0, out)
        k.set_arg_tensor(1, x)
        k.set_arg_bytes(2, np.int32(3).tobytes())
        k.dispatch(10)

    fn.run_command_block(encode)
    assert np.array_equal(out, x * 3)
    assert lib.get_kernel_function("scale_int") is fn


def test_a_kernel_that_waits_decides_its_engine_when_it_compiles():
    lib = compile_shader(SOURCE, eager=False)
    x = np.arange(256, dtype=np.float32)
    out = np.zeros(4, np.float32)
    lib.group_sum(out, x, threads=256, group_size=64)
    assert np.array_equal(out, x.reshape(4, 64).sum(axis=1))
    assert lib.library.kernels["group_sum"]["execution"] == "lane_loops"


def test_errors_only_the_compiler_finds_surface_at_the_first_get():
    lib = ShaderLibrary(SOURCE, eager=False)
    lib.get_kernel_function("scale_float")  # another kernel's error does not concern it
    line = SOURCE[:SOURCE.index("undeclared_name")].count("\n") + 1
    with pytest.raises(CompileError, match=rf"library.metal:{line}:\d+: error: .undeclared_name. was not declared"):
        lib.get_kernel_function("broken")
    with pytest.raises(CompileError, match="undeclared_name"):  # not cached: asked again, it fails again
        lib.get_kernel_function("broken")
    with pytest.raises(CompileError, match="undeclared_name"):
        ShaderLibrary(SOURCE, eager=True)
    with pytest.raises(CompileError, match="undeclared_name"):
        ShaderLibrary(SOURCE)  # a small library compiles at creation, as PyTorch's does


def test_front_end_errors_still_fail_at_creation():
    with pytest.raises(CompileError, match="two kernels share the host name 'scale_float'"):
        ShaderLibrary(SOURCE + 'template [[host_name("scale_float")]] kernel void scale<uint>('
                               'device uint*, constant uint*, constant uint&, uint);\n', eager=False)


def test_compile_all_compiles_every_kernel():
    lib = ShaderLibrary(GOOD, eager=False)
    lib.get_kernel_function("scale_float")
    lib.compile_all()
    assert all(k["compiled"] for k in lib.kernels.values())
    with pytest.raises(CompileError, match="undeclared_name"):
        ShaderLibrary(SOURCE, eager=False).compile_all()


def test_requests_from_several_threads_compile_each_kernel_once():
    lib = ShaderLibrary(GOOD.replace("scale", "twice"), eager=False)
    names = ["twice_float", "twice_int", "group_sum"] * 4
    got, errors = [None] * len(names), []

    def get(i):
        try:
            got[i] = lib.get_kernel_function(names[i])._handle
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name in set(names):
        assert len({got[i] for i in range(len(names)) if names[i] == name}) == 1


def many_kernels(n):
    """A library of n instantiations of one template (more than Auto compiles at creation)."""
    lines = ["#include <metal_stdlib>", "using namespace metal;",
             "template <int K> kernel void add_k(device int* out, uint i [[thread_position_in_grid]]) {",
             "    out[i] = int(i) + K;", "}"]
    lines += [f'template [[host_name("add_{k}")]] kernel void add_k<{k}>(device int*, uint);' for k in range(n)]
    return "\n".join(lines) + "\n"


def test_large_libraries_compile_kernel_by_kernel():
    lib = ShaderLibrary(many_kernels(200))
    assert not any(k["compiled"] for k in lib.kernels.values())
    out = np.zeros(3, np.int32)
    compile_shader(many_kernels(200)).add_117(out)
    assert out.tolist() == [117, 118, 119]


CHILD = """
import glob, os, sys, mps_shim

source = open(sys.argv[1]).read() if len(sys.argv) > 1 else open(os.environ["SOURCE_FILE"]).read()
lib = mps_shim.ShaderLibrary(source, eager={eager})
{action}
print(sorted(os.path.basename(p) for p in glob.glob(os.path.join(os.environ["KEEP"], "*.cpp"))))
"""


def run_child(run_python, tmp_path, source, eager, action, **env):
    (tmp_path / "source.metal").write_text(source)
    keep = tmp_path / "keep"
    keep.mkdir(exist_ok=True)
    env = {"MPS_SHIM_CACHE_DIR": str(tmp_path / "cache"), "MPS_SHIM_KEEP_CXX": str(keep) + "/", "KEEP": str(keep),
           "SOURCE_FILE": str(tmp_path / "source.metal"), **env}
    r = run_python(CHILD.format(eager=eager, action=action), env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip().splitlines()[-1]), [n for n in os.listdir(tmp_path / "cache") if n.endswith(".so")]


def test_a_kernel_module_holds_that_kernel_and_is_cached(run_python, tmp_path):
    kept, modules = run_child(run_python, tmp_path, SOURCE, False, 'lib.get_kernel_function("scale_int")')
    assert len(kept) == 1 and kept[0].endswith(".scale_int.cpp") and len(modules) == 1
    cpp = (tmp_path / "keep" / kept[0]).read_text()
    assert cpp.count("extern \"C\" void mps_shim_entry_") == 1 and "scale<int>" in cpp
    assert "undeclared_name" not in cpp  # the other kernels' bodies are left out
    assert "cell[t] += cell[t + s]" not in cpp
    (tmp_path / "keep" / kept[0]).unlink()
    kept, again = run_child(run_python, tmp_path, SOURCE, False, 'lib.get_kernel_function("scale_int")')
    assert kept == [] and again == modules  # found in the cache


def test_compile_all_builds_one_module_per_worker_thread(run_python, tmp_path):
    source = many_kernels(40)
    kept, modules = run_child(run_python, tmp_path, source, True, "", MPS_SHIM_NUM_THREADS="2")
    assert len(kept) == 2 and all(".part" in k for k in kept) and len(modules) == 2
    kept_after, modules_after = run_child(run_python, tmp_path, source, False,
                                          'import numpy as np; lib.compile_all(); assert all(k["compiled"] for k in '
                                          'lib.kernels.values())', MPS_SHIM_NUM_THREADS="2")
    assert kept_after == kept and sorted(modules_after) == sorted(modules)  # the same parts, from the cache


def test_a_small_library_compiles_whole_at_creation(run_python, tmp_path):
    kept, modules = run_child(run_python, tmp_path, GOOD, None, "")
    assert len(kept) == 1 and len(kept[0]) == len("0123456789abcdef.cpp") and len(modules) == 1
    assert open(tmp_path / "keep" / kept[0]).read().count('extern "C" void mps_shim_entry_') == 3
    # A lazy library of the same source takes its kernels from that module.
    (tmp_path / "keep" / kept[0]).unlink()
    kept, again = run_child(run_python, tmp_path, GOOD, False, 'lib.get_kernel_function("group_sum")')
    assert kept == [] and again == modules


def test_mps_shim_eager_sets_the_default(run_python, tmp_path):
    code = "import mps_shim\nlib = mps_shim.compile_shader({!r})\nprint('created')\n"
    r = run_python(code.format("Syntax error"), env={"MPS_SHIM_EAGER": "0", "MPS_SHIM_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0 and "created" in r.stdout, r.stderr
    r = run_python(code.format(many_kernels(100).replace("int(i)", "nope(i)")),
                   env={"MPS_SHIM_EAGER": "1", "MPS_SHIM_CACHE_DIR": str(tmp_path / "cache")}, timeout=300)
    assert r.returncode != 0 and "CompileError" in r.stderr and "nope" in r.stderr
