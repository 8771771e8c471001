"""Conformance: Metal's common, math, relational and geometric functions.

Each function runs on float (sampled over its domain and special values), on
every half and every bfloat bit pattern, and on vectors (whose lanes must equal
the scalar results bit for bit). Results are compared with float64 numpy
references; the allowed error is the precise-math column of the Metal Shading
Language Specification (v4, Table 8.1 for float, Table 8.3 for half: "0" means
correctly rounded or exact). Metal has no math functions for bfloat: a bfloat
argument converts to float, and the kernel rounds the float result to bfloat;
that is checked against the float reference rounded, at half's bounds.
Overload resolution, Metal's NaN rules and scalar/vector mixes are tested too.
"""
import zlib

import numpy as np
import pytest

import mps_shim

N = 65536  # every half / bfloat bit pattern, and the float sample size
INF, NAN = np.inf, np.nan

# ---- formats -----------------------------------------------------------------------------
# (significand bits, exponent of the smallest subnormal)
FORMATS = {"f": (24, -149), "h": (11, -24), "b": (8, -133)}


def f64_to_bf16_bits(x):
    """float64 -> bfloat16 bits, one rounding to nearest even."""
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        e = np.frexp(np.abs(x))[1]
        ulp = np.ldexp(1.0, np.maximum(e - 8, -133))
        r = (np.rint(x / ulp) * ulp).astype(np.float32)  # exact scaling; overflow gives inf
    bits = (r.view(np.uint32) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), bits)


def bf16_to_f32(bits):
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to(ref, fmt):
    """ref (float64) rounded once to the format, as float64."""
    with np.errstate(all="ignore"):
        if fmt == "f":
            return ref.astype(np.float32).astype(np.float64)
        if fmt == "h":
            return ref.astype(np.float16).astype(np.float64)
        return bf16_to_f32(f64_to_bf16_bits(ref)).astype(np.float64)


def ulp_error(got, ref, fmt):
    """|got - ref| in units of the format's ulp at ref (spec section 8.4).

    NaN must match NaN; an infinite result or reference must equal the rounded reference."""
    mant, emin = FORMATS[fmt]
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    with np.errstate(all="ignore"):
        a = np.abs(ref)
        e = np.frexp(a)[1]
        e = np.where(a == 0, emin + mant, e)
        ulp = np.ldexp(1.0, np.maximum(e - mant, emin))
        err = np.abs(got - ref) / ulp
        special = ~np.isfinite(ref) | ~np.isfinite(got)
        ok = (np.isnan(got) & np.isnan(ref)) | (got == round_to(ref, fmt))
    return np.where(special, np.where(ok, 0.0, np.inf), err)


def assert_ulps(got, ref, fmt, bound, x=None, what=""):
    """Error <= bound ulp; bound 0 means the correctly rounded result."""
    got, ref = np.ravel(got), np.ravel(ref)
    err = ulp_error(got, ref, fmt)
    limit = 0.5 if bound == 0 else bound
    worst = int(np.nanargmax(err))
    detail = "" if x is None else f" for input {np.asarray(x).ravel()[worst]!r}"
    assert err[worst] <= limit, f"{what}: {err[worst]:.3f} ulp{detail} (got {got[worst]!r}, want {ref[worst]!r})"
    if bound == 0:  # correctly rounded: also equal to the rounded reference (ties included)
        exact = (np.asarray(got, np.float64) == round_to(ref, fmt)) | (np.isnan(got) & np.isnan(ref))
        assert exact.all(), f"{what}: not correctly rounded for input {np.asarray(x).ravel()[np.argmin(exact)]!r}"


def bits_equal(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return np.array_equal(a.view(np.uint8), b.view(np.uint8))


def same(got, want):
    """Equal bits, except that any NaN matches any NaN."""
    got, want = np.asarray(got), np.asarray(want, got.dtype)
    nan = np.isnan(got) & np.isnan(want)
    return bool(np.isnan(got).sum() == nan.sum() == np.isnan(want).sum()) and bits_equal(got[~nan], want[~nan])


# ---- inputs ------------------------------------------------------------------------------
SPECIALS = np.array([0.0, -0.0, INF, -INF, NAN, 1.0, -1.0, 0.5, -0.5, 1e-45, -1e-45, 1e-40, -3e-39,
                     1.1754942e-38, 3.4028235e38, -3.4028235e38, 2.0, 3.0, 1.5, -2.5, 1e-7, 16777216.0,
                     16777217.0, 8388607.5, -8388609.0], np.float64)


def floats(rng, lo, hi, n=N, log=False, signed=True):
    """n float32 values: uniform on [lo, hi], or log-uniform magnitudes there (optionally signed),
    with the special values first."""
    if log:
        v = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        if signed:
            v *= rng.choice([-1.0, 1.0], n)
    else:
        v = rng.uniform(lo, hi, n)
    v[: len(SPECIALS)] = SPECIALS
    return v.astype(np.float32)


def all_halves():
    return np.arange(N, dtype=np.uint32).astype(np.uint16).view(np.float16)


def all_bfloats():
    return np.arange(N, dtype=np.uint32).astype(np.uint16)


def sinpi_ref(x):
    a = np.abs(x)
    r = a - 2.0 * np.rint(a / 2.0)
    t = np.where(r > 0.5, 1.0 - r, np.where(r < -0.5, -1.0 - r, r))
    return np.copysign(1.0, x) * np.sin(np.pi * t)


def cospi_ref(x):
    a = np.abs(x)
    u = np.abs(a - 2.0 * np.rint(a / 2.0))
    return np.sin(np.pi * (0.5 - u))


def tanpi_ref(x):
    return sinpi_ref(x) / cospi_ref(x)


def round_ref(x):
    return np.where(np.abs(x) >= 2.0**23, x, np.trunc(x + np.copysign(0.5, x)))


def with_ties(step, lo):
    """Multiples of step around 0 (halfway and integer cases), then log-uniform floats from lo."""
    return lambda r: np.concatenate([np.arange(-64, 64) * np.float32(step), floats(r, lo, 1e9, N - 128, log=True)])


def fract_ref(below_one):
    def f(x):
        r = np.where(np.isinf(x), np.copysign(0.0, x), np.minimum(x - np.floor(x), below_one))
        return np.where(np.isnan(x), x, r)
    return f


# name: (float64 reference, float input generator (rng -> float32), float bound, half/bfloat bound)
UNARY = {
    "fabs": (np.abs, lambda r: floats(r, 1e-40, 1e38, log=True), 0, 0),
    "abs": (np.abs, lambda r: floats(r, 1e-40, 1e38, log=True), 0, 0),
    "floor": (np.floor, lambda r: floats(r, 1e-3, 1e9, log=True), 0, 0),
    "ceil": (np.ceil, lambda r: floats(r, 1e-3, 1e9, log=True), 0, 0),
    "trunc": (np.trunc, lambda r: floats(r, 1e-3, 1e9, log=True), 0, 0),
    "rint": (np.rint, with_ties(0.5, 1e-3), 0, 0),
    "round": (round_ref, with_ties(0.5, 1e-3), 0, 0),
    "sign": (lambda x: np.where(np.isnan(x), 0.0, np.sign(x)), lambda r: floats(r, 1e-45, 1e38, log=True), 0, 0),
    "saturate": (lambda x: np.where(np.isnan(x), 0.0, np.clip(x, 0.0, 1.0)), lambda r: floats(r, -2, 2), 0, 0),
    "sqrt": (np.sqrt, lambda r: floats(r, 1e-45, 3e38, log=True, signed=False), 0, 0),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), lambda r: floats(r, 1e-45, 3e38, log=True, signed=False), 0, 0),
    "exp": (np.exp, lambda r: floats(r, -110, 95), 4, 1),
    "exp2": (np.exp2, lambda r: floats(r, -155, 130), 4, 1),
    "exp10": (lambda x: np.power(10.0, x), lambda r: floats(r, -46, 40), 4, 1),
    "log": (np.log, lambda r: floats(r, 1e-45, 3e38, log=True), 4, 1),
    "log2": (np.log2, lambda r: floats(r, 1e-45, 3e38, log=True), 4, 1),
    "log10": (np.log10, lambda r: floats(r, 1e-45, 3e38, log=True), 4, 1),
    "sin": (np.sin, lambda r: floats(r, 1e-6, 1e6, log=True), 4, 1),
    "cos": (np.cos, lambda r: floats(r, 1e-6, 1e6, log=True), 4, 1),
    "tan": (np.tan, lambda r: floats(r, 1e-6, 1e6, log=True), 6, 1),
    "asin": (np.arcsin, lambda r: floats(r, -1.1, 1.1), 4, 1),
    "acos": (np.arccos, lambda r: floats(r, -1.1, 1.1), 4, 1),
    "atan": (np.arctan, lambda r: floats(r, 1e-6, 1e9, log=True), 5, 1),
    "sinh": (np.sinh, lambda r: floats(r, -92, 92), 4, 1),
    "cosh": (np.cosh, lambda r: floats(r, -92, 92), 4, 1),
    "tanh": (np.tanh, lambda r: floats(r, -12, 12), 5, 1),
    "asinh": (np.arcsinh, lambda r: floats(r, 1e-6, 1e30, log=True), 4, 1),
    "acosh": (np.arccosh, lambda r: floats(r, 0.9, 1e30, log=True, signed=False), 4, 1),
    "atanh": (np.arctanh, lambda r: floats(r, -1.05, 1.05), 5, 1),
    "sinpi": (sinpi_ref, with_ties(0.5, 1e-6), 4, 1),
    "cospi": (cospi_ref, with_ties(0.5, 1e-6), 4, 1),
    "tanpi": (tanpi_ref, with_ties(0.25, 1e-6), 6, 1),
    "fract": ({"f": fract_ref(1 - 2**-24), "h": fract_ref(1 - 2**-11), "b": fract_ref(1 - 2**-8)},
              lambda r: floats(r, 1e-30, 1e9, log=True), 0, 0),
}


def _ref(entry, fmt):
    return entry[fmt] if isinstance(entry, dict) else entry


def pow_inputs(r):
    x = np.exp(r.uniform(-8, 8, N)) * r.choice([1.0, -1.0], N, p=[0.8, 0.2])
    y = np.where(x < 0, np.rint(r.uniform(-9, 9, N)), r.uniform(-12, 12, N))
    return x.astype(np.float32), y.astype(np.float32)


def pair(r, lo=-1e3, hi=1e3):
    x, y = r.uniform(lo, hi, N), r.uniform(lo, hi, N)
    sp = np.array([0.0, -0.0, INF, -INF, NAN, 1.0, -1.0, 1e-40], np.float64)
    g = np.stack(np.meshgrid(sp, sp), -1).reshape(-1, 2)
    x[: len(g)], y[: len(g)] = g[:, 0], g[:, 1]
    y[len(g): len(g) + 500] = x[len(g): len(g) + 500]  # equal operands
    return x.astype(np.float32), y.astype(np.float32)


def _fdim(x, y):
    return np.where(np.isnan(x) | np.isnan(y), NAN, np.where(x > y, x - y, 0.0))


def _powr(x, y):
    with np.errstate(all="ignore"):
        p = np.power(np.where(x == 0, 0.0, x), y)
    bad = (x < 0) | ((y == 0) & ((x == 0) | (x == INF))) | ((x == 1) & np.isinf(y))
    return np.where(bad | np.isnan(x) | np.isnan(y), NAN, p)


# name: (float64 reference, inputs (rng -> float32 arrays), float bound, half/bfloat bound)
BINARY = {
    "fmin": (np.fmin, pair, 0, 0),
    "fmax": (np.fmax, pair, 0, 0),
    "min": (np.fmin, pair, 0, 0),
    "max": (np.fmax, pair, 0, 0),
    "copysign": (np.copysign, pair, 0, 0),
    "fmod": (np.fmod, lambda r: pair(r, -1e6, 1e6), 0, 0),
    "fdim": (_fdim, pair, 0, 0),
    "divide": (np.divide, pair, 0, 0),
    "step": (lambda e, x: np.where(x < e, 0.0, 1.0), pair, 0, 0),
    "atan2": (np.arctan2, pair, 6, 1),
    "pow": (np.power, pow_inputs, 16, 1),
    "powr": (_powr, lambda r: tuple(np.abs(v) if k == 0 else v for k, v in enumerate(pow_inputs(r))), 16, 1),
}


def triple(r, lo=-4, hi=4):
    return tuple(r.uniform(lo, hi, N).astype(np.float32) for _ in range(3))


def _median3(x, y, z):
    return np.fmax(np.fmin(x, y), np.fmin(np.fmax(x, y), z))


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def uniform(r, *ranges):
    return tuple(r.uniform(lo, hi, N).astype(np.float32) for lo, hi in ranges)


def smooth_inputs(r):
    e0, width, x = uniform(r, (-2, 0), (0.1, 2), (-3, 3))
    return e0, e0 + width, x


def fma_inputs(r):
    # |z| within a few binades of x*y: the float64 sum is then exact and the reference rounds once
    x, y = r.uniform(1, 2, N) * r.choice([1, -1], N), r.uniform(1, 2, N)
    return x.astype(np.float32), y.astype(np.float32), r.uniform(-8, 8, N).astype(np.float32)


TERNARY = {
    "fma": (lambda a, b, c: a * b + c, fma_inputs, 0, 0),
    "clamp": (lambda x, lo, hi: np.fmin(np.fmax(x, lo), hi), lambda r: uniform(r, (-3, 3), (-2, 0), (0, 2)), 0, 0),
    # Metal's x + (y - x) * a, with y - x rounded to float and one fused multiply-add
    "mix": (lambda x, y, a: (y - x).astype(np.float32) * a + x, lambda r: uniform(r, (-4, 4), (-4, 4), (0, 1)), 1, 1),
    "smoothstep": (_smoothstep, smooth_inputs, 1, 1),  # not in Table 8.1; computed in double here
    "fmin3": (lambda x, y, z: np.fmin(x, np.fmin(y, z)), triple, 0, 0),
    "fmax3": (lambda x, y, z: np.fmax(x, np.fmax(y, z)), triple, 0, 0),
    "min3": (lambda x, y, z: np.fmin(x, np.fmin(y, z)), triple, 0, 0),
    "max3": (lambda x, y, z: np.fmax(x, np.fmax(y, z)), triple, 0, 0),
    "fmedian3": (_median3, triple, 0, 0),
    "median3": (_median3, triple, 0, 0),
}


# ---- kernels -------------------------------------------------------------------------------
# Each function gets one kernel over several types. Threads reach their element through an index
# buffer, which keeps g++ from vectorising the loop: a few hundred kernels then compile in seconds.
# PLAIN kernels (float and float4, element i of thread i) check the vectorised code gives the same bits.
SCALAR_TYPES = ["float", "half", "bfloat"]
VECTOR_TYPES = ["float4", "half4", "float3", "float2"]
UNARY_ALL_VECTORS = ["sqrt", "rsqrt", "exp", "sinpi", "round", "sign", "fract", "abs"]
BINARY_ALL_VECTORS = ["fmin", "max", "pow", "copysign"]
PLAIN = ["fabs", "round", "rint", "sign", "fract", "sqrt", "rsqrt", "exp", "log10", "sinpi", "cospi", "tanpi",
         "fmin", "max", "fdim", "step", "fma", "clamp", "mix", "fmedian3"]


def unary_types(name):
    return SCALAR_TYPES + (VECTOR_TYPES if name in UNARY_ALL_VECTORS else ["float4"])


def binary_types(name):
    return SCALAR_TYPES + (VECTOR_TYPES[:3] if name in BINARY_ALL_VECTORS else ["float4"])


TERNARY_TYPES = SCALAR_TYPES + ["float4"]


def _kernel(kname, call, types, arity):
    """kernel kname(outputs per type, arity inputs per type, index): out[j] = call(inputs[j]...)."""
    outs = [f"device {t}* o{k}" for k, t in enumerate(types)]
    ins = [f"constant {t}* a{k}_{m}" for k, t in enumerate(types) for m in range(arity)]
    # Metal has no bfloat math: a bfloat converts to float and the float result is rounded to bfloat here.
    body = " ".join(f"o{k}[j] = {'bfloat' if t == 'bfloat' else ''}({call}({', '.join(f'a{k}_{m}[j]' for m in range(arity))}));"
                    for k, t in enumerate(types))
    return (f"\nkernel void {kname}({', '.join(outs + ins)}, constant uint* idx, uint i [[thread_position_in_grid]]) "
            f"{{\n    const uint j = idx[i];\n    {body}\n}}")


def _plain_kernel(kname, call, arity):
    sig = ", ".join(["device float* o", "device float4* o4"] + [f"constant float* a{m}" for m in range(arity)]
                    + [f"constant float4* b{m}" for m in range(arity)])
    args = ", ".join(f"a{m}[i]" for m in range(arity))
    args4 = ", ".join(f"b{m}[i]" for m in range(arity))
    return (f"\nkernel void {kname}({sig}, uint i [[thread_position_in_grid]]) "
            f"{{ o[i] = {call}({args}); o4[i] = {call}({args4}); }}")


SOURCE = r"""
#include <metal_stdlib>
using namespace metal;
""" + "".join(_kernel(f"u_{n}", f"metal::{n}", unary_types(n), 1) for n in UNARY) + "".join(
    _kernel(f"b_{n}", f"metal::{n}", binary_types(n), 2) for n in BINARY) + "".join(
    _kernel(f"t_{n}", f"metal::{n}", TERNARY_TYPES, 3) for n in TERNARY) + "".join(
    _plain_kernel(f"p_{n}", f"metal::{n}", 1 if n in UNARY else 2 if n in BINARY else 3) for n in PLAIN) + r"""
kernel void swizzled(device float2* o, constant float4* x, constant float4* y, constant float4* z,
                     uint i [[thread_position_in_grid]]) {
    o[3 * i + 0] = clamp(x[i].xy, y[i].zw, z[i].yx);
    o[3 * i + 1] = fma(x[i].wz, y[i].xx, z[i].zw);
    o[3 * i + 2] = pow(x[i].xy, y[i].zw) + metal::sin(z[i].yz);
}

kernel void nextafter_k(device float* of, device half* oh, device bfloat* ob, device float4* o4,
                        constant float* xf, constant float* yf, constant half* xh, constant half* yh,
                        constant bfloat* xb, constant bfloat* yb, constant float4* x4, constant float4* y4,
                        uint i [[thread_position_in_grid]]) {
    of[i] = nextafter(xf[i], yf[i]); oh[i] = nextafter(xh[i], yh[i]); ob[i] = bfloat(nextafter(xb[i], yb[i]));
    o4[i] = nextafter(x4[i], y4[i]);
}

// Relational functions: one bit each, on float, half, bfloat and float4 lanes.
kernel void relational(device uint* out, constant float* x, constant float* y, uint i [[thread_position_in_grid]]) {
    const float a = x[i], b = y[i];
    const half h = half(a);
    const bfloat c = bfloat(a);
    const float4 v = float4(a, b, -a, 0.0f);
    uint r = 0;
    r |= uint(isnan(a)) << 0 | uint(isinf(a)) << 1 | uint(isfinite(a)) << 2 | uint(isnormal(a)) << 3;
    r |= uint(signbit(a)) << 4 | uint(isordered(a, b)) << 5 | uint(isunordered(a, b)) << 6;
    r |= uint(isnan(h)) << 7 | uint(isinf(h)) << 8 | uint(isfinite(h)) << 9 | uint(isnormal(h)) << 10;
    r |= uint(signbit(h)) << 11;
    r |= uint(isnan(c)) << 12 | uint(isinf(c)) << 13 | uint(isfinite(c)) << 14 | uint(isnormal(c)) << 15;
    r |= uint(signbit(c)) << 16;
    r |= uint(isnan(v).x) << 17 | uint(isnormal(v).y) << 18 | uint(signbit(v).z) << 19;
    r |= uint(isunordered(v, v.yxzw).x) << 20;
    r |= uint(any(isnan(v))) << 21 | uint(all(isfinite(v))) << 22 | uint(any(a < b)) << 23 | uint(all(a < b)) << 24;
    out[i] = r;
}

// select on scalars and vectors, with a bool vector and with one bool.
kernel void selects(device float4* out, device int4* iout, constant float4* a, constant float4* b, constant int4* k,
                    uint i [[thread_position_in_grid]]) {
    out[4 * i + 0] = select(a[i], b[i], a[i] < b[i]);
    out[4 * i + 1] = select(a[i], b[i], i % 2 == 0);
    out[4 * i + 2] = float4(select(a[i].x, b[i].x, a[i].x < b[i].x),
                            select(a[i].yzw, b[i].yzw, bool3(true, false, true)));
    out[4 * i + 3] = float4(select(half4(a[i]), half4(b[i]), k[i] > 0));
    iout[2 * i + 0] = select(k[i], -k[i], k[i] < 0);
    iout[2 * i + 1] = int4(select(k[i].x, 7, true), select(0u, 5u, false), select(short(3), short(4), true),
                           select(true, false, false));
}

// Out-parameters and integer arguments.
kernel void parts(device float4* out, device int4* iout, device half4* hout, constant float4* x, constant int4* k,
                  uint i [[thread_position_in_grid]]) {
    int4 e;
    out[5 * i + 0] = frexp(x[i], e);
    iout[3 * i + 0] = e;
    out[5 * i + 1] = ldexp(x[i], k[i]);
    iout[3 * i + 1] = ilogb(x[i]);
    float4 ip;
    out[5 * i + 2] = modf(x[i], ip);
    out[5 * i + 3] = ip;
    float4 c;
    out[5 * i + 4] = float4(sincos(x[i], c).xy, c.xy);
    int es;
    float fs = frexp(x[i].x, es);
    half he;
    hout[i] = half4(modf(half(x[i].x), he), he, ldexp(half(x[i].y), k[i].y), half(fs));
    iout[3 * i + 2] = int4(es, ilogb(half(x[i].x)), ilogb(bfloat(x[i].x)), 0);
}

kernel void geometric(device float* out, device half* hout, constant float4* a, constant float4* b,
                      uint i [[thread_position_in_grid]]) {
    const float4 x = a[i], y = b[i];
    device float* o = out + 32 * i;
    o[0] = dot(x, y); o[1] = dot(x.xyz, y.xyz); o[2] = dot(x.xy, y.xy);
    o[3] = length(x); o[4] = length(x.xyz); o[5] = length_squared(x); o[6] = distance(x, y);
    o[7] = distance_squared(x.xy, y.xy);
    const float3 n = normalize(x.xyz), c = cross(x.xyz, y.xyz), r = reflect(x.xyz, y.xyz);
    const float3 t = refract(normalize(x.xyz), normalize(y.xyz), 0.7f), f = faceforward(x.xyz, y.xyz, y.zxy);
    o[8] = n.x; o[9] = n.y; o[10] = n.z; o[11] = c.x; o[12] = c.y; o[13] = c.z; o[14] = r.x; o[15] = r.y; o[16] = r.z;
    o[17] = t.x; o[18] = t.y; o[19] = t.z; o[20] = f.x; o[21] = f.y; o[22] = f.z;
    const float2 n2 = normalize(x.xy);
    o[23] = n2.x; o[24] = n2.y; o[25] = precise::length(x.zw); o[26] = fast::distance(x.xy, y.xy);
    const half3 hc = cross(half3(float3(x.xyz)), half3(float3(y.xyz)));
    device half* h = hout + 8 * i;
    h[0] = dot(half4(x), half4(y)); h[1] = length(half3(float3(x.xyz))); h[2] = hc.x; h[3] = hc.y; h[4] = hc.z;
}

// Overload resolution as in Metal: swizzles and scalars convert to the vector overloads, an int
// argument converts where one overload alone fits (pow(x, 2): pow has no int version).
kernel void overloads(device float* out, device int* iout, constant float4* v, constant int* k,
                      uint i [[thread_position_in_grid]]) {
    const float4 a = v[i];
    const float x = a.x;
    device float* o = out + 32 * i;
    o[0] = clamp(x, 0.0f, 1.0f);
    o[1] = max(x, 0.0f);
    o[2] = min(1.0f, x);
    o[3] = pow(x, 2);
    const float2 e = metal::exp(a.xy);
    o[4] = e.x; o[5] = e.y;
    const float2 c = clamp(a.zw, 0.0f, 1.0f);
    o[6] = c.x; o[7] = c.y;
    const float4 m = mix(a, a.wzyx, 0.25f), s = step(0.5f, a), cl = clamp(a, 0.0f, 1.0f), mn = min(a, 0.5f);
    o[8] = m.x; o[9] = m.w; o[10] = s.x; o[11] = s.y; o[12] = cl.x; o[13] = cl.z; o[14] = mn.x; o[15] = mn.w;
    const float4 mx = max(0.0f, a), ss = smoothstep(0.0f, 1.0f, a), mi = fmin(a.xyzw, a.wzyx);
    o[16] = mx.x; o[17] = ss.y; o[18] = mi.x; o[19] = metal::precise::sin(x) - metal::sin(x);
    o[20] = metal::fast::exp(x) - exp(x);
    const half h = half(x);
    o[21] = float(clamp(h, 0.0h, 1.0h)); o[22] = float(max(h, 0.5h)); o[23] = float(abs(-h));
    o[24] = dot(a.xy, float2(1, 2)) + length(a.zw);
    const int j = k[i];
    device int* io = iout + 8 * i;
    io[0] = clamp(j, 0, 9); io[1] = abs(j); io[2] = min(j, 3); io[3] = int(max(uint(j), 4u));
    const int4 q = clamp(int4(j, -j, 2 * j, 100), 0, 50);
    io[4] = q.y; io[5] = q.w; io[6] = min(int4(j), 2).x; io[7] = abs(int4(-j)).z;
}

kernel void nan_rules(device float* out, constant float* x, constant float* y, uint i [[thread_position_in_grid]]) {
    const float a = x[i], b = y[i];
    device float* o = out + 12 * i;
    o[0] = fmin(a, b); o[1] = fmax(a, b); o[2] = min(a, b); o[3] = max(a, b);
    o[4] = clamp(a, -1.0f, 1.0f); o[5] = saturate(a); o[6] = sign(a); o[7] = fract(a);
    o[8] = fmedian3(a, b, 0.5f); o[9] = min3(a, b, 2.0f); o[10] = float(fract(half(a))); o[11] = float(sign(bfloat(a)));
}
"""


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(SOURCE)


def _lanes(x, width=4):
    """Rows of x, x rolled by 1, 2, ... (vector lanes built from scalar inputs)."""
    return np.ascontiguousarray(np.stack([np.roll(x, j) for j in range(width)], axis=1))


def _split(t):
    """'half4' -> ('half', 4); 'float' -> ('float', 1)."""
    return (t[:-1], int(t[-1])) if t[-1].isdigit() else (t, 1)


def _as_vector(x, width):
    """float3 occupies 4 lanes (the last one padding)."""
    if width == 1:
        return x
    if width == 3:
        v = np.zeros((len(x), 4), x.dtype)
        v[:, :3] = _lanes(x, 3)
        return v
    return _lanes(x, width)


STORAGE = {"float": np.float32, "half": np.float16, "bfloat": np.uint16}
IDX = np.random.default_rng(0).permutation(N).astype(np.uint32)


def run_kernel(lib, kname, types, operands):
    """operands: element type -> list of scalar input arrays. Returns type -> output array."""
    outs = []
    for t in types:
        elem, width = _split(t)
        outs.append(np.zeros((N,) if width == 1 else (N, 4 if width == 3 else width), STORAGE[elem]))
    ins = [_as_vector(a, _split(t)[1]) for t in types for a in operands[_split(t)[0]]]
    getattr(lib, kname)(*outs, *ins, IDX, threads=N)
    return dict(zip(types, outs))


def check_lanes(outs, what):
    """Each vector lane equals the scalar result of its element type, bit for bit."""
    for t, out in outs.items():
        elem, width = _split(t)
        for j in range(width if width > 1 else 0):
            assert bits_equal(out[:, j], np.roll(outs[elem], j)), f"{what}({t}): lane {j} differs from the scalar"


def check_plain(lib, name, operands, scalar_out):
    """The vectorisable loop (element i in thread i) gives the same bits."""
    if name not in PLAIN:
        return
    o, o4 = np.zeros(N, np.float32), np.zeros((N, 4), np.float32)
    getattr(lib, f"p_{name}")(o, o4, *operands, *[_lanes(a) for a in operands], threads=N)
    assert bits_equal(o, scalar_out), f"{name}: vectorised loop differs"
    check_lanes({"float": scalar_out, "float4": o4}, name)


def check_scalars(name, outs, operands, ref, bound_f, bound_hb):
    f64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    with np.errstate(all="ignore"):
        xf = operands["float"]
        assert_ulps(outs["float"], _ref(ref, "f")(*map(f64, xf)), "f", bound_f, xf[0], f"{name}(float)")
        xh = operands["half"]
        assert_ulps(outs["half"], _ref(ref, "h")(*map(f64, xh)), "h", bound_hb, xh[0], f"{name}(half)")
        # bfloat: Metal's float function (the argument converts to float), its result rounded to bfloat
        xb = [bf16_to_f32(b) for b in operands["bfloat"]]
        want_b = f64(_ref(ref, "f")(*map(f64, xb)).astype(np.float32))
        assert_ulps(bf16_to_f32(outs["bfloat"]), want_b, "b", bound_hb, xb[0], f"{name}(bfloat)")


# ---- element-wise functions -------------------------------------------------------------------
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(lib, name):
    ref, gen, bound_f, bound_hb = UNARY[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    operands = {"float": [gen(rng)[:N].astype(np.float32)], "half": [all_halves()], "bfloat": [all_bfloats()]}
    outs = run_kernel(lib, f"u_{name}", unary_types(name), operands)
    check_scalars(name, outs, operands, ref, bound_f, bound_hb)
    check_lanes(outs, name)
    check_plain(lib, name, operands["float"], outs["float"])


def _narrow_inputs(rng, xs):
    """half and bfloat operands: the float inputs rounded, with random bit patterns mixed in."""
    hs, bs = [], []
    for x in xs:
        pick = rng.random(N) < 0.15
        with np.errstate(all="ignore"):
            h = x.astype(np.float16)
        h = np.where(pick, rng.integers(0, 2**16, N).astype(np.uint16).view(np.float16), h)
        b = np.where(pick, rng.integers(0, 2**16, N).astype(np.uint16), f64_to_bf16_bits(x))
        hs.append(h)
        bs.append(b)
    return hs, bs


@pytest.mark.parametrize("name", list(BINARY))
def test_binary(lib, name):
    ref, gen, bound_f, bound_hb = BINARY[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = list(gen(rng))
    hs, bs = _narrow_inputs(rng, xs)
    operands = {"float": xs, "half": hs, "bfloat": bs}
    outs = run_kernel(lib, f"b_{name}", binary_types(name), operands)
    check_scalars(name, outs, operands, ref, bound_f, bound_hb)
    check_lanes(outs, name)
    check_plain(lib, name, xs, outs["float"])


def _fma_narrow_inputs(rng, to_bits, from_bits):
    """Operands whose float64 product-sum is exact, led by cases where rounding through float
    first would round twice and go wrong (so the single rounding is tested)."""
    m = 4 * N
    a = from_bits(to_bits(rng.uniform(0.5, 2, m) * rng.choice([1, -1], m))).astype(np.float64)
    b = from_bits(to_bits(rng.uniform(0.5, 2, m))).astype(np.float64)
    c = from_bits(to_bits(rng.uniform(-1, 1, m) * np.exp2(rng.integers(-30, 4, m)))).astype(np.float64)
    exact = a * b + c
    direct = from_bits(to_bits(exact)).astype(np.float64)
    via_float = from_bits(to_bits(exact.astype(np.float32).astype(np.float64))).astype(np.float64)
    hard = np.flatnonzero(direct != via_float)
    assert len(hard) > 10
    idx = np.concatenate([hard, np.arange(m)])[:N]
    return [to_bits(a[idx]), to_bits(b[idx]), to_bits(c[idx])]


@pytest.mark.parametrize("name", list(TERNARY))
def test_ternary(lib, name):
    ref, gen, bound_f, bound_hb = TERNARY[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = list(gen(rng))
    if name == "fma":
        hs = _fma_narrow_inputs(rng, lambda v: np.asarray(v, np.float64).astype(np.float16), lambda h: h)
        bs = _fma_narrow_inputs(rng, f64_to_bf16_bits, bf16_to_f32)
    else:
        hs, bs = _narrow_inputs(rng, xs)
    operands = {"float": xs, "half": hs, "bfloat": bs}
    outs = run_kernel(lib, f"t_{name}", TERNARY_TYPES, operands)
    check_scalars(name, outs, operands, ref, bound_f, bound_hb)
    check_lanes(outs, name)
    check_plain(lib, name, xs, outs["float"])


def test_swizzle_arguments_select_the_vector_overloads(lib):
    rng = np.random.default_rng(2)
    n = 1024
    x, y, z = (rng.uniform(1, 2, (n, 4)).astype(np.float32) for _ in range(3))
    out = np.zeros((3 * n, 2), np.float32)
    lib.swizzled(out, x, y, z, threads=n)
    lo, hi = y[:, [2, 3]], z[:, [1, 0]]
    np.testing.assert_array_equal(out[0::3], np.fmin(np.fmax(x[:, :2], lo), hi))
    want_fma = (x[:, [3, 2]].astype(np.float64) * y[:, [0, 0]] + z[:, [2, 3]]).astype(np.float32)  # exact in float64
    np.testing.assert_array_equal(out[1::3], want_fma)
    want = np.power(x[:, :2].astype(np.float64), y[:, 2:]) + np.sin(z[:, 1:3].astype(np.float64))
    np.testing.assert_allclose(out[2::3], want, rtol=4e-6)


def test_nextafter_steps_in_each_types_grid(lib):
    rng = np.random.default_rng(7)
    xf, yf = pair(rng, -10, 10)
    (xh, yh), (xb, yb) = _narrow_inputs(rng, (xf, yf))
    xh[:4], yh[:4] = [0, -0.0, 1, 65504], [-1, 1, 2, np.inf]
    of, oh, ob = np.zeros(N, np.float32), np.zeros(N, np.float16), np.zeros(N, np.uint16)
    o4 = np.zeros((N, 4), np.float32)
    lib.nextafter_k(of, oh, ob, o4, xf, yf, xh, yh, xb, yb, _lanes(xf), _lanes(yf), threads=N)
    assert same(of, np.nextafter(xf, yf))
    with np.errstate(all="ignore"):  # Metal: y when x == y (numpy's float16 keeps x for +-0)
        assert same(oh, np.where(xh == yh, yh, np.nextafter(xh, yh)))
    check_lanes({"float": of, "float4": o4}, "nextafter")
    # bfloat: Metal has no bfloat nextafter; the float neighbour, rounded to bfloat
    with np.errstate(all="ignore"):  # random bit patterns include signalling NaNs
        want = f64_to_bf16_bits(np.nextafter(bf16_to_f32(xb), bf16_to_f32(yb)).astype(np.float64))
    nan = np.isnan(bf16_to_f32(xb)) | np.isnan(bf16_to_f32(yb))
    assert np.where(nan, np.isnan(bf16_to_f32(ob)), ob == want).all()


# ---- special values and Metal's rules ----------------------------------------------------------
def _f32(*v):
    return np.array(v, np.float32)


def test_nan_zero_and_infinity_rules(lib):
    tiny = 1e-45
    x = _f32(NAN, 1.0, NAN, 0.0, -0.0, -INF, INF, tiny, -tiny, -1e-30, 2.75, -1.25, -6e-8)
    y = _f32(1.0, NAN, NAN, -0.0, 0.0, 2.0, NAN, -tiny, tiny, 0.0, -3.0, NAN, NAN)
    out = np.zeros((len(x), 12), np.float32)
    lib.nan_rules(out, x, y, threads=len(x))
    fmin, fmax, mn, mx, clamp, sat, sign, fract, med, min3, fract_h, sign_b = out.T
    # fmin/min: "returns y if y < x, otherwise x"; fmax/max: "y if x < y, otherwise x"; a NaN operand
    # gives the other one (so fmin(+0, -0) is +0 and fmax(-0, +0) is -0)
    want_min = _f32(1.0, 1.0, NAN, 0.0, -0.0, -INF, INF, -tiny, -tiny, -1e-30, -3.0, -1.25, -6e-8)
    want_max = _f32(1.0, 1.0, NAN, 0.0, -0.0, 2.0, INF, tiny, tiny, 0.0, 2.75, -1.25, -6e-8)
    for got, want in ((fmin, want_min), (mn, want_min), (fmax, want_max), (mx, want_max)):
        assert same(got, want)
    # clamp is fmin(fmax(x, lo), hi), so a NaN x gives lo; saturate likewise gives 0
    assert clamp[0] == -1.0 and sat[0] == 0.0 and clamp[5] == -1.0 and sat[6] == 1.0
    # sign: 0 for NaN, the zero itself for +-0, +-1 even for subnormals and infinities
    assert bits_equal(sign[:9], _f32(0.0, 1.0, 0.0, 0.0, -0.0, -1.0, 1.0, 1.0, -1.0))
    # fract: NaN stays NaN, +-inf give +-0, negative values wrap below 1
    assert np.isnan(fract[0]) and bits_equal(fract[5:7], _f32(-0.0, 0.0))
    assert fract[3] == 0 and fract[8] == np.float32((1 - 2**-24)) and fract[9] == np.float32((1 - 2**-24))
    assert fract[10] == 0.75 and fract[11] == 0.75
    # half: -2^-24 + 1 rounds to 1 in half, so the result is the largest half below 1
    assert fract_h[12] == np.float32(1 - 2**-11) and fract_h[10] == 0.75 and fract_h[9] == 0
    # median of (x, y, 0.5) with NaNs treated as missing data; min3 of (x, y, 2)
    # (with one NaN either remaining value may be returned)
    assert med[0] in (1.0, 0.5) and med[1] in (1.0, 0.5) and med[11] in (-1.25, 0.5)
    assert med[2] == 0.5 and med[10] == 0.5
    assert min3[2] == 2.0 and min3[0] == 1.0 and min3[10] == -3.0
    assert bits_equal(sign_b[:9], _f32(0.0, 1.0, 0.0, 0.0, -0.0, -1.0, 1.0, 0.0, -0.0))  # bfloat has no 1e-45


def test_relational_functions(lib):
    x = _f32(NAN, INF, -INF, 0.0, -0.0, 1e-40, -1.0, 6e-5, 1e-5, 70000.0, 2.0)
    y = _f32(1.0, NAN, 2.0, 0.0, 1.0, 1.0, -2.0, 1.0, 1.0, 1.0, 3.0)
    out = np.zeros(len(x), np.uint32)
    lib.relational(out, x, y, threads=len(x))
    bit = lambda k: ((out >> k) & 1).astype(bool)  # noqa: E731
    with np.errstate(all="ignore"):
        h = x.astype(np.float16).astype(np.float64)
        b = bf16_to_f32(f64_to_bf16_bits(x)).astype(np.float64)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def normal(v, smallest):
        return np.isfinite(v) & (np.abs(v) >= smallest)

    np.testing.assert_array_equal(bit(0), np.isnan(x))
    np.testing.assert_array_equal(bit(1), np.isinf(x))
    np.testing.assert_array_equal(bit(2), np.isfinite(x))
    np.testing.assert_array_equal(bit(3), normal(x64, 2.0**-126))
    np.testing.assert_array_equal(bit(4), np.signbit(x))
    np.testing.assert_array_equal(bit(5), ~np.isnan(x) & ~np.isnan(y))
    np.testing.assert_array_equal(bit(6), np.isnan(x) | np.isnan(y))
    for base, v, smallest in ((7, h, 2.0**-14), (12, b, 2.0**-126)):
        np.testing.assert_array_equal(bit(base), np.isnan(v))
        np.testing.assert_array_equal(bit(base + 1), np.isinf(v))
        np.testing.assert_array_equal(bit(base + 2), np.isfinite(v))
        np.testing.assert_array_equal(bit(base + 3), normal(v, smallest))  # half's own normal range
        np.testing.assert_array_equal(bit(base + 4), np.signbit(v))
    np.testing.assert_array_equal(bit(17), np.isnan(x))
    np.testing.assert_array_equal(bit(18), normal(y64, 2.0**-126))
    np.testing.assert_array_equal(bit(19), np.signbit(-x))
    np.testing.assert_array_equal(bit(20), np.isnan(x) | np.isnan(y))
    np.testing.assert_array_equal(bit(21), np.isnan(x) | np.isnan(y))
    np.testing.assert_array_equal(bit(22), np.isfinite(x) & np.isfinite(y))
    np.testing.assert_array_equal(bit(23), x < y)
    np.testing.assert_array_equal(bit(24), x < y)


def test_select(lib):
    rng = np.random.default_rng(11)
    n = 64
    a = rng.uniform(-2, 2, (n, 4)).astype(np.float32)
    b = rng.uniform(-2, 2, (n, 4)).astype(np.float32)
    k = rng.integers(-5, 5, (n, 4)).astype(np.int32)
    out, iout = np.zeros((4 * n, 4), np.float32), np.zeros((2 * n, 4), np.int32)
    lib.selects(out, iout, a, b, k, threads=n)
    even = (np.arange(n) % 2 == 0)[:, None]
    np.testing.assert_array_equal(out[0::4], np.where(a < b, b, a))
    np.testing.assert_array_equal(out[1::4], np.where(even, b, a))
    np.testing.assert_array_equal(out[2::4, 0], np.where(a[:, 0] < b[:, 0], b[:, 0], a[:, 0]))
    np.testing.assert_array_equal(out[2::4, 1:], np.where([True, False, True], b[:, 1:], a[:, 1:]))
    np.testing.assert_array_equal(out[3::4], np.where(k > 0, b.astype(np.float16), a.astype(np.float16)))
    np.testing.assert_array_equal(iout[0::2], np.abs(k))
    np.testing.assert_array_equal(iout[1::2], np.stack([np.full(n, 7), np.zeros(n), np.full(n, 4), np.ones(n)], 1))


def test_out_parameter_functions(lib):
    rng = np.random.default_rng(5)
    n = 4096
    x = (rng.uniform(-1, 1, (n, 4)) * np.exp2(rng.integers(-140, 120, (n, 4)))).astype(np.float32)
    x[0] = [0.0, -0.0, INF, NAN]
    x[1] = [1e-45, -3e-39, 1.0, -0.75]
    k = rng.integers(-300, 300, (n, 4)).astype(np.int32)
    out, iout, hout = np.zeros((5 * n, 4), np.float32), np.zeros((3 * n, 4), np.int32), np.zeros((n, 4), np.float16)
    lib.parts(out, iout, hout, x, k, threads=n)
    m, e = np.frexp(x)
    fin = np.isfinite(x)
    assert bits_equal(out[0::5][fin], m[fin]) and (iout[0::3][fin] == e[fin]).all()
    with np.errstate(all="ignore"):
        want_ldexp = np.ldexp(x.astype(np.float64), k).astype(np.float32)
    assert bits_equal(out[1::5], want_ldexp) or np.array_equal(out[1::5], want_ldexp, equal_nan=True)
    nz = fin & (x != 0)
    assert (iout[1::3][nz] == np.floor(np.log2(np.abs(x[nz].astype(np.float64))))).all()
    frac, whole = np.modf(x)
    assert np.array_equal(out[2::5], frac, equal_nan=True) and np.array_equal(out[3::5], whole, equal_nan=True)
    assert np.array_equal(out[2::5][0, :3], _f32(0.0, -0.0, 0.0)) and np.signbit(out[2::5][0, 1])
    sc = out[4::5]
    with np.errstate(all="ignore"):
        assert_ulps(sc[:, :2], np.sin(x[:, :2].astype(np.float64)), "f", 4, None, "sincos sin")
        assert_ulps(sc[:, 2:], np.cos(x[:, :2].astype(np.float64)), "f", 4, None, "sincos cos")
    with np.errstate(all="ignore"):
        hx = x[:, 0].astype(np.float16)
    hf, hw = np.modf(hx)
    ok = np.isfinite(hx)
    assert np.array_equal(hout[ok, 0], hf[ok]) and np.array_equal(hout[ok, 1], hw[ok])
    with np.errstate(all="ignore"):
        want_h = np.ldexp(x[:, 1].astype(np.float16).astype(np.float64), k[:, 1]).astype(np.float16)
    assert np.array_equal(hout[:, 2], want_h, equal_nan=True)
    assert (iout[2::3][fin[:, 0], 0] == e[fin[:, 0], 0]).all()
    hnz = np.isfinite(hx) & (hx != 0)
    assert (iout[2::3][hnz, 1] == np.floor(np.log2(np.abs(hx[hnz].astype(np.float64))))).all()


def test_geometric(lib):
    rng = np.random.default_rng(9)
    n = 4096
    a = rng.uniform(-3, 3, (n, 4)).astype(np.float32)
    b = rng.uniform(-3, 3, (n, 4)).astype(np.float32)
    out, hout = np.zeros((n, 32), np.float32), np.zeros((n, 8), np.float16)
    lib.geometric(out, hout, a, b, threads=n)
    x, y = a.astype(np.float64), b.astype(np.float64)
    nrm = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    dot = lambda u, v: np.sum(u * v, axis=1)  # noqa: E731
    f32 = lambda v: v.astype(np.float32).astype(np.float64)  # noqa: E731
    i3, n3 = f32(nrm(x[:, :3])), f32(nrm(y[:, :3]))  # refract's arguments, normalised in float by the kernel
    d = dot(n3, i3)
    eta = np.float64(np.float32(0.7))
    k = 1 - eta**2 * (1 - d**2)
    refr = np.where(k[:, None] < 0, 0.0, eta * i3 - (eta * d + np.sqrt(np.maximum(k, 0)))[:, None] * n3)
    face = np.where((dot(y[:, [2, 0, 1]], y[:, :3]) < 0)[:, None], x[:, :3], -x[:, :3])
    yn = nrm(y[:, :3])
    want = np.column_stack([
        dot(x, y), dot(x[:, :3], y[:, :3]), dot(x[:, :2], y[:, :2]),
        np.linalg.norm(x, axis=1), np.linalg.norm(x[:, :3], axis=1), dot(x, x), np.linalg.norm(x - y, axis=1),
        dot(x[:, :2] - y[:, :2], x[:, :2] - y[:, :2]),
        nrm(x[:, :3]), np.cross(x[:, :3], y[:, :3]), x[:, :3] - 2 * dot(yn, x[:, :3])[:, None] * yn, refr, face,
        nrm(x[:, :2]), np.linalg.norm(x[:, 2:], axis=1), np.linalg.norm(x[:, :2] - y[:, :2], axis=1)])
    # accumulated in double and rounded once: within an ulp of the float64 result
    assert_ulps(out[:, : want.shape[1]], want, "f", 1, None, "geometric")
    hx, hy = a.astype(np.float16).astype(np.float64), b.astype(np.float16).astype(np.float64)
    hwant = np.column_stack([dot(hx, hy), np.linalg.norm(hx[:, :3], axis=1), np.cross(hx[:, :3], hy[:, :3])])
    hgot = hout[:, :5].astype(np.float64)
    assert (np.abs(hgot - hwant) <= 2 * 2.0**-10 * np.maximum(np.abs(hwant), 2.0**-6)).all()


def test_overload_resolution_follows_metal(lib):
    v = _f32(0.25, -1.5, 2.0, 0.75, 1.5, 0.5, -0.25, 3.0).reshape(2, 4)
    k = np.array([5, -12], np.int32)
    out, iout = np.zeros((2, 32), np.float32), np.zeros((2, 8), np.int32)
    lib.overloads(out, iout, v, k, threads=2)
    o = out[0]
    assert o[0] == 0.25 and o[1] == 0.25 and o[2] == 0.25 and o[3] == np.float32(0.0625)
    assert_ulps(o[4:6], np.exp(v[0, :2].astype(np.float64)), "f", 4, None, "exp(v.xy)")
    np.testing.assert_array_equal(o[6:8], [1.0, 0.75])
    a, w = v[0].astype(np.float64), v[0, ::-1].astype(np.float64)
    np.testing.assert_allclose(o[8:10], (a + (w - a) * 0.25)[[0, 3]], rtol=1e-6)
    np.testing.assert_array_equal(o[10:12], [0.0, 0.0])
    np.testing.assert_array_equal(o[12:16], [0.25, 1.0, 0.25, 0.5])
    assert o[16] == 0.25 and o[17] == 0.0 and o[18] == 0.25 and o[19] == 0.0 and o[20] == 0.0
    assert o[21] == 0.25 and o[22] == 0.5 and o[23] == 0.25
    assert_ulps(o[24:25], np.array([0.25 - 3.0 + np.hypot(2.0, 0.75)]), "f", 2, None, "dot + length")
    assert out[1, 0] == 1.0 and out[1, 1] == 1.5 and out[1, 2] == 1.0
    np.testing.assert_array_equal(iout[0], [5, 5, 3, 5, 0, 50, 2, 5])
    np.testing.assert_array_equal(iout[1], [0, 12, -12, -12, 12, 50, -12, 12])  # max(uint(-12), 4u) wraps


# Metal's float and int functions are separate non-template overloads, so these calls match more than
# one equally well and Metal rejects them ("call to 'clamp' is ambiguous", with candidates
# `float clamp(float, float, float)` in metal_common and `int clamp(int, int, int)` in metal_integer:
# github.com/amzeratul/halley/pull/79). exp and sqrt have float and half overloads.
@pytest.mark.parametrize("call", ["exp(1)", "sqrt(2)", "clamp(x[i], 0, 1)", "max(x[i], 0)", "min(1, x[i])",
                                  "float(clamp(half(x[i]), 0, 1))"])
def test_calls_metal_rejects_as_ambiguous(call):
    src = f"""
#include <metal_stdlib>
using namespace metal;
kernel void k(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {{ out[i] = {call}; }}
"""
    with pytest.raises(mps_shim.CompileError, match="ambiguous"):
        mps_shim.compile_shader(src)


def test_precise_and_fast_name_the_same_functions():
    src = """
#include <metal_stdlib>
using namespace metal;
using namespace metal::precise;
kernel void k(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    out[i] = sin(x[i]) + fast::cos(x[i]) + precise::clamp(x[i], 0.0f, 1.0f) + fast::length(float2(x[i], 1.0f));
}
"""
    lib = mps_shim.compile_shader(src)
    x = _f32(0.5, -2.0, 10.0)
    out = np.zeros(3, np.float32)
    lib.k(out, x)
    x64 = x.astype(np.float64)
    want = np.sin(x64) + np.cos(x64) + np.clip(x64, 0, 1) + np.hypot(x64, 1)
    np.testing.assert_allclose(out, want, rtol=3e-7)
