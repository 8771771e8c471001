"""Constructs of hand-written Metal libraries (MLX, ggml), each in a small kernel of our own."""
import numpy as np
import pytest

import mps_shim


def test_members_of_different_class_specialisations_are_not_overloads():
    # MLX's utils.h: LoopedElemToLoc<1, T, true>::next and LoopedElemToLoc<1, T, false>::next
    # differ in body and take `constant` pointers; they belong to different classes.
    lib = mps_shim.compile_shader("""
    template <int N, bool B> struct Step;
    template <int N> struct Step<N, true> {
        int v{0};
        void next(const constant int* s) thread { v += s[0]; }
    };
    template <int N> struct Step<N, false> {
        int v{0};
        void next(const constant int* s) thread { v += 2 * s[1]; }
    };
    kernel void steps(device int* out, constant int* s, uint i [[thread_position_in_grid]]) {
        Step<1, true> a;
        Step<1, false> b;
        a.next(s);
        b.next(s);
        out[i] = a.v * 100 + b.v;
    }
    """)
    out = np.zeros(2, np.int32)
    lib.steps(out, np.array([3, 4], np.int32))
    assert out.tolist() == [308, 308]


MAX_THREADS = """
#include <metal_stdlib>
using namespace metal;
#define BLOCK 64
namespace ns {
constant constexpr int kWidth = 2;
template <typename T, int WM, int WN>
[[kernel, max_total_threads_per_threadgroup(WM * WN * 32)]] void fill(device T* out, uint i [[thread_position_in_grid]]) {
    out[i] = T(WM * WN);
}
template [[host_name("fill_2x2")]] [[kernel]] decltype(fill<float, 2, 2>) fill<float, 2, 2>;
template [[host_name("fill_1x3")]] [[kernel]] decltype(fill<float, 1, 3>) fill<float, 1, 3>;
[[kernel, max_total_threads_per_threadgroup(BLOCK * kWidth)]] void plain(device float* out, uint i [[thread_position_in_grid]]) {
    out[i] = 1;
}
}
"""


def test_max_threads_from_constant_expressions():
    # MLX: [[kernel, max_total_threads_per_threadgroup(WM * WN * 32)]], per instantiation
    lib = mps_shim.compile_shader(MAX_THREADS)
    assert lib.fill_2x2.max_threads_per_threadgroup == 128
    assert lib.fill_1x3.max_threads_per_threadgroup == 96
    assert lib.plain.max_threads_per_threadgroup == 128
    out = np.zeros(96, np.float32)
    lib.fill_1x3(out, group_size=96)
    assert np.all(out == 3)
    with pytest.raises(ValueError, match="Threadgroup size exceeds 96 limit"):
        lib.fill_1x3(out, group_size=128)


def test_max_threads_out_of_range_points_at_the_attribute():
    source = MAX_THREADS.replace("WM * WN * 32", "WM * WN * 512")
    with pytest.raises(mps_shim.CompileError, match=r"library.metal:8:.*max_total_threads_per_threadgroup takes an "
                                                    r"integer from 1 to 1024"):
        mps_shim.compile_shader(source)


def test_constructors_qualified_by_an_address_space():
    # MLX's logging.h stub and complex.h: `constexpr os_log(...) constant {}`,
    # `constexpr complex_t(T x) constant : ...` beside the `thread` one.
    lib = mps_shim.compile_shader("""
    struct os_log {
        constexpr os_log(constant char*, constant char*) constant {}
        template <typename... Args> void log_debug(constant char*, Args...) const thread {}
        template <typename... Args> void log_debug(constant char*, Args...) const constant {}
    };
    template <typename T> struct cplx {
        T re, im;
        constexpr cplx(T x) thread : re(x), im(0) {}
        constexpr cplx(T x) constant : re(x), im(0) {}
        T norm() const constant { return re * re + im * im; }
    };
    constant cplx<float> kTwo(2.0f);
    kernel void k(device float* out, uint i [[thread_position_in_grid]]) {
        os_log log("subsystem", "category");
        log.log_debug("value %d", 1);
        cplx<float> c(3.0f);
        out[i] = c.re + kTwo.norm();
    }
    """)
    out = np.zeros(2, np.float32)
    lib.k(out)
    assert out.tolist() == [7.0, 7.0]
