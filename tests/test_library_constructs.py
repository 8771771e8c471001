"""Constructs of hand-written Metal libraries (MLX, ggml), each in a small kernel of our own."""
import numpy as np

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
