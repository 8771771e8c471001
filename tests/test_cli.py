"""The mps-shim command line (python -m mps_shim.cli): kernels, run, info, demo, and error exits."""
import json
import os
import textwrap

import numpy as np
import pytest

KERNELS = textwrap.dedent("""\
    #include <metal_stdlib>
    using namespace metal;

    kernel void add_last(constant float* a, constant float* b, device float* out,
                         uint i [[thread_position_in_grid]]) {
        out[i] = a[i] + b[i];
    }

    [[max_total_threads_per_threadgroup(128)]]
    kernel void affine(device float* y, constant float* x, constant float& alpha, constant long& n,
                       uint i [[thread_position_in_grid]]) {
        if ((long)i < n) {
            y[i] = alpha * x[i] + y[i];
        }
    }

    kernel void where(device uint* gx, device uint* size_x, uint2 pos [[thread_position_in_grid]],
                      uint2 grid [[threads_per_grid]], uint2 tg [[threadgroup_position_in_grid]],
                      uint2 tptg [[threads_per_threadgroup]]) {
        gx[pos.y * grid.x + pos.x] = tg.x;
        size_x[pos.y * grid.x + pos.x] = tptg.x;
    }
""")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "kernels.metal").write_text(KERNELS)
    a = np.arange(10, dtype=np.float32)
    b = np.linspace(0, 1, 10, dtype=np.float32)
    np.save(d / "a.npy", a)
    np.save(d / "b.npy", b)
    return d


def test_kernels_lists_names_lines_and_bindings(run_cli, workdir):
    r = run_cli("kernels", workdir / "kernels.metal")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    heads = [ln for ln in lines if not ln.startswith(" ")]
    assert heads == [
        "add_last  (line 4, max 1024 threads per threadgroup, runs as independent)",
        "affine  (line 10, max 128 threads per threadgroup, runs as independent)",
        "where  (line 17, max 1024 threads per threadgroup, runs as independent)",
    ]
    body = r.stdout
    assert "buffer(2)" in body and "device float* out" in body
    affine = lines[lines.index(heads[1]) + 1:lines.index(heads[2])]
    assert [ln.split()[:2] for ln in affine] == [["buffer(0)", "buffer"], ["buffer(1)", "buffer"],
                                                 ["buffer(2)", "scalar"], ["buffer(3)", "scalar"],
                                                 ["[[thread_position_in_grid]]", "thread_position"]]


def test_kernels_on_a_bundled_example(run_cli, examples_dir):
    r = run_cli("kernels", os.path.join(examples_dir, "templates.metal"))
    assert r.returncode == 0, r.stderr
    assert [ln.split()[0] for ln in r.stdout.splitlines() if not ln.startswith(" ")] == [
        "clamp_scale_float", "clamp_scale_int"]


def test_run_with_options_after_the_file(run_cli, workdir):
    # The documented order: FILE --kernel NAME ARGS... -o INDEX=FILE
    out = workdir / "out_after.npy"
    r = run_cli("run", workdir / "kernels.metal", "--kernel", "add_last", "a.npy", "b.npy", "zeros:10:float32",
                "-o", f"2={out}", cwd=workdir)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out), np.load(workdir / "a.npy") + np.load(workdir / "b.npy"))


def test_run_with_options_first(run_cli, workdir):
    out = workdir / "out_first.npy"
    r = run_cli("run", "--kernel", "add_last", "-o", f"2={out}", workdir / "kernels.metal", "a.npy", "b.npy",
                "zeros:10:float32", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert f"wrote argument 2 (10,) float32 to {out}" in r.stdout
    np.testing.assert_array_equal(np.load(out), np.load(workdir / "a.npy") + np.load(workdir / "b.npy"))


def test_run_with_scalars_threads_and_group_size(run_cli, workdir):
    y = np.ones(1000, np.float32)
    x = np.arange(1000, dtype=np.float32)
    np.save(workdir / "y.npy", y)
    np.save(workdir / "x.npy", x)
    out = workdir / "y_out.npy"
    r = run_cli("run", "--kernel", "affine", "--threads", "1000", "--group-size", "96", "-o", f"0={out}",
                workdir / "kernels.metal", "y.npy", "x.npy", "float:0.5", "int:900", cwd=workdir)
    assert r.returncode == 0, r.stderr
    want = y.copy()
    want[:900] = 0.5 * x[:900] + 1
    np.testing.assert_array_equal(np.load(out), want)


def test_run_2d_grid_and_several_outputs(run_cli, workdir):
    gx, size = workdir / "gx.npy", workdir / "size.npy"
    r = run_cli("run", "--kernel", "where", "--threads", "21,5", "--group-size", "8,2", "-o", f"0={gx}",
                "-o", f"1={size}", workdir / "kernels.metal", "zeros:5x21:uint32", "zeros:5x21:uint32",
                cwd=workdir)
    assert r.returncode == 0, r.stderr
    xs = np.arange(21)
    np.testing.assert_array_equal(np.load(gx), np.broadcast_to(xs // 8, (5, 21)))
    np.testing.assert_array_equal(np.load(size), np.broadcast_to(np.minimum(8, 21 - xs // 8 * 8), (5, 21)))


def test_run_rejects_a_group_over_the_kernel_limit(run_cli, workdir):
    r = run_cli("run", "--kernel", "affine", "--threads", "1000", "--group-size", "256",
                workdir / "kernels.metal", "zeros:1000:float32", "zeros:1000:float32", "float:1", "int:1000",
                cwd=workdir)
    assert r.returncode == 1
    assert "mps-shim run:" in r.stderr and "128" in r.stderr


def test_info_json(run_cli, session_cache_dir):
    r = run_cli("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend"] == "host"
    assert info["cache_dir"] == session_cache_dir
    assert info["cache_disabled_reason"] == ""
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert {"version", "compiler", "compiler_version"} <= set(info)


def test_info_text(run_cli):
    r = run_cli("info", env={"MPS_SHIM_NUM_THREADS": "3"})
    assert r.returncode == 0, r.stderr
    fields = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines()}
    assert fields["backend"] == "host"
    assert fields["threads"] == "3"


def test_info_lists_registered_backends(run_cli):
    r = run_cli("info", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["backends"]["host"] == "available"
    r = run_cli("info")
    assert "host (available)" in r.stdout


def test_unknown_backend_names_the_registered_ones(run_cli):
    r = run_cli("info", env={"MPS_SHIM_BACKEND": "nope"})
    assert r.returncode == 1
    assert "MPS_SHIM_BACKEND=nope: no such backend (registered: cuda, host)" in r.stderr
    r = run_cli("info", env={"MPS_SHIM_BACKEND": "host"})
    assert r.returncode == 0, r.stderr


def test_demo(run_cli):
    r = run_cli("demo")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo: all kernels match numpy" in r.stdout
    assert "FAIL" not in r.stdout
    assert r.stdout.count("PASS") >= 9


def test_missing_file(run_cli, workdir):
    r = run_cli("kernels", workdir / "no-such-file.metal")
    assert r.returncode == 1
    assert "mps-shim kernels:" in r.stderr and "No such file" in r.stderr
    assert r.stdout == ""


def test_compile_error_exit(run_cli, workdir):
    bad = workdir / "bad.metal"
    bad.write_text("#include <metal_stdlib>\nusing namespace metal;\n"
                   "kernel void k(device float* o, uint i [[thread_position_in_grid]]) {\n  o[i] = nope;\n}\n")
    r = run_cli("kernels", bad)
    assert r.returncode == 1
    assert "library.metal:4:" in r.stderr and "nope" in r.stderr


def test_unknown_kernel(run_cli, workdir):
    r = run_cli("run", "--kernel", "nope", workdir / "kernels.metal", "a.npy", cwd=workdir)
    assert r.returncode == 1
    assert "no kernel named 'nope'" in r.stderr
    for name in ("add_last", "affine", "where"):
        assert name in r.stderr


def test_wrong_argument_count_and_bad_argument(run_cli, workdir):
    r = run_cli("run", "--kernel", "add_last", workdir / "kernels.metal", "a.npy", cwd=workdir)
    assert r.returncode == 1
    assert "takes 3 arguments" in r.stderr
    r = run_cli("run", "--kernel", "add_last", workdir / "kernels.metal", "a.npy", "b.npy", "what?", cwd=workdir)
    assert r.returncode == 1
    assert "cannot understand argument 'what?'" in r.stderr


def test_usage_errors(run_cli):
    r = run_cli()
    assert r.returncode == 2 and "usage" in r.stderr
    r = run_cli("run", "x.metal")  # --kernel is required
    assert r.returncode == 2 and "--kernel" in r.stderr


def test_kernels_says_how_each_kernel_runs_and_why_not_lane_loops(run_cli, tmp_path):
    src = tmp_path / "meet.metal"
    src.write_text("""#include <metal_stdlib>
using namespace metal;
kernel void split(device float* out, uint t [[thread_index_in_threadgroup]]) {
    threadgroup float cell[64];
    cell[t] = float(t);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = cell[63 - t];
}
kernel void spin(device atomic_int* flag, uint t [[thread_index_in_threadgroup]]) {
    while (atomic_load_explicit(flag, memory_order_relaxed) == 0) {}
}
""")
    r = run_cli("kernels", src)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert next(ln for ln in lines if ln.startswith("split ")).endswith("runs as lane loops)")
    spin = next(i for i, ln in enumerate(lines) if ln.startswith("spin "))
    assert lines[spin].endswith("runs as fibers)")
    assert lines[spin + 1].strip().startswith("on fibers because:") and "atomic_load_explicit" in lines[spin + 1]


def test_include_folders(run_cli, tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "tile.h").write_text("constant constexpr uint kTile = 16;\n")
    (tmp_path / "k.metal").write_text(textwrap.dedent("""\
        #include <metal_stdlib>
        #include <tile.h>
        using namespace metal;
        kernel void tiled(device float* out, uint i [[thread_index_in_threadgroup]]) {
            threadgroup float tile[kTile];
            tile[i] = i;
            threadgroup_barrier(mem_flags::mem_threadgroup);
            out[i] = tile[kTile - 1 - i];
        }
    """))
    r = run_cli("kernels", tmp_path / "k.metal")
    assert r.returncode != 0 and "tile.h" in r.stderr
    r = run_cli("kernels", "-I", tmp_path / "inc", tmp_path / "k.metal")
    assert r.returncode == 0, r.stderr
    assert "tiled  (line 4, max 1024 threads per threadgroup" in r.stdout
    r = run_cli("run", tmp_path / "k.metal", "--kernel", "tiled", "zeros:16", "--group-size", "16",
                "-I", tmp_path / "inc", "-o", f"0={tmp_path / 'out.npy'}")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "out.npy").tolist() == list(range(15, -1, -1))
