"""A lane-loop kernel made of many short SIMD statements: one SIMD-group per row,
lanes 0-15 holding a 4x4 matrix, a softmax along each row of it and a few rounds
of alternate column / row normalisation, each sum two simd_shuffle_xor steps
(the shape of ggml's DeepSeek-V4 "hc comb" kernel, written afresh here).

Its group function has some thirty passes, thirteen of them replayed. With
every pass inlined into one function g++ spent ~14 s on it (fibers: 0.3 s); the
replayed passes are now functions of their own (host/mps_host_engine.h). Checked
against numpy, on lane loops and on fibers, bit for bit between the two; and
the structure that keeps its compile time linear is asserted on the header.
"""
import re
from pathlib import Path

import numpy as np
import pytest

import mps_shim

HEAD = "#include <metal_stdlib>\nusing namespace metal;\n"
LANE_LOOPS = "#define FORCE\n"
FIBERS = "#define FORCE switch (0) { default: metal::simdgroup_barrier(metal::mem_flags::mem_none); }\n"

SOURCE = r"""
kernel void mix4(device float* out, constant float* w, constant float* bias, constant int& rows,
                 constant int& rounds, constant float& eps,
                 uint2 gpos [[threadgroup_position_in_grid]], ushort lane [[thread_index_in_simdgroup]],
                 ushort sg [[simdgroup_index_in_threadgroup]], ushort2 gsize [[threads_per_threadgroup]]) {
    FORCE
    const int row = gpos.x * gsize.y + sg;
    if (row >= rows) return;
    float k = 0.0f;
    if (lane == 0) k = w[row * 17 + 16];
    const float scale = simd_shuffle(k, 0);
    float v = 0.0f;
    if (lane < 16) v = w[row * 17 + lane] * scale + bias[lane];
    float m = max(v, simd_shuffle_xor(v, 1));     // lanes 4s..4s+3: row s of the matrix
    m = max(m, simd_shuffle_xor(m, 2));
    v = exp(v - m);
    float s = v + simd_shuffle_xor(v, 1);
    s += simd_shuffle_xor(s, 2);
    v = v / s + eps;
    for (int r = 0; r < rounds; ++r) {
        s = v + simd_shuffle_xor(v, 4);           // column: lanes d, d+4, d+8, d+12
        s += simd_shuffle_xor(s, 8);
        v /= s + eps;
        s = v + simd_shuffle_xor(v, 1);
        s += simd_shuffle_xor(s, 2);
        v /= s + eps;
    }
    if (lane < 16) out[row * 16 + (lane & 3) * 4 + (lane >> 2)] = v;
}
"""


def reference(w, bias, rounds, eps):
    v = w[:, :16].reshape(-1, 4, 4) * w[:, 16:17, None] + bias.reshape(4, 4)  # [row, s, d]
    v = np.exp(v - v.max(axis=2, keepdims=True))
    v = v / ((v[..., 0:1] + v[..., 1:2]) + (v[..., 2:3] + v[..., 3:4])) + eps
    for _ in range(rounds):
        v = v / (((v[:, 0:1] + v[:, 1:2]) + (v[:, 2:3] + v[:, 3:4])) + eps)
        v = v / (((v[..., 0:1] + v[..., 1:2]) + (v[..., 2:3] + v[..., 3:4])) + eps)
    return v.transpose(0, 2, 1).reshape(-1, 16)  # out[row, d * 4 + s]


@pytest.fixture(scope="module")
def libs():
    return {"lane_loops": mps_shim.compile_shader(HEAD + LANE_LOOPS + SOURCE),
            "fibers": mps_shim.compile_shader(HEAD + FIBERS + SOURCE)}


@pytest.mark.parametrize("rows,per_group,rounds", [(1, 1, 0), (7, 2, 1), (13, 4, 3), (64, 8, 5)])
def test_many_short_simd_statements_match_numpy_on_both_engines(libs, rows, per_group, rounds):
    rng = np.random.default_rng(rows * 100 + rounds)
    w = rng.standard_normal((rows, 17)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    eps = np.float32(1e-6)
    groups = -(-rows // per_group)
    results = {}
    for mode, lib in libs.items():
        info = lib.library.kernels["mix4"]
        assert info["execution"] == mode, info["execution_note"]
        out = np.full((rows, 16), -1.0, np.float32)
        lib.mix4(out, w, bias, np.int32(rows), np.int32(rounds), eps,
                 threads=(32 * groups, per_group), group_size=(32, per_group))
        np.testing.assert_allclose(out, reference(w, bias, rounds, eps), rtol=2e-5, err_msg=mode)
        results[mode] = out
    np.testing.assert_array_equal(results["lane_loops"], results["fibers"])


def test_replayed_passes_stay_out_of_the_group_function():
    # What keeps g++'s time linear in the number of SIMD statements: each replayed
    # pass is a function (not forced inline into the group function), and the
    # group function is not inlined into the loop over groups.
    header = (Path(__file__).resolve().parents[1] / "csrc/backends/host/metal_include/host/mps_host_engine.h").read_text()
    assert re.search(r"__attribute__\(\(noinline\)\)\s+void\s+for_each_lane_replayed\(GroupLanes& g, F f\)", header)
    assert re.search(r"__attribute__\(\(noinline\)\)\s+void\s+run_group_lanes\(", header)
    assert "run_group_lanes(body, g);" in header
