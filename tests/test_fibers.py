"""Threadgroup execution with fibers (csrc/backends/host/metal_include/host/mps_host_fibers.h).

tests/fibers/fiber_test.cpp is compiled with the system C++ compiler and run: it
checks barriers (tree reductions for 1..1024 threads, early returns), SIMD-group
functions on full, partial and early-returned SIMD-groups, barriers inside
helpers and loops, groups on two OS threads at once, and the progress guard.
tests/fibers/fiber_module.cpp is built the way the host engine builds kernel
modules and loaded twice into this process, to check that every module keeps
its own hidden copy of the fiber runtime. x86-64 and AArch64 Linux only.
"""
import ctypes
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
INCLUDE = os.path.join(REPO, "csrc", "backends", "host", "metal_include", "host")
FIBERS = os.path.join(HERE, "fibers")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"),
    reason="the fiber context switch exists for x86-64 and AArch64 Linux only")


def _cxx():
    cxx = shutil.which(os.environ.get("CXX", "c++"))
    if not cxx:
        pytest.skip("no C++ compiler on PATH")
    return cxx


def _compile(args, timeout=300):
    proc = subprocess.run([_cxx()] + args, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def fiber_test(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("fibers") / "fiber_test")
    _compile(["-std=gnu++17", "-O2", "-Wall", "-Werror", "-I", INCLUDE, os.path.join(FIBERS, "fiber_test.cpp"),
              "-o", exe, "-pthread"])
    return exe


def test_fiber_program(fiber_test):
    proc = subprocess.run([fiber_test], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout


def test_stack_overflow_hits_guard_page(fiber_test):
    proc = subprocess.run([fiber_test, "overflow"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stdout, proc.stderr)


def test_bench(fiber_test):
    proc = subprocess.run([fiber_test, "bench"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "ns per work-item per barrier" in proc.stdout and "ns per lane per simd_sum" in proc.stdout
    print(proc.stdout)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """Two kernel modules: A from two translation units (the header's COMDAT
    symbols must merge), B with its own context-switch symbol name."""
    out = tmp_path_factory.mktemp("fiber_modules")
    flags = ["-std=gnu++17", "-O3", "-march=native", "-fPIC", "-Wall", "-Werror", "-I", INCLUDE]
    src = os.path.join(FIBERS, "fiber_module.cpp")
    objs = []
    for part in (1, 2):
        obj = str(out / f"a{part}.o")
        _compile(flags + [f"-DMODULE_PART={part}", "-c", src, "-o", obj])
        objs.append(obj)
    mod_a = str(out / "mod_a.so")
    _compile(["-shared", "-o", mod_a] + objs)
    mod_b = str(out / "mod_b.so")
    _compile(flags + ["-shared", "-DMODULE_PART=1", "-DMPS_HOST_FIBER_SWITCH=mod_b_fiber_switch", src, "-o", mod_b])
    return mod_a, mod_b


def _load(path):
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)  # global: clashes would show
    for name in ("fm_reduce1", "fm_reduce2"):
        if hasattr(lib, name):
            getattr(lib, name).restype = ctypes.c_longlong
            getattr(lib, name).argtypes = [ctypes.c_uint, ctypes.c_uint]
    for name in ("fm_bench_barrier1", "fm_bench_simd_sum1"):
        getattr(lib, name).restype = ctypes.c_double
        getattr(lib, name).argtypes = [ctypes.c_uint, ctypes.c_uint]
    return lib


def test_modules_export_nothing_of_the_runtime(modules):
    nm = shutil.which("nm")
    if not nm:
        pytest.skip("no nm")
    for path in modules:
        dyn = subprocess.run([nm, "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
        exported = [line.split()[-1] for line in dyn.splitlines() if line.strip()]
        leaked = [s for s in exported if "fiber" in s or "mps_host" in s or "_ZN8mps_host" in s]
        assert not leaked, leaked
    full = subprocess.run([nm, modules[0]], capture_output=True, text=True, check=True).stdout
    assert full.count(" mps_host_fiber_switch\n") == 1, "the two translation units' copies were not merged"


def test_two_modules_in_one_process(modules):
    mod_a, mod_b = (_load(p) for p in modules)
    for n in (2, 33, 256, 1024):
        want = n * (n - 1) // 2
        assert mod_a.fm_reduce1(n, 3) == want
        assert mod_a.fm_reduce2(n, 3) == want
        assert mod_b.fm_reduce1(n, 3) == want
    # Both modules at once on several OS threads (ctypes drops the GIL).
    results = []

    def work(fn, n):
        results.append((fn(n, 50), n * (n - 1) // 2))

    threads = [threading.Thread(target=work, args=(fn, n))
               for fn, n in ((mod_a.fm_reduce1, 1024), (mod_b.fm_reduce1, 1000), (mod_a.fm_reduce2, 77),
                             (mod_b.fm_reduce1, 256))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(got == want for got, want in results), results


def test_module_bench(modules):
    mod_a = _load(modules[0])
    barrier = mod_a.fm_bench_barrier1(256, 1000)
    simd = mod_a.fm_bench_simd_sum1(256, 1000)
    print(f"in a -fPIC module: {barrier:.2f} ns per work-item per barrier, {simd:.2f} ns per lane per simd_sum")
    assert 0 < barrier < 10000 and 0 < simd < 10000
