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


def test_gnu_range_designators():
    # ggml: float sumf[r1ptg] = { [ 0 ... r1ptg - 1 ] = 0.0f };  (Clang accepts it, g++ does not)
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    using namespace metal;
    constant constexpr short NQ = 4;
    kernel void k(device float* out, uint i [[thread_position_in_grid]]) {
        float S[NQ] = { [0 ... NQ-1] = 0.5 };
        half M[NQ] = { [1 ... NQ-2] = -1.5h, };   // a partial range: the rest is zero
        for (short q = 0; q < NQ; ++q) out[i * 8 + q] = S[q] + q;
        for (short q = 0; q < NQ; ++q) out[i * 8 + 4 + q] = M[q];
    }
    """)
    out = np.zeros(16, np.float32)
    lib.k(out, threads=2)
    assert out.tolist() == [0.5, 1.5, 2.5, 3.5, 0, -1.5, -1.5, 0] * 2


def test_a_range_designator_among_other_initialisers_is_refused_at_its_line():
    with pytest.raises(mps_shim.CompileError, match=r"library.metal:2: error: a GNU range designator must be the "
                                                    r"whole initializer"):
        mps_shim.compile_shader("kernel void k(device float* out) {\n"
                                "    float a[4] = { [0 ... 1] = 1.0f,\n"
                                "                   [2] = 2.0f };\n    out[0] = a[0];\n}\n")


def test_explicit_specialisation_inside_a_class():
    # MLX's binary_ops.h: `template <> complex64_t operator()(complex64_t x, complex64_t y)` in the struct
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    using namespace metal;
    struct FloorDivide {
        template <typename T> T operator()(T x, T y) thread { return floor(x / y); }
        template <> int operator()(int x, int y) thread { return x / y - 100; }
    };
    kernel void k(device float* out, device int* iout, uint i [[thread_position_in_grid]]) {
        out[i] = FloorDivide()(7.0f, 2.0f);
        iout[i] = FloorDivide()(7, 2);
    }
    """)
    out, iout = np.zeros(2, np.float32), np.zeros(2, np.int32)
    lib.k(out, iout)
    assert out.tolist() == [3.0, 3.0] and iout.tolist() == [-97, -97]


def test_metal_3_2():
    # MLX's fence.metal and logging.h: `volatile coherent(system) device uint*`, <metal_logging>
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    #if __METAL_VERSION__ >= 320
    #include <metal_logging>
    using logger_t = metal::os_log;
    #endif
    kernel void k(volatile coherent(system) device uint* flag [[buffer(0)]], uint i [[thread_position_in_grid]]) {
        logger_t log("subsystem", "category");
        log.log_debug("thread %d", i);
        flag[i] = __METAL_VERSION__;
    }
    """)
    out = np.zeros(2, np.uint32)
    lib.k(out)
    assert out.tolist() == [320, 320]


def test_metal_4_tensor_operations_are_refused_clearly():
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.compile_shader("#include <metal_stdlib>\n"
                                "#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>\n")
    assert "library.metal:2" in str(info.value)
    assert "MetalPerformancePrimitives (Metal 4 tensor operations) is not supported" in str(info.value)


def test_metal_attributes_outside_kernels():
    # ggml's argsort: a typedef'd kernel type whose parameters carry [[threadgroup(0)]] and
    # [[threadgroup_position_in_grid]], used to declare the instantiations.
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    using namespace metal;
    typedef void (fill_t)(device int* out, threadgroup int* shmem [[threadgroup(0)]],
                          uint i [[thread_index_in_threadgroup]]);
    template <int X>
    kernel void fill(device int* out, threadgroup int* shmem [[threadgroup(0)]], uint i [[thread_index_in_threadgroup]]) {
        shmem[i] = X * int(i);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        out[i] = shmem[3 - i];
    }
    template [[host_name("fill_2")]] kernel fill_t fill<2>;
    """)
    out = np.zeros(4, np.int32)
    lib.fill_2(out, group_size=4, threadgroup_memory={0: 16})
    assert out.tolist() == [6, 4, 2, 0]


def test_mlx_spellings_of_constants_fences_and_traits():
    # MLX: `#define MLX_MTL_CONST static constant constexpr const`, a conversion operator qualified
    # `const threadgroup`, metal::atomic_thread_fence(mem_flags, order, thread_scope_system) with the
    # library's own metal::thread_scope_system (fence.metal), Apple's internal _disjunction, and a
    # library's own metal::is_empty (Apple has none).
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    #pragma METAL internals : enable
    #ifndef __METAL_MEMORY_SCOPE_SYSTEM__
    #define __METAL_MEMORY_SCOPE_SYSTEM__ 3
    #endif
    namespace metal {
    template <typename T> struct is_empty : metal::bool_constant<__is_empty(T)> {};
    constexpr constant metal::thread_scope thread_scope_system =
        static_cast<thread_scope>(__METAL_MEMORY_SCOPE_SYSTEM__);
    }
    using namespace metal;
    #define MLX_MTL_CONST static constant constexpr const
    template <typename T>
    constexpr constant bool is_small = _disjunction<is_same<T, int>, is_same<T, short>>::value;
    struct Flag {
        bool v;
        constexpr METAL_FUNC operator bool() const threadgroup { return v; }
        constexpr METAL_FUNC operator bool() const thread { return v; }
    };
    struct Empty {};
    kernel void k(device int* out, uint i [[thread_position_in_grid]]) {
        MLX_MTL_CONST int kRows = 3;
        Flag f{true};
        out[i] = kRows + int(bool(f)) * 10 + int(is_small<short>) * 100 + int(is_empty<Empty>::value) * 1000;
        metal::atomic_thread_fence(metal::mem_flags::mem_device, metal::memory_order_seq_cst,
                                   metal::thread_scope_system);
    }
    """)
    out = np.zeros(2, np.int32)
    lib.k(out)
    assert out.tolist() == [1113, 1113]


# MLX's sort.h declares its threadgroup arrays in both branches of an `if` on a template
# parameter; each branch sees only its own.
BRANCH_THREADGROUP_ARRAYS = r"""
#include <metal_stdlib>
using namespace metal;
template <bool WITH_INDEX, int N>
kernel void reverse(device const float* x, device float* out, uint i [[thread_position_in_threadgroup]]) {
  if (WITH_INDEX) {
    threadgroup float vals[N];
    threadgroup int idx[N];
    vals[i] = x[i];
    idx[i] = int(i);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[i] = vals[N - 1 - i] + 1000.0f * float(idx[N - 1 - i]);
  } else {
    threadgroup float vals[N];
    vals[i] = x[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[i] = vals[N - 1 - i];
  }
}
template [[host_name("reverse_indexed")]] kernel void reverse<true, 64>(device const float*, device float*, uint);
template [[host_name("reverse_plain")]] kernel void reverse<false, 64>(device const float*, device float*, uint);
"""


def test_threadgroup_arrays_declared_in_both_branches():
    lib = mps_shim.compile_shader(BRANCH_THREADGROUP_ARRAYS)
    x = np.arange(64, dtype=np.float32) * 0.5
    out = np.zeros(64, np.float32)
    lib.reverse_plain(x, out, group_size=64)
    np.testing.assert_array_equal(out, x[::-1])
    lib.reverse_indexed(x, out, group_size=64)
    np.testing.assert_array_equal(out, x[::-1] + 1000.0 * np.arange(64)[::-1])


# MLX's steel_gemm_masked.h: two kernel templates of one name, told apart by their template
# parameters (a type where the other has a value).
OVERLOADED_TEMPLATES = r"""
#include <metal_stdlib>
using namespace metal;
struct Half { float f = 0.5f; };
template <typename T, typename Scale, int N>
kernel void scale(device T* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = T(i) * Scale().f + T(N);
}
template <typename T, int N, bool NEGATE = false>
kernel void scale(device T* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = (NEGATE ? -T(i) : T(i)) * T(N);
}
template [[host_name("by_struct")]] kernel decltype(scale<float, Half, 100>) scale<float, Half, 100>;
template [[host_name("by_value")]] kernel decltype(scale<float, 3>) scale<float, 3>;
template [[host_name("by_value_negated")]] kernel decltype(scale<float, 3, true>) scale<float, 3, true>;
"""


def test_kernel_templates_overloaded_by_template_parameters():
    lib = mps_shim.compile_shader(OVERLOADED_TEMPLATES)
    out = np.zeros(4, np.float32)
    lib.by_struct(out)
    assert out.tolist() == [100, 100.5, 101, 101.5]
    lib.by_value(out)
    assert out.tolist() == [0, 3, 6, 9]
    lib.by_value_negated(out)
    assert out.tolist() == [0, -3, -6, -9]


def test_an_instantiation_both_overloads_fit_is_an_error_at_its_line():
    source = OVERLOADED_TEMPLATES.replace("template <typename T, int N, bool NEGATE = false>",
                                          "template <typename T, typename U, int N>")
    source = source.replace("T(i) * T(N)", "T(i) * T(N) * T(sizeof(U))")
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.compile_shader(source)
    msg = str(info.value)
    assert "library.metal:13:" in msg and "matches 2 of the 2 template kernels named 'scale'" in msg, msg
