"""Cold compile of a 50-line kernel library, and a cache hit in a fresh process.

Each measurement runs in a new Python process (so nothing is cached in
memory) and times create_shader_library + get_kernel_function inside it.
"First compile in an empty cache" parses the metal_stdlib header and starts
precompiling it in the background (once per cache folder and compiler);
"cold compile" is a source never seen before, in a cache folder that has the
precompiled header.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

struct Params {
    float scale;
    float bias;
    long n;
};

inline float activate(float x, float slope) {
    return x > 0.0 ? x : x * slope;
}

inline float smooth(float x) {
    return x / (1.0 + metal::abs(x));
}

kernel void affine(device float* out, constant float* in, constant Params& p,
                   uint i [[thread_position_in_grid]]) {
    if (i >= p.n) {
        return;
    }
    out[i] = in[i] * p.scale + p.bias;
}

kernel void leaky(device float* out, constant float* in, constant float& slope,
                  uint i [[thread_position_in_grid]]) {
    out[i] = activate(in[i], slope);
}

kernel void softsign(device float* out, constant float* in, uint i [[thread_position_in_grid]]) {
    out[i] = smooth(in[i]);
}

template <typename T>
kernel void axpby(device T* y, constant T* x, constant T& a, constant T& b,
                  uint i [[thread_position_in_grid]]) {
    y[i] = a * x[i] + b * y[i];
}

#define INSTANTIATE(T) \
    template [[host_name("axpby_" #T)]] kernel void axpby<T>( \
        device T*, constant T*, constant T&, constant T&, uint);
INSTANTIATE(float)
INSTANTIATE(int)

kernel void blend2d(device float* out, constant float* a, constant float* b, constant long& cols,
                    uint2 pos [[thread_position_in_grid]]) {
    const long idx = pos.y * cols + pos.x;
    out[idx] = metal::precise::sqrt(a[idx] * a[idx] + b[idx] * b[idx]);
}
"""

CHILD = r"""
import json, sys, time
import mps_shim
src = sys.stdin.read()
t0 = time.perf_counter()
lib = mps_shim.ShaderLibrary(src)
fn = lib.get_kernel_function(lib.kernel_names[0])
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def timed_child(cache_dir, salt="", source=SOURCE, **env_extra):
    env = dict(os.environ, MPS_SHIM_CACHE_DIR=cache_dir, **env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], input=source + salt, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["seconds"]


def wait_for_precompiled_header(folder, timeout=60):
    """The header is precompiled in the background after the first compile; cold compiles are timed with it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if glob.glob(os.path.join(folder, "include-*", "mps_host_metal.h.gch")):
            return
        time.sleep(0.2)


# Many short SIMD statements (ggml's DeepSeek-V4 "hc comb" shape, as in
# tests/test_lane_loops_compile.py): ~30 lane-loop passes, 13 of them replayed.
SIMD_STATEMENTS = r"""
#include <metal_stdlib>
using namespace metal;
kernel void mix4(device float* out, constant float* w, constant float* bias, constant int& rows,
                 constant int& rounds, constant float& eps,
                 uint2 gpos [[threadgroup_position_in_grid]], ushort lane [[thread_index_in_simdgroup]],
                 ushort sg [[simdgroup_index_in_threadgroup]], ushort2 gsize [[threads_per_threadgroup]]) {
    const int row = gpos.x * gsize.y + sg;
    if (row >= rows) return;
    float k = 0.0f;
    if (lane == 0) k = w[row * 17 + 16];
    const float scale = simd_shuffle(k, 0);
    float v = 0.0f;
    if (lane < 16) v = w[row * 17 + lane] * scale + bias[lane];
    float m = max(v, simd_shuffle_xor(v, 1));
    m = max(m, simd_shuffle_xor(m, 2));
    v = exp(v - m);
    float s = v + simd_shuffle_xor(v, 1);
    s += simd_shuffle_xor(s, 2);
    v = v / s + eps;
    s = v + simd_shuffle_xor(v, 4);
    s += simd_shuffle_xor(s, 8);
    v /= s + eps;
    for (int r = 1; r < rounds; ++r) {
        s = v + simd_shuffle_xor(v, 1);
        s += simd_shuffle_xor(s, 2);
        v /= s + eps;
        s = v + simd_shuffle_xor(v, 4);
        s += simd_shuffle_xor(s, 8);
        v /= s + eps;
    }
    if (lane < 16) out[row * 16 + (lane & 3) * 4 + (lane >> 2)] = v;
}
"""


def c10_source():
    """A kernel embedding c10/metal/utils.h and special_math.h as Inductor does (None without torch)."""
    try:
        import importlib.util
        from pathlib import Path

        from torch.utils._cpp_embed_headers import _embed_headers
    except ImportError:
        return None
    include = Path(list(importlib.util.find_spec("torch").submodule_search_locations)[0]) / "include"
    headers = _embed_headers(["#include <c10/metal/utils.h>\n", "#include <c10/metal/special_math.h>\n"], [include], set())
    return headers + """
kernel void affine(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    out[i] = c10::metal::erfinv(x[i]) + c10::metal::digamma(x[i] + 1.0f);
}
"""


def main():
    print(f"kernel source: {len(SOURCE.strip().splitlines())} lines")
    firsts, colds, hits = [], [], []
    for round_ in range(3):
        with tempfile.TemporaryDirectory() as cache:
            folder = os.path.join(cache, "c")
            firsts.append(timed_child(folder))
            wait_for_precompiled_header(folder)
            hits += [timed_child(folder) for _ in range(3)]
            colds += [timed_child(folder, f"// variant {round_}-{i}\n") for i in range(2)]

    def show(label, values):
        values = sorted(values)
        print(f"{label:<40} best {values[0] * 1e3:8.1f} ms   median {values[len(values) // 2] * 1e3:8.1f} ms")

    show("first compile in an empty cache:", firsts)
    show("cold compile (new source, warm cache):", colds)
    show("cache hit in a new process:", hits)

    print("kernel of 13 SIMD statements (lane loops: ~30 passes):")
    with tempfile.TemporaryDirectory() as cache:
        folder = os.path.join(cache, "c")
        timed_child(folder)
        wait_for_precompiled_header(folder)
        for label, lanes in [("lane loops", "1"), ("fibers", "0")]:
            show(f"  cold compile, {label} (warm cache):",
                 [timed_child(folder, f"// {i}\n", SIMD_STATEMENTS, MPS_SHIM_LANE_LOOPS=lanes) for i in range(3)])

    c10 = c10_source()
    if c10 is None:
        print("c10/metal headers: skipped (torch is not installed)")
        return
    print(f"kernel embedding c10/metal utils.h + special_math.h: {len(c10.splitlines())} lines")
    with tempfile.TemporaryDirectory() as cache:
        folder = os.path.join(cache, "c")
        timed_child(folder)
        wait_for_precompiled_header(folder)
        show("  cold compile (warm cache):", [timed_child(folder, f"// {i}\n", c10) for i in range(3)])
        show("  cache hit in a new process:", [timed_child(folder, "// 0\n", c10) for _ in range(3)])


if __name__ == "__main__":
    main()
