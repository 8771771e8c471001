"""Function constants (`constant T name [[function_constant(index)]]`), set when a function is made:
each specialisation is a kernel function of its own, compiled and cached apart; constants fold at
compile time (template arguments, namespace-scope initializers); is_function_constant_defined; Metal's
required constants; wrong names, indices, types and sizes; parameters present only where a constant
is true; the C extension mps_shim_get_kernel_function_with_constants.
"""
import os
import struct

import numpy as np
import pytest

from mps_shim import ArgumentError, CompileError, ShaderLibrary, compile_shader
from mps_shim._native import ffi, lib as clib

SOURCE = r"""#include <metal_stdlib>
using namespace metal;
#define FC_BASE 1200

constant short MODE    [[function_constant(FC_BASE + 0)]];
constant bool  SHIFT   [[function_constant(FC_BASE + 1)]];
constant float FACTOR  [[function_constant(3)]];
constant bool  HAS_FACTOR = is_function_constant_defined(FACTOR);
constant int   WIDTH   [[function_constant(7)]];
constant int   WIDE    = WIDTH * 2 + 1;       // read through a namespace-scope variable
constant half  HALF_C  [[function_constant(20)]];
constant float2 PAIR   [[function_constant(21)]];
constant uint  UNUSED  [[function_constant(30)]];

kernel void apply(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    float v = x[i];
    if (MODE == 1) v = v * 2.0f; else if (MODE == 2) v = -v;
    if (SHIFT) v += 100.0f;
    if (HAS_FACTOR) v *= FACTOR;
    out[i] = v;
}

template <int N>
float sum_first(constant float* x) {
    float s = 0.0f;
    for (int k = 0; k < N; ++k) s += x[k];
    return s;
}

kernel void templated(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    float lanes[WIDTH > 0 ? WIDTH : 1];                     // a compile-time constant
    for (int k = 0; k < WIDTH; ++k) lanes[k] = float(k);
    out[i] = sum_first<WIDTH>(x) + lanes[WIDTH - 1] + float(WIDE);
}

kernel void values(device float* out, uint i [[thread_position_in_grid]]) {
    out[0] = float(HALF_C);
    out[1] = PAIR.x;
    out[2] = PAIR.y;
    out[3] = is_function_constant_defined(PAIR) ? 1.0f : 0.0f;
}

kernel void plain(device float* out, uint i [[thread_position_in_grid]]) { out[i] = float(i); }
"""


def run(fn, out, *inputs, threads=None):
    def encode(k):
        k.start_encoding()
        for i, a in enumerate((out,) + inputs):
            k.set_arg_tensor(i, a)
        k.dispatch(threads or out.size)

    fn.run_command_block(encode)
    return out


@pytest.fixture(scope="module", params=[None, False], ids=["auto", "lazy"])
def library(request):
    return ShaderLibrary(SOURCE, eager=request.param)


def test_the_library_lists_its_function_constants(library):
    fcs = library.function_constants
    assert {n: (c["type"], c["index"], c["required"]) for n, c in fcs.items()} == {
        "MODE": ("short", 1200, True), "SHIFT": ("bool", 1201, True), "FACTOR": ("float", 3, False),
        "WIDTH": ("int", 7, True), "HALF_C": ("half", 20, True), "PAIR": ("float2", 21, False),
        "UNUSED": ("uint", 30, True)}
    assert fcs["MODE"]["data_type"] == 37 and fcs["PAIR"]["data_type"] == 4 and fcs["PAIR"]["size"] == 8
    assert library.kernels["apply"]["function_constants"] == ["MODE", "SHIFT", "FACTOR"]
    assert library.kernels["templated"]["function_constants"] == ["WIDTH"]   # WIDE is read through WIDTH
    assert library.kernels["plain"]["function_constants"] == []


@pytest.mark.parametrize("metal_type", ["bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong",
                                        "half", "bfloat", "float", "int16_t", "uint8_t", "float3", "half4", "bool2"])
def test_each_type_has_its_mtl_data_type_code(metal_type):
    lib = ShaderLibrary(f"constant {metal_type} c [[function_constant(0)]];\n"
                        "kernel void k(device int* o, uint i [[thread_position_in_grid]]) { o[i] = 0; }\n", eager=False)
    aliases = {"int16_t": "short", "uint8_t": "uchar"}
    name = aliases.get(metal_type, metal_type)
    assert lib.function_constants["c"]["type"] == name
    assert lib.function_constants["c"]["data_type"] == getattr(clib, "MPS_SHIM_DATA_TYPE_" + name.upper())


def test_specialisations_give_different_results(library):
    x = np.arange(6, dtype=np.float32)
    doubled = run(library.get_kernel_function("apply", {"MODE": 1, "SHIFT": False}), np.zeros(6, np.float32), x)
    assert np.array_equal(doubled, x * 2)
    # by index, with the optional constant set
    negated = run(library.get_kernel_function("apply", {1200: 2, 1201: True, "FACTOR": 0.5}), np.zeros(6, np.float32), x)
    assert np.array_equal(negated, (100 - x) * 0.5)
    untouched = run(library.get_kernel_function("apply", {"MODE": 0, "SHIFT": False}), np.zeros(6, np.float32), x)
    assert np.array_equal(untouched, x)


def test_constants_fold_at_compile_time(library):
    x = np.arange(8, dtype=np.float32)
    for width in (3, 5):
        out = run(library.get_kernel_function("templated", {"WIDTH": width}), np.zeros(4, np.float32), x)
        assert np.all(out == x[:width].sum() + (width - 1) + (2 * width + 1)), (width, out)


def test_values_of_every_kind(library):
    fn = library.get_kernel_function("values", {"HALF_C": 1.5, "PAIR": (0.25, -3.0)})
    assert run(fn, np.zeros(4, np.float32), threads=1).tolist() == [1.5, 0.25, -3.0, 1.0]
    fn = library.get_kernel_function("values", {"HALF_C": -2})
    # an unset optional constant is undefined: is_function_constant_defined is false and it reads as zero
    assert run(fn, np.zeros(4, np.float32), threads=1).tolist() == [-2.0, 0.0, 0.0, 0.0]
    assert fn.info["constants"] == {"HALF_C": "0xc000"}


def test_each_specialisation_is_one_function(library):
    a = library.get_kernel_function("apply", {"MODE": 1, "SHIFT": True})
    assert library.get_kernel_function("apply", {"SHIFT": 1, 1200: 1}) is a
    b = library.get_kernel_function("apply", {"MODE": 2, "SHIFT": True})
    assert b is not a and b._handle != a._handle
    assert a.info["constants"] == {"MODE": "1", "SHIFT": "true"}


def test_a_kernel_without_constants_needs_none(library):
    out = run(library.get_kernel_function("plain"), np.zeros(5, np.float32))
    assert out.tolist() == [0, 1, 2, 3, 4]


def test_a_required_constant_without_a_value_is_an_error(library):
    with pytest.raises(ArgumentError, match=r"kernel 'apply' reads function constant 'MODE' \(short, index 1200, "
                                            r"line 5\), which has no value"):
        library.get_kernel_function("apply")
    with pytest.raises(ArgumentError, match="'SHIFT'"):
        library.get_kernel_function("apply", {"MODE": 1})
    with pytest.raises(ArgumentError, match="'WIDTH'"):
        library.get_kernel_function("templated", {"MODE": 1})


@pytest.mark.parametrize("constants, message", [
    ({"NOPE": 1}, r"declares no function constant 'NOPE' \(its function constants: 'MODE' \(1200\)"),
    ({99: 1}, r"declares no function constant index 99"),
    ({"MODE": 1 << 20, "SHIFT": True}, r"'MODE' \(short\): 1048576 does not fit \(-32768 to 32767\)"),
    ({"MODE": 1.5, "SHIFT": True}, r"'MODE' \(short\) is an integer"),
    ({"MODE": 1, "SHIFT": 2}, r"'SHIFT' \(bool\) is a bool"),
    ({"MODE": 1, "SHIFT": True, "PAIR": 1.0}, r"'PAIR' \(float2\) takes 2 values, got 1"),
    ({"MODE": 1, "SHIFT": True, (1,): 1}, r"named by its name or index"),
])
def test_bad_values_are_argument_errors(library, constants, message):
    with pytest.raises(ArgumentError, match=message):
        library.get_kernel_function("apply", constants)


def c_get(library, name, constants):
    """mps_shim_get_kernel_function_with_constants with [(name or index, type, bytes)]; returns (code, handle)."""
    array = ffi.new("mps_shim_function_constant[]", max(1, len(constants)))
    keep = []
    for entry, (which, data_type, data) in zip(array, constants):
        if isinstance(which, str):
            keep.append(ffi.new("char[]", which.encode()))
            entry.name = keep[-1]
        else:
            entry.index = which
        keep.append(ffi.new("char[]", data or b"\0"))
        entry.type, entry.value, entry.size = data_type, keep[-1], len(data)
    out = ffi.new("AOTIMetalKernelFunctionHandle*")
    code = clib.mps_shim_get_kernel_function_with_constants(library._handle, name.encode(), array, len(constants), out)
    return code, out[0]


def c_error():
    message = ffi.string(clib.mps_shim_last_error()).decode()
    kind = clib.mps_shim_last_error_kind()
    clib.mps_shim_mark_last_error_read()
    return kind, message


def test_the_c_extension_checks_types_and_sizes(library):
    short1, true = struct.pack("<h", 1), b"\1"
    code, handle = c_get(library, "apply", [(1200, clib.MPS_SHIM_DATA_TYPE_SHORT, short1),
                                            ("SHIFT", clib.MPS_SHIM_DATA_TYPE_BOOL, true)])
    assert code == 0
    assert handle == library.get_kernel_function("apply", {"MODE": 1, "SHIFT": True})._handle
    code, _ = c_get(library, "apply", [(1200, clib.MPS_SHIM_DATA_TYPE_NONE, short1), (1201, 0, true)])
    assert code == 0  # NONE: the declared type
    for constants, message in [
        ([(1200, clib.MPS_SHIM_DATA_TYPE_INT, struct.pack("<i", 1))],
         "function constant 'MODE' is declared short (MTLDataType 37) but the value given has MTLDataType 29"),
        ([(1200, clib.MPS_SHIM_DATA_TYPE_SHORT, b"\1")], "function constant 'MODE' (short) takes 2 bytes, got 1"),
        ([(1200, 0, short1), ("MODE", 0, short1)], "function constant 'MODE' is given twice"),
    ]:
        code, _ = c_get(library, "apply", constants)
        assert code == 1
        assert c_error() == (clib.MPS_SHIM_ERROR_ARGUMENT, f"[mps_shim_get_kernel_function_with_constants] "
                                                           f"kernel 'apply': {message}")


def test_constants_at_the_call_of_compile_shader():
    lib = compile_shader(SOURCE)
    x = np.arange(4, dtype=np.float32)
    out = np.zeros(4, np.float32)
    lib.apply(out, x, constants={"MODE": 2, "SHIFT": False})
    assert np.array_equal(out, -x)
    with pytest.raises(ArgumentError, match="'MODE'"):
        lib.apply(out, x)


PARAMETERS = r"""#include <metal_stdlib>
using namespace metal;
constant bool has_bias [[function_constant(300)]];
constant bool has_scale [[function_constant(301)]];

kernel void affine(device float* out [[buffer(0)]], constant float* x [[buffer(1)]],
                   constant float* bias [[buffer(2), function_constant(has_bias)]],
                   constant float& scale [[buffer(3), function_constant(has_scale)]],
                   uint i [[thread_position_in_grid]]) {
    float v = x[i];
    if (has_scale) v *= scale;
    if (has_bias) v += bias[i];
    out[i] = v;
}
"""


def test_a_parameter_exists_where_its_constant_is_true():
    lib = compile_shader(PARAMETERS)
    x = np.arange(4, dtype=np.float32)
    bias = np.full(4, 10, np.float32)
    out = np.zeros(4, np.float32)
    lib.affine(out, x, constants={"has_bias": False, "has_scale": False})  # two arguments: the others do not exist
    assert np.array_equal(out, x)
    lib.affine(out, x, bias, constants={"has_bias": True, "has_scale": False})
    assert np.array_equal(out, x + 10)
    lib.affine(out, x, bias, 3.0, constants={"has_bias": True, "has_scale": True})
    assert np.array_equal(out, x * 3 + 10)
    fn = lib.library.get_kernel_function("affine", {"has_bias": False, "has_scale": True})
    assert [p["name"] for p in fn.params] == ["out", "x", "scale", "i"]
    with pytest.raises(ArgumentError, match="has no binding index 2"):
        fn.run_command_block(lambda k: (k.start_encoding(), k.set_arg_tensor(2, bias)))


@pytest.mark.parametrize("source, message", [
    ("struct S { int a; };\nconstant S s [[function_constant(0)]];\n",
     r"library.metal:2: error: function constant 's' has type 'S'; a function constant is a Metal scalar or vector"),
    ("constant int a [[function_constant(1)]];\nconstant bool b [[function_constant(1)]];\n",
     r"library.metal:2: error: function constants 'a' \(line 1\) and 'b' share the index 1"),
    ("constant int a [[function_constant(N)]];\n", r"library.metal:1: error: function constant 'a': the index 'N' is "
                                                   r"not an integer constant from 0 to 65535"),
    ("constant int a [[function_constant(0)]] = 3;\n", r"function constant 'a': `;` expected after its attribute"),
    ("constant int a [[function_constant(0)]];\nconstant bool d = is_function_constant_defined(b);\n",
     r"library.metal:2: error: is_function_constant_defined: 'b' is not a function constant"),
])
def test_declarations_metal_rejects_fail_at_creation(source, message):
    with pytest.raises(CompileError, match=message):
        ShaderLibrary(source + "kernel void k(device int* o, uint i [[thread_position_in_grid]]) { o[i] = 0; }\n",
                      eager=False)


@pytest.mark.host_engine(reason="counts the host module cache's .so files")
def test_each_specialisation_is_cached_apart_on_disk(run_python, tmp_path):
    """A second process finds every specialisation in the cache: one module per (kernel, values)."""
    code = f"""
import numpy as np, mps_shim
lib = mps_shim.ShaderLibrary(open({str(tmp_path / 's.metal')!r}).read(), eager=False)
for mode in (1, 2, 1):
    lib.get_kernel_function("apply", {{"MODE": mode, "SHIFT": False}})
lib.get_kernel_function("plain")
"""
    (tmp_path / "s.metal").write_text(SOURCE)
    env = {"MPS_SHIM_CACHE_DIR": str(tmp_path / "cache"), "MPS_SHIM_KEEP_CXX": str(tmp_path / "keep") + "/"}
    (tmp_path / "keep").mkdir()
    r = run_python(code, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    modules = sorted(n for n in os.listdir(tmp_path / "cache") if n.endswith(".so"))
    assert len(modules) == 3, modules
    kept = sorted(p.name for p in (tmp_path / "keep").iterdir())
    assert len(kept) == 3 and sum(".apply." in k for k in kept) == 2 and sum(k.endswith(".plain.cpp") for k in kept) == 1
    apply_cpp = (tmp_path / "keep" / next(k for k in kept if ".apply." in k)).read_text()
    assert "constexpr short MODE = short(" in apply_cpp and "constexpr float FACTOR{};" in apply_cpp
    for name in kept:
        (tmp_path / "keep" / name).unlink()
    r = run_python(code, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(n for n in os.listdir(tmp_path / "cache") if n.endswith(".so")) == modules
    assert list((tmp_path / "keep").iterdir()) == []  # nothing compiled again


# MLX's gemv.h: GEMVKernel::run and GemvWide::run share a name; only GemvWide's reads the wide
# kernels' constants, and the gemv kernels reach GEMVKernel::run through an alias. GemvWide's
# template header has a default argument (`typename AccT = ...`), not an initializer of a variable.
SAME_NAMED_MEMBERS = r"""
#include <metal_stdlib>
using namespace metal;
constant bool WIDE_SCALE [[function_constant(3)]];
template <typename T> struct Acc { using type = float; };
template <typename T, typename AccT = typename Acc<T>::type>
struct Narrow {
  static void run(device T* out, uint i) { out[i] = T(AccT(i) + 0.5f); }
};
template <typename T, typename AccT = typename Acc<T>::type>
struct Wide {
  static void run(device T* out, uint i) { out[i] = WIDE_SCALE ? T(2 * i) : T(i); }
};
template <typename T>
kernel void narrow(device T* out, uint i [[thread_position_in_grid]]) {
  using kernel_impl = Narrow<T>;
  kernel_impl::run(out, i);
}
template <typename T>
kernel void wide(device T* out, uint i [[thread_position_in_grid]]) {
  Wide<T>::run(out, i);
}
template <typename Impl>
kernel void through_parameter(device float* out, uint i [[thread_position_in_grid]]) {
  Impl::run(out, i);  // Impl may be any class: every `run` counts
}
template [[host_name("narrow")]] kernel void narrow<float>(device float*, uint);
template [[host_name("wide")]] kernel void wide<float>(device float*, uint);
template [[host_name("through_parameter")]] kernel void through_parameter<Wide<float>>(device float*, uint);
"""


def test_a_member_call_through_its_class_reaches_only_that_class():
    library = ShaderLibrary(SAME_NAMED_MEMBERS)
    out = run(library.get_kernel_function("narrow"), np.zeros(4, np.float32))
    assert out.tolist() == [0.5, 1.5, 2.5, 3.5]
    for kernel in ("wide", "through_parameter"):
        with pytest.raises(ArgumentError, match=rf"kernel '{kernel}' reads function constant 'WIDE_SCALE'"):
            library.get_kernel_function(kernel)
        out = run(library.get_kernel_function(kernel, {"WIDE_SCALE": True}), np.zeros(4, np.float32))
        assert out.tolist() == [0, 2, 4, 6]
