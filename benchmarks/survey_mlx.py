"""Survey of MLX's Metal libraries: for each mlx/backend/metal/kernels/**/*.metal, create the
library lazily and get its first kernel (sorted by name), each file in a new process with a cold
kernel cache (its precompiled header ready), every function constant of the library set to 0
(MLX sets those its kernels read). Reports per file: kernels listed, create time, first
get time, peak memory (the Python process and, apart, its largest compiler process), or the first
error. Not a test: run it alone (it compiles one kernel of every file; memory is watched).

    python benchmarks/survey_mlx.py [--json out.json] [--only NAME ...]

Targets (issue 11): create_shader_library of binary.metal <= 2 s; first get_kernel_function <= 1 s.
MPS_SHIM_MLX_DIR names the MLX checkout (default /work/src/mlx).
"""
import argparse
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_library_compile import child, warm_cache  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import mps_shim
spec = json.loads(sys.stdin.read())
out = {}
def peaks():
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out["compiler_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
def first_error(e):
    lines = [l for l in str(e).splitlines() if l.strip()]
    where = next((l for l in lines if "error:" in l), lines[-1] if lines else "")
    return (lines[0][:160] + " | " + where[:300]) if lines else repr(e)
t0 = time.perf_counter()
try:
    lib = mps_shim.ShaderLibrary(open(spec["path"]).read(), spec["include_dirs"], eager=False)
except mps_shim.MpsShimError as e:
    out["error"] = "create: " + first_error(e)
    peaks()
    print(json.dumps(out))
    sys.exit(0)
out["create"] = time.perf_counter() - t0
out["kernels"] = len(lib.kernels)
if lib.kernels:
    name = sorted(lib.kernels)[0]
    out["kernel"] = name
    # MLX always sets the function constants its kernels read; unset here, they are all zero.
    zero = {c: 0 for c in lib.function_constants} or None
    if zero:
        out["constants"] = "zero"
    t0 = time.perf_counter()
    try:
        lib.get_kernel_function(name, zero)
        out["get"] = time.perf_counter() - t0
    except mps_shim.MpsShimError as e:
        out["error"] = "get: " + first_error(e)
peaks()
print(json.dumps(out))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--only", nargs="*", help="file names (without .metal) to survey")
    args = parser.parse_args()
    mlx = os.environ.get("MPS_SHIM_MLX_DIR", "/work/src/mlx")
    kernels = os.path.join(mlx, "mlx", "backend", "metal", "kernels")
    if not os.path.isdir(kernels):
        sys.exit(f"no MLX kernels at {kernels} (set MPS_SHIM_MLX_DIR)")
    files = sorted(glob.glob(os.path.join(kernels, "**", "*.metal"), recursive=True))
    if args.only:
        files = [f for f in files if os.path.basename(f)[:-len(".metal")] in args.only]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "cache")
        warm_cache(folder)
        for path in files:
            rel = os.path.relpath(path, kernels)
            r = child(folder, {"path": path, "include_dirs": [mlx]}, code=CHILD)
            results[rel] = r
            mem = f"rss {r.get('rss_mib', '?')} MiB, compiler {r.get('compiler_rss_mib', '?')} MiB"
            if "get" in r:
                zero = ", constants 0" if r.get("constants") else ""
                print(f"{rel:55s} ok    {r['kernels']:5d} kernels  create {r['create']:6.2f} s  "
                      f"first get {r['get']:6.2f} s  ({mem}{zero})", flush=True)
            else:
                timing = f"{r['kernels']:5d} kernels  create {r['create']:6.2f} s  " if "create" in r else ""
                print(f"{rel:55s} FAIL  {timing}({mem})\n    {r.get('error', r)}", flush=True)
    ok = [r for r in results.values() if "get" in r]
    print(f"\n{len(ok)} of {len(results)} files: library created and first kernel compiled")
    if ok:
        print(f"create: max {max(r['create'] for r in ok):.2f} s; first get: max {max(r['get'] for r in ok):.2f} s, "
              f"median {sorted(r['get'] for r in ok)[len(ok) // 2]:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
