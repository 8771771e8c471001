"""Big libraries: creating one (preprocess + parse + list its kernels), the first
get_kernel_function of a kernel (it alone is compiled), a cache hit in a new
process, and compiling the whole library at once (compile_all: one module per
worker thread).

Libraries measured:
- a generated library of many template instantiations of our own (the shape of
  MLX's binary.metal: a few templates, hundreds of host names);
- MLX's binary.metal and arange.metal, and ggml's ggml-metal.metal, when their
  sources are present: MPS_SHIM_MLX_DIR (default /work/src/mlx) and
  MPS_SHIM_GGML_DIR (default /work/src/ggml); a library that does not compile
  yet is reported with its first error and skipped.

Each measurement runs in a new Python process (nothing cached in memory), in a
cache folder whose precompiled header is ready (cold compiles of new sources).
Targets (issue 11): create <= 2 s, first get <= 1 s per kernel, ggml whole
<= 120 s on 2 cores.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
import mps_shim
spec = json.loads(sys.stdin.read())
source = open(spec["path"]).read() if spec.get("path") else spec["source"]
out = {}
t0 = time.perf_counter()
try:
    lib = mps_shim.ShaderLibrary(source, spec.get("include_dirs", ()), eager=spec.get("eager"))
except mps_shim.CompileError as e:
    print(json.dumps({"error": str(e).splitlines()[0][:300] + " | " + " ".join(str(e).splitlines()[1:3])[:300]}))
    sys.exit(0)
out["create"] = time.perf_counter() - t0
out["kernels"] = len(lib.kernels)
out["compiled"] = sum(k["compiled"] for k in lib.kernels.values())
names = sorted(lib.kernels)
for pick in spec.get("get", []):
    name = names[int(pick * (len(names) - 1))]
    t0 = time.perf_counter()
    try:
        lib.get_kernel_function(name)
        out.setdefault("gets", []).append([name, time.perf_counter() - t0])
    except mps_shim.MpsShimError as e:
        out.setdefault("gets", []).append([name, "error: " + str(e).splitlines()[-1][:200]])
if spec.get("compile_all"):
    t0 = time.perf_counter()
    try:
        lib.compile_all()
        out["compile_all"] = time.perf_counter() - t0
    except mps_shim.MpsShimError as e:
        out["compile_all"] = "error: " + " ".join(str(e).splitlines()[:3])[:300]
print(json.dumps(out))
"""


def child(cache_dir, spec, code=CHILD, **env):
    """Runs `code` in a new Python process with `spec` on its stdin; its last stdout line, as JSON."""
    env = dict(os.environ, MPS_SHIM_CACHE_DIR=cache_dir, **env)
    r = subprocess.run([sys.executable, "-c", code], input=json.dumps(spec), env=env, capture_output=True, text=True,
                       timeout=1800)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def warm_cache(folder):
    """A cache folder whose precompiled header is ready."""
    child(folder, {"source": "kernel void warm(device int* o, uint i [[thread_position_in_grid]]) { o[i] = 1; }\n"})
    deadline = time.time() + 120
    while time.time() < deadline and not glob.glob(os.path.join(folder, "include-*", "mps_host_metal.h.gch")):
        time.sleep(0.2)


def generated_library(types=12, ops=10, variants=4, salt=""):
    """MLX binary.metal's shape: binary ops x types x indexing variants, instantiated by macros.

    (No `x < y ? T(1) : T(0)` on half: g++ 12 with -march=native on AVX512-FP16 emits a masked
    vmovsh that binutils 2.40 rejects.)"""
    scalar = ["float", "half", "bfloat", "int", "uint", "short", "ushort", "char", "uchar", "long", "ulong", "bool"]
    op_bodies = {"Add": "x + y", "Sub": "x - y", "Mul": "x * y", "Min": "x < y ? x : y", "Max": "x > y ? x : y",
                 "Eq": "x == y ? T(1) : T(0)", "Dif": "x > y ? x - y : y - x", "Avg": "(x + y) / T(2)",
                 "Sq": "(x - y) * (x - y)", "Fma": "x * y + x"}
    lines = ["#include <metal_stdlib>", "using namespace metal;", f"// {salt}"]
    for op, body in list(op_bodies.items())[:ops]:
        lines += [f"struct {op} {{ template <typename T> T operator()(T x, T y) const {{ return {body}; }} }};"]
    lines += [
        "template <typename T, typename Op, int V>",
        "kernel void binary(device const T* a, device const T* b, device T* out, constant uint& n,",
        "                   uint i [[thread_position_in_grid]]) {",
        "    if (V == 0) { out[i] = Op()(a[0], b[0]); return; }",
        "    if (V == 1) { out[i] = Op()(a[0], b[i]); return; }",
        "    if (V == 2) { out[i] = Op()(a[i], b[0]); return; }",
        "    for (uint k = i; k < n; k += 1u << 20) out[k] = Op()(a[k], b[k]);",
        "}",
        "#define INSTANTIATE(op, tname, T, V) \\",
        '  template [[host_name("binary_" #op "_" #tname "_" #V)]] [[kernel]] decltype(binary<T, op, V>) binary<T, op, V>;',
    ]
    for op in list(op_bodies)[:ops]:
        for t in scalar[:types]:
            for v in range(variants):
                lines.append(f"INSTANTIATE({op}, {t}, {t}, {v})")
    return "\n".join(lines) + "\n"


def show(label, result, per_get=True):
    if "error" in result:
        print(f"  {label}: does not compile yet: {result['error']}")
        return False
    print(f"  {label}: {result['kernels']} kernels, create {result['create']:.3f} s"
          + (f" ({result['compiled']} compiled at creation)" if result["compiled"] else ""))
    for name, seconds in result.get("gets", []) if per_get else []:
        print(f"    first get of {name}: " + (f"{seconds:.3f} s" if isinstance(seconds, float) else seconds))
    if "compile_all" in result:
        value = result["compile_all"]
        print("    compile_all: " + (f"{value:.1f} s" if isinstance(value, float) else value))
    return True


def main():
    threads = os.environ.get("MPS_SHIM_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    print(f"worker threads: {threads}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "cache")
        warm_cache(folder)

        print("generated library (binary ops x types x variants):")
        source = generated_library()
        show("lazy, cold", child(folder, {"source": source, "eager": False, "get": [0.0, 0.5, 1.0]}))
        show("lazy, same kernels again (cache hits)", child(folder, {"source": source, "eager": False,
                                                                     "get": [0.0, 0.5, 1.0]}))
        small = generated_library(types=4, ops=5, variants=4, salt="eager")
        show("whole library at once (compile_all), cold", child(folder, {"source": small, "eager": False,
                                                                          "compile_all": True}))

        mlx = os.environ.get("MPS_SHIM_MLX_DIR", "/work/src/mlx")
        kernels = os.path.join(mlx, "mlx", "backend", "metal", "kernels")
        if os.path.isdir(kernels):
            print(f"MLX ({mlx}):")
            for name, spec in [("binary.metal", {"eager": False, "get": [0.0, 0.5, 1.0]}),
                               ("arange.metal", {"eager": False, "compile_all": True})]:
                show(name, child(folder, dict(spec, path=os.path.join(kernels, name), include_dirs=[mlx])))
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "mps_shim.cli", "kernels", "-I", mlx,
                                os.path.join(kernels, "binary.metal")], capture_output=True, text=True,
                               env=dict(os.environ, MPS_SHIM_CACHE_DIR=folder))
            status = "" if r.returncode == 0 else f" (failed: {r.stderr.strip().splitlines()[-1][:200]})"
            print(f"  mps-shim kernels binary.metal: {time.perf_counter() - t0:.2f} s{status}")
        else:
            print(f"MLX: skipped ({kernels} not found; set MPS_SHIM_MLX_DIR)")

        ggml = os.environ.get("MPS_SHIM_GGML_DIR", "/work/src/ggml")
        metal = os.path.join(ggml, "src", "ggml-metal")
        if os.path.isdir(metal):
            print(f"ggml ({ggml}):")
            show("ggml-metal.metal, eager (compile_all)",
                 child(folder, {"path": os.path.join(metal, "ggml-metal.metal"),
                                "include_dirs": [metal, os.path.join(ggml, "src")], "eager": False, "compile_all": True}))
        else:
            print(f"ggml: skipped ({metal} not found; set MPS_SHIM_GGML_DIR)")


if __name__ == "__main__":
    main()
