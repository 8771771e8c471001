"""Dispatch round trip through the C ABI, and the same from Python.

Builds dispatch_roundtrip.c against the installed header and library, runs it,
then times the equivalent Python call (compile_shader kernel call) in-process.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import mps_shim

HERE = os.path.dirname(os.path.abspath(__file__))


def c_round_trip():
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "roundtrip")
        libdir = os.path.dirname(mps_shim.library_path())
        subprocess.run(["cc", "-O2", "-std=c99", f"-I{mps_shim.include_dir()}", os.path.join(HERE, "dispatch_roundtrip.c"),
                        f"-L{libdir}", "-lmps_shim", f"-Wl,-rpath,{libdir}", "-o", exe], check=True)
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout.strip()


def python_round_trip(iterations=20000):
    lib = mps_shim.compile_shader(
        "kernel void touch(device int* out, constant long& v, uint i [[thread_position_in_grid]]) { out[i] = int(v); }")
    out = np.zeros(1, np.int32)
    t = mps_shim.Tensor.from_numpy(out)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(iterations):
            lib.touch(t, i, threads=1)
        best = min(best, (time.perf_counter() - t0) / iterations)
    assert out[0] == iterations - 1
    return best


if __name__ == "__main__":
    print("C ABI", c_round_trip())
    print(f"Python compile_shader call round trip: {python_round_trip() * 1e6:.2f} us")
    sys.exit(0)
