"""Cold compile of a 50-line kernel library, and a cache hit in a fresh process.

Each measurement runs in a new Python process (so nothing is cached in
memory) and times create_shader_library + get_kernel_function inside it.
"First compile in an empty cache" includes building the cache folder's
precompiled metal_stdlib header (once per cache folder and compiler); "cold
compile" is a source never seen before, in a cache folder that has it.
"""
import json
import os
import subprocess
import sys
import tempfile

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
fn = lib.get_kernel_function("affine")
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def timed_child(cache_dir, salt=""):
    env = dict(os.environ, MPS_SHIM_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD], input=SOURCE + salt, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["seconds"]


def main():
    print(f"kernel source: {len(SOURCE.strip().splitlines())} lines")
    firsts, colds, hits = [], [], []
    for round_ in range(3):
        with tempfile.TemporaryDirectory() as cache:
            folder = os.path.join(cache, "c")
            firsts.append(timed_child(folder))
            hits += [timed_child(folder) for _ in range(3)]
            colds += [timed_child(folder, f"// variant {round_}-{i}\n") for i in range(2)]

    def show(label, values):
        values = sorted(values)
        print(f"{label:<40} best {values[0] * 1e3:8.1f} ms   median {values[len(values) // 2] * 1e3:8.1f} ms")

    show("first compile in an empty cache:", firsts)
    show("cold compile (new source, warm cache):", colds)
    show("cache hit in a new process:", hits)


if __name__ == "__main__":
    main()
