"""The CUDA backend on a GPU: correctness of a few kernels against numpy, then element-wise
bandwidth against the device-to-device copy (cuMemcpyDtoD through aoti_torch_mps_copy_buffer)
in the same process, a row sum against torch.cuda where torch has CUDA, and the asynchronous
dispatch cost. Run with MPS_SHIM_BACKEND=cuda on a machine with an NVIDIA GPU."""
import os
import sys
import time

import numpy as np

os.environ.setdefault("MPS_SHIM_BACKEND", "cuda")
import mps_shim  # noqa: E402
from mps_shim import Tensor  # noqa: E402
from mps_shim._native import ffi, lib  # noqa: E402

ELEMENTWISE = r"""
#include <metal_stdlib>
using namespace metal;
kernel void add(device const float4* a [[buffer(0)]], device const float4* b [[buffer(1)]],
                device float4* c [[buffer(2)]], uint i [[thread_position_in_grid]]) { c[i] = a[i] + b[i]; }
kernel void fma4(device const float4* a [[buffer(0)]], device const float4* b [[buffer(1)]],
                 device float4* c [[buffer(2)]], uint i [[thread_position_in_grid]]) { c[i] = fma(a[i], b[i], c[i]); }
kernel void exp4(device const float4* a [[buffer(0)]], device float4* c [[buffer(1)]],
                 uint i [[thread_position_in_grid]]) { c[i] = exp(a[i]); }
kernel void row_sum(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                    constant uint& n [[buffer(2)]], uint g [[threadgroup_position_in_grid]],
                    uint t [[thread_position_in_threadgroup]], uint tg [[threads_per_threadgroup]],
                    uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]]) {
  threadgroup float part[32];
  float s = 0;
  device const float4* row = (device const float4*)(x + size_t(g) * n);
  for (uint j = t; j < n / 4; j += tg) { float4 v = row[j]; s += (v.x + v.y) + (v.z + v.w); }
  s = simd_sum(s);
  if (lane == 0) part[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    s = lane < (tg + 31) / 32 ? part[lane] : 0.0f;
    s = simd_sum(s);
    if (lane == 0) out[g] = s;
  }
}
kernel void touch(device int* out, constant long& v, uint i [[thread_position_in_grid]]) { out[i] = int(v); }
"""


def sync():
    mps_shim.check(lib.mps_shim_synchronize())


def timed(fn, repeat=10):
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    print("backend:", mps_shim.runtime_info().get("backend"), mps_shim.runtime_info().get("device"))
    lib_ = mps_shim.ShaderLibrary(ELEMENTWISE)
    n = int(os.environ.get("BENCH_N", 256 * 1024 * 1024))
    rng = np.random.default_rng(0)
    small = rng.standard_normal((3, 4096)).astype(np.float32)
    rng_copy = small.copy()
    out = np.zeros(3, np.float32)
    f = lib_.get_kernel_function("row_sum")

    def encode_rows(fn):
        fn.start_encoding()
        fn.set_arg_tensor(0, small)
        fn.set_arg_tensor(1, out)
        fn.set_arg_bytes(2, np.uint32(4096).tobytes())
        fn.dispatch([3 * 256], [256])
    f.run_command_block(encode_rows)
    print("row_sum matches numpy:", np.allclose(out, small.sum(1), rtol=1e-5), "; input intact:", np.array_equal(small, rng_copy))

    a, b, c = (Tensor.empty((n,), np.float32) for _ in range(3))
    host = rng.standard_normal(1 << 20).astype(np.float32)
    for t in (a, b, c):
        for off in range(0, n * 4, host.nbytes):
            mps_shim.check(lib.mps_shim_copy_to_device(ffi.cast("char*", t.data_ptr) + off, ffi.from_buffer(host),
                                                       min(host.nbytes, n * 4 - off)))

    def run(name, tensors):
        fn = lib_.get_kernel_function(name)

        def go():
            def encode(k):
                k.start_encoding()
                for i, t in enumerate(tensors):
                    k.set_arg_tensor(i, t)
                k.dispatch([n // 4], [256])
            fn.run_command_block(encode)
        return go

    def copy():
        mps_shim.check(lib.aoti_torch_mps_copy_buffer(ffi.cast("void*", a.data_ptr), ffi.cast("void*", c.data_ptr),
                                                      n * 4, 0, 0))
    t_copy = timed(copy)
    copy_gbs = 2 * n * 4 / t_copy / 1e9
    print(f"D2D copy: {copy_gbs:.0f} GB/s (read + write)")
    for name, tensors, streams in (("add", (a, b, c), 3), ("fma4", (a, b, c), 4), ("exp4", (a, c), 2)):
        t = timed(run(name, tensors))
        gbs = streams * n * 4 / t / 1e9
        print(f"{name}: {gbs:.0f} GB/s, {gbs / copy_gbs:.2f}x copy")
    check = c.numpy()[: 1 << 16]
    print("exp matches numpy:", np.allclose(check, np.exp(host[: 1 << 16]), rtol=2e-6))

    rows, cols = 16384, 4096
    x = Tensor.empty((rows * cols,), np.float32)
    sums = Tensor.empty((rows,), np.float32)
    rs = lib_.get_kernel_function("row_sum")

    def row_sum():
        def encode(k):
            k.start_encoding()
            k.set_arg_tensor(0, x)
            k.set_arg_tensor(1, sums)
            k.set_arg_bytes(2, np.uint32(cols).tobytes())
            k.dispatch([rows * 256], [256])
        rs.run_command_block(encode)
    t = timed(row_sum)
    print(f"row_sum {rows}x{cols}: {rows * cols * 4 / t / 1e9:.0f} GB/s")
    try:
        import torch
        if torch.cuda.is_available():
            tx = torch.randn(rows, cols, device="cuda")
            torch.cuda.synchronize()
            best = float("inf")
            for _ in range(10):
                t0 = time.perf_counter()
                tx.sum(1)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            print(f"torch row sum: {rows * cols * 4 / best / 1e9:.0f} GB/s; ours/torch {best / t:.2f}")
    except ImportError:
        pass

    inductor_vs_torch()

    touch = lib_.get_kernel_function("touch")
    one = Tensor.empty((1,), np.int32)
    count = 2000

    def many():
        for _ in range(count):
            def encode(k):
                k.start_encoding()
                k.set_arg_tensor(0, one)
                k.set_arg_int(1, 7)
                k.dispatch([1])
            touch.run_command_block(encode)
    t = timed(many, repeat=3)
    print(f"dispatch from Python (async, start_encoding + 2 args + dispatch): {t / count * 1e6:.1f} us")
    print("touch wrote:", one.numpy())


def on_device(array):
    """A device tensor holding a copy of `array`, with no host mirror: Tensor.from_numpy's would be copied
    back after every dispatch that binds it, which is what its users want and not what is timed here."""
    return Tensor.empty(array.shape, array.dtype).copy_(Tensor.from_numpy(array, device="cpu"))


def inductor_vs_torch(repeat=200):
    """Inductor's own Metal kernels (layer norm, RMS norm, int64 row sum; _inductor_kernels.py) on device
    tensors, checked against numpy, timed as `repeat` back-to-back dispatches against the same op in
    torch.cuda on the same shapes."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _inductor_kernels import Unavailable, bind_args, inductor_kernels
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    specs = inductor_kernels(["layer_norm", "rms_norm", "sum_int64"])
    rng = np.random.default_rng(5)
    for case, spec in specs.items():
        if isinstance(spec, Unavailable):
            print(f"Inductor {case}: skipped ({spec})")
            continue
        launch = spec["launches"][0]
        rows, cols = 1024, 4096
        if case == "sum_int64":
            x = rng.integers(-1000, 1000, (rows, cols), dtype=np.int64)
            out = np.zeros(rows, np.int64)
            extra, want = {}, x.sum(1)
        else:
            x = rng.standard_normal((rows, cols)).astype(np.float32)
            out = np.zeros_like(x)
            w, b = (rng.standard_normal(cols).astype(np.float32) for _ in range(2))
            if case == "layer_norm":
                xc = x - x.mean(1, keepdims=True)
                want = xc / np.sqrt((xc * xc).mean(1, keepdims=True) + 1e-5) * w + b
                extra = {"weight": on_device(w), "bias": on_device(b)}
            else:
                want = x / np.sqrt((x * x).mean(1, keepdims=True) + np.finfo(np.float32).eps) * w
                extra = {"weight": on_device(w)}
        tx, tout = on_device(x), on_device(out)
        args = bind_args(launch, {("input", 0): tx, ("output", 0): tout, **extra})
        kernel = getattr(mps_shim.compile_shader(spec["libraries"][launch["lib"]]), launch["kernel"])
        threads, group = tuple(launch["threads"]), launch["group_size"] and tuple(launch["group_size"])

        def ours():
            for _ in range(repeat):
                kernel(*args, threads=threads, group_size=group)
        t = timed(ours, repeat=3) / repeat
        got = tout.numpy()
        ok = np.array_equal(got, want) if case == "sum_int64" else np.allclose(got, want, rtol=1e-4, atol=1e-4)
        moved = x.nbytes + out.nbytes
        line = f"Inductor {case} {rows}x{cols}: {t * 1e6:.1f} us ({moved / t / 1e9:.0f} GB/s), matches numpy: {ok}"
        if have_torch:
            gx = torch.from_numpy(x).cuda()
            if case == "layer_norm":
                gw, gb = torch.from_numpy(w).cuda(), torch.from_numpy(b).cuda()
                op = lambda: torch.nn.functional.layer_norm(gx, (cols,), gw, gb, 1e-5)  # noqa: E731
            elif case == "rms_norm":
                gw = torch.from_numpy(w).cuda()
                op = lambda: torch.nn.functional.rms_norm(gx, (cols,), gw)  # noqa: E731
            else:
                op = lambda: gx.sum(1)  # noqa: E731
            best = float("inf")
            for _ in range(3):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(repeat):
                    op()
                torch.cuda.synchronize()
                best = min(best, (time.perf_counter() - t0) / repeat)
            line += f"; torch.cuda {best * 1e6:.1f} us; ours/torch speed {best / t:.2f}x"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
