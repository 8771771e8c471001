"""Shapes that once broke the lane-loop translation, or that it may not model: each kernel
must give numpy's answer on the default engine (lane loops where the translation is
faithful, fibers with an execution note where it is not), never fail to compile or dispatch.
The engine cross-check (conftest) also compares lane-loop kernels with fibers byte for byte.
"""
import numpy as np
import pytest

import mps_shim

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;
#define TG mem_flags::mem_threadgroup

// decltype of a per-thread variable, as Inductor's cross-entropy kernel writes it.
kernel void decltype_cast(device float* out, constant float* x, uint i [[thread_position_in_grid]],
                          uint t [[thread_index_in_threadgroup]]) {
    threadgroup float cell[64];
    auto v = x[i] * 2.0f;
    auto w = static_cast<decltype(v)>(t);
    cell[t] = v + w;
    threadgroup_barrier(TG);
    out[i] = cell[63 - t] + static_cast<decltype(w)>(simd_sum(v));
}

// A reference and a pointer to a thread's own variables, used across a barrier.
kernel void references(device float* out, constant float* x, uint i [[thread_position_in_grid]],
                       uint t [[thread_index_in_threadgroup]]) {
    threadgroup float cell[64];
    float mine = x[i];
    auto& alias = mine;
    float* p = &mine;
    cell[t] = alias;
    threadgroup_barrier(TG);
    *p += cell[t ^ 1];
    alias += simd_max(mine);
    out[i] = mine;
}

// Lambdas with captures, called with SIMD functions inside and around them.
kernel void lambdas(device float* out, constant float* x, constant float& scale, uint i [[thread_position_in_grid]],
                    uint t [[thread_index_in_threadgroup]]) {
    threadgroup float cell[64];
    auto scaled = [&](float v) { return v * scale; };
    auto reduce = [](float v) { return simd_sum(v) - simd_min(v); };
    const float v = scaled(x[i]);
    cell[t] = reduce(v);
    threadgroup_barrier(TG);
    out[i] = cell[(t + 32) % 64] + reduce(scaled(v));
}

// SIMD functions inside loops: a 64-bit tree of shuffles, as c10 reduces long.
kernel void shuffle_loops(device long* out, constant long* x, uint i [[thread_position_in_grid]]) {
    long v = x[i];
    for (ushort d = 16; d > 0; d /= 2) v += as_type<long>(simd_shuffle_and_fill_down(as_type<int2>(v), int2(0), d));
    long m = x[i];
    for (ushort d = 1; d < 32; d *= 2) m = max(m, simd_shuffle_xor(m, d));
    out[2 * i] = simd_broadcast(v, 0);
    out[2 * i + 1] = m;
}

// SIMD calls some threads skip within one statement: odd lanes sum, then every lane takes the max;
// and two calls of one function on the two sides of `?:`, which divergent lanes run as two operations.
kernel void conditional_calls(device float* out, constant float* x, uint i [[thread_position_in_grid]],
                              uint lane [[thread_index_in_simdgroup]]) {
    const float v = x[i];
    const float a = (lane & 1 ? simd_sum(v) : 0.0f) + simd_max(v);
    const float b = lane < 10 ? simd_sum(v) : simd_sum(2.0f * v);
    out[2 * i] = a;
    out[2 * i + 1] = b;
}

kernel void alternatives(device float* out, constant float* x, uint i [[thread_position_in_grid]],
                         uint lane [[thread_index_in_simdgroup]]) {
    const float v = x[i];
    out[i] = lane < 10 ? simd_sum(v) : simd_sum(2.0f * v);
}

// Eleven SIMD operations in one statement.
kernel void many_ops(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    const float v = x[i];
    out[i] = simd_sum(v) + simd_max(v) + simd_min(v) + simd_sum(2 * v) + simd_max(2 * v) + simd_min(2 * v) +
             simd_sum(3 * v) + simd_max(3 * v) + simd_min(3 * v) + simd_broadcast(v, 5) + simd_shuffle_xor(v, 3);
}
"""


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(SOURCE)


def ints(n, seed, lo=-8, hi=9):
    return np.random.default_rng(seed).integers(lo, hi, n).astype(np.float32)


def simd(x):
    return x.reshape(-1, 32)


def test_decltype_of_a_thread_variable(lib):
    x = ints(128, 1)
    out = np.zeros(128, np.float32)
    lib.decltype_cast(out, x, threads=128, group_size=64)
    v = 2 * x
    cell = (v.reshape(-1, 64) + np.arange(64)).reshape(-1, 64)[:, ::-1].reshape(-1)
    np.testing.assert_array_equal(out, cell + np.repeat(simd(v).sum(1), 32))


def test_references_and_pointers_to_thread_variables(lib):
    x = ints(128, 2)
    out = np.zeros(128, np.float32)
    lib.references(out, x, threads=128, group_size=64)
    partner = x.reshape(-1, 64)[:, np.arange(64) ^ 1].reshape(-1)
    mine = x + partner
    np.testing.assert_array_equal(out, mine + np.repeat(simd(mine).max(1), 32))
    note = lib.library.kernels["references"]["execution_note"]
    assert lib.library.kernels["references"]["execution"] in ("lane_loops", "fibers")
    assert lib.library.kernels["references"]["execution"] == "lane_loops" or note


def test_lambdas_with_captures(lib):
    x = ints(128, 3)
    out = np.zeros(128, np.float32)
    lib.lambdas(out, x, np.float32(0.5), threads=128, group_size=64)
    v = x * 0.5
    reduced = np.repeat(simd(v).sum(1) - simd(v).min(1), 32)
    rolled = reduced.reshape(-1, 64)[:, (np.arange(64) + 32) % 64].reshape(-1)
    v2 = v * 0.5
    np.testing.assert_array_equal(out, rolled + np.repeat(simd(v2).sum(1) - simd(v2).min(1), 32))


def test_simd_functions_inside_loops(lib):
    x = np.random.default_rng(4).integers(-(2 ** 40), 2 ** 40, 96)
    out = np.zeros((96, 2), np.int64)
    lib.shuffle_loops(out, x, threads=96, group_size=96)
    np.testing.assert_array_equal(out[:, 0], np.repeat(simd(x).sum(1), 32))
    np.testing.assert_array_equal(out[:, 1], np.repeat(simd(x).max(1), 32))
    assert lib.library.kernels["shuffle_loops"]["execution"] == "lane_loops"


def test_any_number_of_operations_in_a_statement(lib):
    x = ints(64, 5)
    out = np.zeros(64, np.float32)
    lib.many_ops(out, x, threads=64, group_size=64)
    s = simd(x.astype(np.float64))
    expect = np.repeat(sum(k * (s.sum(1) + s.max(1) + s.min(1)) for k in (1, 2, 3)), 32)
    expect += np.repeat(s[:, 5], 32) + x.reshape(-1, 32)[:, np.arange(32) ^ 3].reshape(-1)
    np.testing.assert_array_equal(out, expect)
    assert lib.library.kernels["many_ops"]["execution"] == "lane_loops"


def test_simd_calls_under_conditional_operators(lib):
    x = ints(64, 6)
    out = np.zeros((64, 2), np.float32)
    lib.conditional_calls(out, x, threads=64, group_size=64)
    s = simd(x)
    lane = np.tile(np.arange(32), 2)
    odd_sum = np.repeat(s[:, 1::2].sum(1), 32)
    np.testing.assert_array_equal(out[:, 0], np.where(lane & 1, odd_sum, 0) + np.repeat(s.max(1), 32))
    np.testing.assert_array_equal(out[:, 1], np.where(lane < 10, np.repeat(s[:, :10].sum(1), 32),
                                                      np.repeat(2 * s[:, 10:].sum(1), 32)))
    assert lib.library.kernels["conditional_calls"]["execution"] == "fibers"   # replaying would shift the max
    alt = np.zeros(64, np.float32)
    lib.alternatives(alt, x, threads=64, group_size=64)
    np.testing.assert_array_equal(alt, out[:, 1])
    assert lib.library.kernels["alternatives"]["execution"] == "lane_loops"
