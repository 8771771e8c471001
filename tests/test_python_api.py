"""The Python layer: exceptions, command blocks and callbacks, compile_shader binding rules,
front-end rules (templates, explicit buffer indices, unsupported constructs), runtime queries,
and use from several Python threads.
"""
import os
import re
import threading

import numpy as np
import pytest

import mps_shim
from mps_shim import (ArgumentError, CommandBlockError, CompileError, DispatchError, KernelNotFoundError,
                      MpsShimError, ShaderLibrary, Tensor, compile_shader)
from mps_shim._native import ffi, lib as clib

SOURCE = r"""#include <metal_stdlib>
using namespace metal;

kernel void fill(device float* out, constant float& v, uint i [[thread_position_in_grid]]) {
    out[i] = v;
}

kernel void add(device float* out, constant float* a, constant float* b, uint i [[thread_position_in_grid]]) {
    out[i] = a[i] + b[i];
}

kernel void echo_long(device long* out, constant long& v, uint i [[thread_position_in_grid]]) { out[i] = v; }
kernel void echo_int(device int* out, constant int& v, uint i [[thread_position_in_grid]]) { out[i] = v; }
kernel void echo_float(device float* out, constant float& v, uint i [[thread_position_in_grid]]) { out[i] = v; }
kernel void echo_half(device half* out, constant half& v, uint i [[thread_position_in_grid]]) { out[i] = v; }
kernel void echo_uchar(device uchar* out, constant uchar& v, uint i [[thread_position_in_grid]]) { out[i] = v; }

kernel void grid_size(device uint* a, device uint* b, uint i [[thread_position_in_grid]],
                      uint n [[threads_per_grid]]) {
    a[i] = n;
}

kernel void scalar_first(constant long& k, device long* out, uint i [[thread_position_in_grid]]) {
    out[i] = k + long(i);
}

kernel void out_of_order(device float* out [[buffer(2)]], constant float* a [[buffer(0)]],
                         constant long& n [[buffer(1)]], uint i [[thread_position_in_grid]]) {
    if (long(i) < n) {
        out[i] = a[i] * 3.0f;
    }
}

kernel void mixed(device float* out [[buffer(1)]], constant float* a, constant float& s [[buffer(3)]],
                  constant float* b, uint i [[thread_position_in_grid]]) {
    out[i] = a[i] * s + b[i];
}

template <typename T>
kernel void twice(device T* out [[buffer(0)]], constant T* in [[buffer(1)]], uint i [[thread_position_in_grid]]) {
    out[i] = in[i] + in[i];
}

#define INSTANTIATE_TWICE(T) \
    template [[host_name("twice_" #T)]] kernel void twice<T>(device T*, constant T*, uint);

INSTANTIATE_TWICE(float)
INSTANTIATE_TWICE(int)
INSTANTIATE_TWICE(half)
INSTANTIATE_TWICE(uchar)
"""

ALL_KERNELS = sorted(["fill", "add", "echo_long", "echo_int", "echo_float", "echo_half", "echo_uchar", "grid_size",
                      "scalar_first", "out_of_order", "mixed", "twice_float", "twice_int", "twice_half",
                      "twice_uchar"])


@pytest.fixture(scope="module")
def lib():
    return ShaderLibrary(SOURCE)


@pytest.fixture(scope="module")
def cs():
    return compile_shader(SOURCE)


def line_of(source, text):
    """1-based line number of the first line of `source` containing `text`."""
    return next(n for n, line in enumerate(source.splitlines(), 1) if text in line)


def block(fn, *steps):
    """Runs the steps (callables taking the KernelFunction) in one command block after start_encoding."""
    def encode(f):
        f.start_encoding()
        for step in steps:
            step(f)

    fn.run_command_block(encode)


# ---- library description ----------------------------------------------------------------------------------------

def test_kernel_names_and_description(lib):
    assert lib.kernel_names == ALL_KERNELS
    fill = lib.kernels["fill"]
    assert fill["line"] == line_of(SOURCE, "kernel void fill(")
    assert fill["max_threads"] == 1024
    kinds = [(p["name"], p["kind"], p["binding"]) for p in fill["params"]]
    assert kinds == [("out", "buffer", 0), ("v", "scalar", 1), ("i", "thread_position", -1)]
    assert fill["params"][2]["attribute"] == "thread_position_in_grid"


def test_get_kernel_function_returns_the_same_handle(lib):
    out1 = ffi.new("AOTIMetalKernelFunctionHandle*")
    out2 = ffi.new("AOTIMetalKernelFunctionHandle*")
    assert clib.aoti_torch_mps_get_kernel_function(lib._handle, b"add", out1) == 0
    assert clib.aoti_torch_mps_get_kernel_function(lib._handle, b"add", out2) == 0
    assert out1[0] == out2[0]
    assert lib.get_kernel_function("add") is lib.get_kernel_function("add")


def test_shader_library_needs_a_str():
    with pytest.raises(TypeError):
        ShaderLibrary(SOURCE.encode())


# ---- exceptions -------------------------------------------------------------------------------------------------

def test_exception_hierarchy():
    for cls in (CompileError, KernelNotFoundError, ArgumentError, DispatchError, CommandBlockError,
                mps_shim.InvalidHandleError):
        assert issubclass(cls, MpsShimError)
    assert issubclass(MpsShimError, RuntimeError)
    assert issubclass(KernelNotFoundError, KeyError)
    assert issubclass(ArgumentError, ValueError)


def test_compile_error_points_at_the_metal_line():
    src = "\n".join([
        "#include <metal_stdlib>",                                                         # 1
        "using namespace metal;",                                                          # 2
        "",                                                                                # 3
        "kernel void k(device float* out, uint i [[thread_position_in_grid]]) {",          # 4
        "    float x = 1.0f;",                                                             # 5
        "    float y = x * 2.0f;",                                                         # 6
        "    out[i] = y + no_such_variable;",                                              # 7
        "}",                                                                               # 8
    ]) + "\n"
    with pytest.raises(CompileError) as info:
        ShaderLibrary(src)
    msg = str(info.value)
    assert "library.metal:7:" in msg
    assert "no_such_variable" in msg
    assert info.value.diagnostics == msg
    assert isinstance(info.value, MpsShimError) and isinstance(info.value, RuntimeError)


def test_compile_error_for_a_syntax_error_in_a_later_kernel():
    src = SOURCE + "\nkernel void broken(device float* out, uint i [[thread_position_in_grid]]) {\n    out[i] = ;\n}\n"
    with pytest.raises(CompileError, match=rf"library\.metal:{line_of(src, 'out[i] = ;')}:"):
        ShaderLibrary(src)


KERNEL_HEAD = "#include <metal_stdlib>\nusing namespace metal;\n"


@pytest.mark.parametrize("body, marker, words", [
    ("kernel void k(device float* out,\n              threadgroup float* scratch,\n"
     "              uint i [[thread_position_in_grid]]) {\n    out[i] = 1.0f;\n}\n",
     "threadgroup float* scratch", ["a threadgroup kernel parameter is a pointer or reference with [[threadgroup(n)]]", "scratch"]),
    ("kernel void k(device float* out, uint i [[thread_position_in_grid]]) {\n"
     "    threadgroup float tile[8193];\n    out[i] = tile[0];\n}\n",
     "threadgroup float tile", ["32 KiB"]),
    # Every declarator of one declaration counts.
    ("kernel void k(device float* out, uint i [[thread_position_in_grid]]) {\n"
     "    threadgroup float a[4096], *p, b[4097];\n    p = a;\n    out[i] = p[0] + b[0];\n}\n",
     "threadgroup float a", ["32 KiB"]),
    # Metal counts a kernel's threadgroup memory together with that of the functions it calls.
    ("float helper(uint t) {\n    threadgroup float4 big[1300];\n    big[t % 1300] = float4(t);\n"
     "    threadgroup_barrier(mem_flags::mem_threadgroup);\n    return big[0].x;\n}\n"
     "kernel void k(device float* out, uint i [[thread_position_in_grid]]) {\n"
     "    threadgroup float tile[5000];\n    tile[i % 5000] = 1.0f;\n    out[i] = helper(i) + tile[0];\n}\n",
     "kernel void k", ["'k' needs 40800 bytes", "20000 in 'k'", "20800 in 'helper'", "32768"]),
    # Sizes the front end cannot know (a template's): the C++ compiler checks the arrays in scope together.
    ("template <int N>\nkernel void k(device float* out, uint i [[thread_position_in_grid]]) {\n"
     "    threadgroup float a[N];\n    if (i < 4) {\n        threadgroup float inner[N];\n"
     "        inner[i] = 1.0f;\n        a[i] = inner[0];\n    }\n    out[i] = a[0];\n}\n"
     "template [[host_name(\"k5000\")]] kernel void k<5000>(device float*, uint);\n",
     "threadgroup float inner", ["32 KiB"]),
    ("kernel void k(device float* out,\n              float v,\n              uint i [[thread_position_in_grid]]) {\n"
     "    out[i] = v;\n}\n",
     "float v,", ["'v'", "device or constant pointer or reference"]),
    ("[[max_total_threads_per_threadgroup(2048)]]\n"
     "kernel void k(device float* out, uint i [[thread_position_in_grid]]) {\n"
     "    out[i] = 1.0f;\n}\n",
     "max_total_threads_per_threadgroup", ["max_total_threads_per_threadgroup", "1024"]),
    ("kernel void k(device float* out [[buffer(0)]], device float* b [[buffer(0)]],\n"
     "              uint i [[thread_position_in_grid]]) {\n    out[i] = b[i];\n}\n",
     "kernel void k", ["buffer(0)"]),
])
def test_unsupported_constructs_fail_at_compile_time_with_the_line(body, marker, words):
    src = KERNEL_HEAD + "\n" + body
    with pytest.raises(CompileError) as info:
        ShaderLibrary(src)
    msg = str(info.value)
    assert f"library.metal:{line_of(src, marker)}:" in msg, msg
    for w in words:
        assert w in msg, msg


def test_a_kernel_and_its_helpers_may_share_out_32_kib_of_threadgroup_memory():
    src = KERNEL_HEAD + """
float helper(uint t) {
    threadgroup half2 half_of_it[4096];
    half_of_it[t] = half2(half(t), 1.0h);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return float(half_of_it[(t + 1) % 64].x);
}
kernel void k(device float* out, uint t [[thread_index_in_threadgroup]], uint i [[thread_position_in_grid]]) {
    threadgroup float other_half[4096];
    other_half[t] = 2.0f;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[i] = helper(t) + other_half[t];
}
"""
    out = np.zeros(128, np.float32)
    mps_shim.compile_shader(src).k(out, threads=128, group_size=64)
    np.testing.assert_array_equal(out, (np.arange(128) + 1) % 64 + 2.0)


def test_a_helper_named_only_in_decltype_or_sizeof_adds_no_threadgroup_memory():
    src = KERNEL_HEAD + """
float helper(float v, uint t) {
    threadgroup float b[4096];
    b[t] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return b[0];
}
kernel void k(device float* out, constant float* x, uint i [[thread_position_in_grid]],
              uint t [[thread_index_in_threadgroup]]) {
    threadgroup float a[4097];
    a[t] = x[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    decltype(helper(0.0f, 0u)) r = a[(t + 1) % 64] + float(sizeof(helper(0.0f, 0u)));
    out[i] = r;
}
"""
    x = np.arange(128, dtype=np.float32)
    out = np.zeros(128, np.float32)
    mps_shim.compile_shader(src).k(out, x, threads=128, group_size=64)
    t = np.arange(128) % 64
    np.testing.assert_array_equal(out, x[np.arange(128) - t + (t + 1) % 64] + 4)


def test_kernel_not_found_lists_the_kernels(lib):
    with pytest.raises(KernelNotFoundError) as info:
        lib.get_kernel_function("nope")
    msg = str(info.value)
    assert "no kernel named 'nope'" in msg
    for name in ALL_KERNELS:
        assert f"'{name}'" in msg
    assert not msg.startswith('"')  # not KeyError's quoting
    with pytest.raises(KeyError):
        lib.get_kernel_function("twice")  # the template itself is not a kernel


def test_compile_shader_unknown_attribute_lists_kernels(cs):
    with pytest.raises(AttributeError, match="no kernel named 'nope'.*fill"):
        cs.nope
    assert set(ALL_KERNELS) <= set(dir(cs))


def test_argument_errors(lib):
    fn = lib.get_kernel_function("fill")
    out = np.zeros(4, np.float32)
    with pytest.raises(ArgumentError) as info:
        block(fn, lambda f: f.set_arg_tensor(5, out))
    msg = str(info.value)
    assert "no binding index 5" in msg
    assert "0: parameter 'out' (device float*)" in msg and "1: parameter 'v' (constant float&)" in msg
    with pytest.raises(ArgumentError, match="no binding index 2"):
        block(fn, lambda f: f.set_arg_int(2, 1))
    with pytest.raises(ArgumentError, match=r"binding 1 \(parameter 'v' \(constant float&\)\) reads 4 bytes.*holds 0"):
        block(fn, lambda f: f.set_arg_tensor(1, out[:0]))  # as Metal binds, a tensor may back v, if it holds one
    with pytest.raises(ArgumentError, match="binding 0 .*parameter 'out'.* may write.*not a value"):
        block(fn, lambda f: f.set_arg_int(0, 3))
    with pytest.raises(ArgumentError, match="1 to 4096 bytes.*got 4097"):
        block(fn, lambda f: f.set_arg_bytes(1, b"x" * 4097))
    with pytest.raises(ArgumentError, match="got 0"):
        block(fn, lambda f: f.set_arg_bytes(1, b""))
    with pytest.raises(ValueError):  # ArgumentError is a ValueError too
        block(fn, lambda f: f.set_arg_int(0, 3))
    assert not out.any()


def test_too_few_scalar_bytes_are_rejected_before_running(lib):
    fn = lib.get_kernel_function("echo_long")
    out = np.full(4, 99, np.int64)
    with pytest.raises(MpsShimError, match="needs 8 bytes but 3 were bound"):
        block(fn, lambda f: f.set_arg_tensor(0, out), lambda f: f.set_arg_bytes(1, b"\1\2\3"), lambda f: f.dispatch(4))
    assert np.all(out == 99)


def test_unbound_buffer_names_its_index(lib):
    fn = lib.get_kernel_function("out_of_order")
    a = np.ones(8, np.float32)
    with pytest.raises(DispatchError) as info:
        block(fn, lambda f: f.set_arg_tensor(0, a), lambda f: f.set_arg_int(1, 8), lambda f: f.dispatch(8))
    msg = str(info.value)
    assert "binding 2" in msg and "'out'" in msg and "never set" in msg
    with pytest.raises(DispatchError, match="binding 1.*'n'.*never set"):
        block(fn, lambda f: f.set_arg_tensor(0, a), lambda f: f.set_arg_tensor(2, a), lambda f: f.dispatch(8))


def test_start_encoding_clears_earlier_bindings(lib):
    fn = lib.get_kernel_function("fill")
    out = np.zeros(4, np.float32)
    block(fn, lambda f: f.set_arg_tensor(0, out), lambda f: f.set_arg_float(1, 2.0), lambda f: f.dispatch(4))
    assert np.all(out == 2)
    with pytest.raises(DispatchError, match="never set"):
        block(fn, lambda f: f.dispatch(4))


def test_calls_before_start_encoding_fail():
    fresh = ShaderLibrary(SOURCE)  # same source: a cache hit, but kernel functions never encoded
    fn = fresh.get_kernel_function("fill")
    out = np.zeros(4, np.float32)
    with pytest.raises(DispatchError, match="before aoti_torch_mps_start_encoding"):
        fn.run_command_block(lambda f: f.dispatch(4))
    fn2 = fresh.get_kernel_function("echo_long")
    with pytest.raises(ArgumentError, match="before aoti_torch_mps_start_encoding"):
        fn2.run_command_block(lambda f: f.set_arg_int(1, 4))
    with pytest.raises(ArgumentError, match="before aoti_torch_mps_start_encoding"):
        fresh.get_kernel_function("add").run_command_block(lambda f: f.set_arg_tensor(0, out))


# ---- command blocks and callbacks -------------------------------------------------------------------------------

class CallbackFailure(ValueError):
    pass


def test_callback_exception_is_reraised_unchanged(lib):
    fn = lib.get_kernel_function("fill")
    err = CallbackFailure("from the callback")

    def cb(f):
        f.start_encoding()
        raise err

    with pytest.raises(CallbackFailure) as info:
        fn.run_command_block(cb)
    assert info.value is err


@pytest.mark.parametrize("exc", [KeyboardInterrupt("stop"), SystemExit(3), GeneratorExit()])
def test_base_exceptions_from_the_callback_are_reraised(lib, exc):
    fn = lib.get_kernel_function("fill")

    def cb(f):
        raise exc

    with pytest.raises(type(exc)) as info:
        fn.run_command_block(cb)
    assert info.value is exc
    out = np.zeros(3, np.float32)  # the queue is usable afterwards
    block(fn, lambda f: f.set_arg_tensor(0, out), lambda f: f.set_arg_float(1, 4.0), lambda f: f.dispatch(3))
    assert np.all(out == 4)


def test_callback_error_takes_precedence_over_the_library_error(lib):
    fn = lib.get_kernel_function("fill")
    # the failing set_arg raises ArgumentError inside the callback; that exception propagates
    with pytest.raises(ArgumentError, match="no binding index 9"):
        block(fn, lambda f: f.set_arg_int(9, 0))


def test_a_failed_call_fails_the_rest_of_the_block(lib):
    fn = lib.get_kernel_function("fill")
    out = np.zeros(4, np.float32)
    seen = []

    def cb(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.set_arg_float(1, 1.0)
        f.dispatch(4)  # runs: nothing failed yet
        try:
            f.set_arg_tensor(7, out)
        except ArgumentError as e:
            seen.append(e)
        f.set_arg_float(1, 2.0)
        try:
            f.dispatch(4)
        except MpsShimError as e:
            seen.append(e)

    with pytest.raises(CommandBlockError) as info:
        fn.run_command_block(cb)
    assert len(seen) == 2
    assert isinstance(seen[1], DispatchError)
    assert "earlier call in this command block failed" in str(seen[1])
    assert "no binding index 7" in str(seen[1])
    assert "no binding index 7" in str(info.value)
    assert np.all(out == 1), "the dispatch after the failure must not run"
    # the next block starts clean
    block(fn, lambda f: f.set_arg_tensor(0, out), lambda f: f.set_arg_float(1, 3.0), lambda f: f.dispatch(4))
    assert np.all(out == 3)


def test_nested_command_blocks(lib):
    fill = lib.get_kernel_function("fill")
    echo = lib.get_kernel_function("echo_long")
    a = np.zeros(5, np.float32)
    b = np.zeros(5, np.float32)
    c = np.zeros(6, np.int64)

    def inner_same(f):
        f.start_encoding()
        f.set_arg_tensor(0, b)
        f.set_arg_float(1, 6.0)
        f.dispatch(5)

    def inner_other(f):
        f.start_encoding()
        f.set_arg_tensor(0, c)
        f.set_arg_int(1, -42)
        f.dispatch(6)

    def outer(f):
        echo.run_command_block(inner_other)
        fill.run_command_block(inner_same)
        f.start_encoding()  # the inner block re-encoded this kernel function
        f.set_arg_tensor(0, a)
        f.set_arg_float(1, 5.0)
        f.dispatch(5)

    fill.run_command_block(outer)
    assert np.all(a == 5) and np.all(b == 6) and np.all(c == -42)


def test_failed_nested_block_fails_the_outer_block(lib):
    fill = lib.get_kernel_function("fill")
    seen = []

    def inner(f):
        f.start_encoding()
        f.dispatch(4)  # nothing bound

    def outer(f):
        try:
            fill.run_command_block(inner)
        except DispatchError as e:
            seen.append(e)

    with pytest.raises(CommandBlockError, match="never set"):
        fill.run_command_block(outer)
    assert len(seen) == 1


# ---- compile_shader binding rules -------------------------------------------------------------------------------

def test_python_int_binds_int64(cs):
    out = np.zeros(3, np.int64)
    for v in (2 ** 40 + 3, -5, 0, 2 ** 63 - 1, -(2 ** 63)):
        cs.echo_long(out, v)
        assert out.tolist() == [v] * 3
    cs.echo_long(out, True)
    assert out.tolist() == [1] * 3
    small = np.zeros(2, np.int32)
    cs.echo_int(small, -7)  # 8 bytes bound; the kernel reads the low 4 (little-endian)
    assert small.tolist() == [-7, -7]


def test_python_float_binds_float32(cs):
    out = np.zeros(2, np.float32)
    cs.echo_float(out, 1.1)
    assert out.view(np.uint32).tolist() == [np.float32(1.1).view(np.uint32)] * 2
    cs.echo_float(out, float("-inf"))
    assert np.all(out == -np.inf)
    cs.echo_float(out, -0.0)
    assert out.view(np.uint32).tolist() == [0x80000000] * 2
    cs.echo_float(out, 3.0000001)  # rounded to the nearest float32
    assert out.tolist() == [float(np.float32(3.0000001))] * 2


@pytest.mark.parametrize("kernel, value, out_dtype", [
    ("echo_int", np.int32(-123456), np.int32),
    ("echo_half", np.float16(0.333), np.float16),
    ("echo_half", np.float16(-65504), np.float16),
    ("echo_uchar", np.uint8(250), np.uint8),
    ("echo_float", np.float32(-2.5e-3), np.float32),
    ("echo_long", np.int64(-(2 ** 50)), np.int64),
])
def test_numpy_scalars_bind_as_their_own_type(cs, kernel, value, out_dtype):
    out = np.zeros(4, out_dtype)
    getattr(cs, kernel)(out, value)
    assert out.tobytes() == value.tobytes() * 4


def test_arrays_and_tensors_bind_as_buffers(cs):
    a = np.arange(10, dtype=np.float32)
    b = Tensor.from_numpy(np.full(10, 0.5, np.float32))
    out = Tensor.empty(10, np.float32)
    cs.add(out, a, b)
    np.testing.assert_array_equal(out.numpy(), a + 0.5)


def test_wrong_argument_count_lists_the_parameters(cs):
    with pytest.raises(TypeError) as info:
        cs.add(np.zeros(3, np.float32))
    msg = str(info.value)
    assert "'add' takes 3 arguments" in msg and "got 1" in msg
    assert "out (device float*)" in msg and "a (constant float*)" in msg and "b (constant float*)" in msg


def test_unbindable_argument_types(cs):
    for bad in ("1", None, object(), [], ["a"], [1.0, np.zeros(2)]):
        with pytest.raises(ArgumentError, match="argument 1"):  # a RuntimeError, as torch raises
            cs.echo_float(np.zeros(2, np.float32), bad)


def test_threads_default_to_the_first_array(cs):
    a = np.zeros(7, np.uint32)
    b = np.zeros(16, np.uint32)
    cs.grid_size(a, b)
    assert a.tolist() == [7] * 7 and not b.any()
    t = Tensor.zeros(5, np.uint32)
    cs.grid_size(t, b)
    assert t.numpy().tolist() == [5] * 5
    a[:] = 0
    cs.grid_size(a, b, threads=3)
    assert a.tolist() == [3, 3, 3, 0, 0, 0, 0]
    out = np.zeros(6, np.int64)
    cs.scalar_first(100, out)  # a scalar before the first array
    assert out.tolist() == [100, 101, 102, 103, 104, 105]
    with pytest.raises(ArgumentError, match="threads="):  # no array to size the grid
        cs.echo_long(np.zeros(3, np.int64).tolist(), 4)


def test_template_kernels_under_host_names(cs, lib):
    assert lib.kernels["twice_float"]["line"] == line_of(SOURCE, "INSTANTIATE_TWICE(float)")
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    out = np.empty_like(x)
    cs.twice_float(out, x)
    np.testing.assert_array_equal(out, x + x)
    xi = np.arange(-50, 50, dtype=np.int32)
    outi = np.empty_like(xi)
    cs.twice_int(outi, xi)
    np.testing.assert_array_equal(outi, xi * 2)
    xh = np.array([0.1, 1000.0, 40000.0, -2.5], np.float16)
    outh = np.empty_like(xh)
    cs.twice_half(outh, xh)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(outh, xh + xh)  # 80000 overflows half: inf
    xu = np.array([1, 100, 200, 255], np.uint8)
    outu = np.empty_like(xu)
    cs.twice_uchar(outu, xu)
    np.testing.assert_array_equal(outu, (xu.astype(np.int32) * 2 % 256).astype(np.uint8))


def test_explicit_buffer_indices_out_of_declaration_order(cs, lib):
    params = {p["name"]: p["binding"] for p in lib.kernels["out_of_order"]["params"]}
    assert params == {"out": 2, "a": 0, "n": 1, "i": -1}
    a = np.arange(10, dtype=np.float32)
    out = np.full(10, -1.0, np.float32)
    cs.out_of_order(a, 6, out, threads=10)  # arguments in binding order: a, n, out
    np.testing.assert_array_equal(out, np.concatenate([a[:6] * 3, np.full(4, -1.0)]))


def test_implicit_indices_take_the_lowest_free_slot(cs, lib):
    params = {p["name"]: p["binding"] for p in lib.kernels["mixed"]["params"]}
    assert params == {"out": 1, "a": 0, "s": 3, "b": 2, "i": -1}
    a = np.arange(8, dtype=np.float32)
    b = np.full(8, 10.0, np.float32)
    out = np.zeros(8, np.float32)
    cs.mixed(a, out, b, 0.5, threads=8)  # binding order 0: a, 1: out, 2: b, 3: s
    np.testing.assert_array_equal(out, a * 0.5 + 10)


# ---- runtime queries --------------------------------------------------------------------------------------------

def test_library_path_and_include_dir():
    path = mps_shim.library_path()
    assert os.path.isabs(path) and os.path.basename(path) == "libmps_shim.so" and os.path.isfile(path)
    header = os.path.join(mps_shim.include_dir(), "mps_shim.h")
    assert os.path.isfile(header)
    with open(header, encoding="utf-8") as f:
        text = f.read()
    assert "aoti_torch_mps_run_command_block" in text and "aoti_torch_mps_create_shader_library" in text
    # the cffi extension uses this very library (one runtime per process)
    with open("/proc/self/maps", encoding="utf-8") as f:
        mapped = f.read()
    assert os.path.realpath(path) in mapped


def test_backend_and_runtime_info(session_cache_dir):
    assert mps_shim.backend_name() == "host"
    info = mps_shim.runtime_info()
    assert {"version", "backend", "compiler", "compiler_version", "cache_dir", "cache_disabled_reason",
            "threads"} <= set(info)
    assert info["version"] == mps_shim.__version__
    assert info["backend"] == "host"
    assert info["cache_dir"] == session_cache_dir
    assert info["cache_disabled_reason"] == ""
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert info["compiler"] and info["compiler_version"]
    assert mps_shim.synchronize() is None


# ---- Python threads ---------------------------------------------------------------------------------------------

def test_concurrent_calls_from_python_threads(cs):
    errors = []
    n_threads, rounds, n = 6, 25, 20_000

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(rounds):
                a = rng.standard_normal(n).astype(np.float32)
                b = rng.standard_normal(n).astype(np.float32)
                out = np.empty(n, np.float32)
                cs.add(out, a, b)
                if not np.array_equal(out, a + b):
                    errors.append(f"thread {seed}: wrong sum")
                v = np.float32(rng.standard_normal())
                cs.fill(out, v)
                if not np.all(out == v):
                    errors.append(f"thread {seed}: wrong fill")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    assert errors == []


def test_concurrent_compiles_from_python_threads():
    results, errors = {}, []

    def work(k):
        try:
            src = (f"kernel void scale{k}(device int* out, uint i [[thread_position_in_grid]]) "
                   f"{{ out[i] = int(i) * {k + 2}; }}\n")
            c = compile_shader(src)
            out = np.zeros(100, np.int32)
            getattr(c, f"scale{k}")(out)
            results[k] = out
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for k in range(3):
        np.testing.assert_array_equal(results[k], np.arange(100) * (k + 2))


def test_error_messages_are_per_thread(lib):
    fn = lib.get_kernel_function("fill")
    messages = {}

    def work(idx):
        try:
            block(fn, lambda f: f.set_arg_int(idx, 0))
        except ArgumentError as e:
            messages[idx] = str(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in (11, 12, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(messages) == [11, 12, 13]
    for idx, msg in messages.items():
        assert re.search(rf"no binding index {idx}\b", msg), msg
