/*
 * abi_test.c - drives libmps_shim's whole C ABI from plain C99.
 *
 * Build:  cc -std=c99 -Wall -Werror -pthread -I<include_dir> abi_test.c -L<lib dir> -lmps_shim -Wl,-rpath,<lib dir>
 * Usage:  abi_test [section]   (no argument, or "all": every section)
 * Sections run in order and share one shader library. The first failed check
 * prints file:line, the section, what was expected and mps_shim_last_error(),
 * then exits 1. Exit 0 means every check of the chosen sections passed.
 *
 * Device memory is only read and written through the ABI (aoti_torch_mps_memcpy,
 * aoti_torch_copy_ to and from cpu tensors), never through raw pointers, so the
 * checks hold for any backend, not just the host one.
 */
#define _POSIX_C_SOURCE 200809L
#include "mps_shim.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ checks */

static const char* g_section = "setup";

static void fail_at(int line, const char* fmt, ...) {
  va_list ap;
  fflush(stdout);
  fprintf(stderr, "abi_test.c:%d: [%s] CHECK FAILED: ", line, g_section);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n    mps_shim_last_error(): \"%s\"\n", mps_shim_last_error());
  fflush(stderr);
  _Exit(1); /* may be inside a command block: skip atexit handlers and static destructors */
}

#define CHECK(cond)                                         \
  do {                                                      \
    if (!(cond)) fail_at(__LINE__, "%s", #cond);            \
  } while (0)
#define CHECKF(cond, ...)                                   \
  do {                                                      \
    if (!(cond)) fail_at(__LINE__, __VA_ARGS__);            \
  } while (0)
#define CHECK_EQ(a, b)                                                                              \
  do {                                                                                              \
    long long a_ = (long long)(a), b_ = (long long)(b);                                             \
    if (a_ != b_) fail_at(__LINE__, "%s == %s: got %lld, expected %lld", #a, #b, a_, b_);           \
  } while (0)
#define OK(call)                                                                                    \
  do {                                                                                              \
    AOTITorchError rc_ = (call);                                                                    \
    if (rc_ != AOTI_TORCH_SUCCESS) fail_at(__LINE__, "%s returned %d, expected 0", #call, (int)rc_); \
  } while (0)
/* The call must return AOTI_TORCH_FAILURE and leave a last error containing `phrase`. */
#define FAILS(call, phrase) expect_failure(__LINE__, #call, (call), phrase)

static void expect_failure(int line, const char* text, AOTITorchError rc, const char* phrase) {
  const char* msg = mps_shim_last_error(); /* read after the call: arguments are evaluated first */
  if (rc != AOTI_TORCH_FAILURE) fail_at(line, "%s returned %d, expected 1 (failure)", text, (int)rc);
  if (msg == NULL || msg[0] == '\0') fail_at(line, "%s failed without a last-error message", text);
  if (strstr(msg, phrase) == NULL) fail_at(line, "%s: the message lacks \"%s\"", text, phrase);
}

static void contains(int line, const char* what, const char* text, const char* phrase) {
  if (text == NULL || strstr(text, phrase) == NULL)
    fail_at(line, "%s: \"%s\" lacks \"%s\"", what, text ? text : "(null)", phrase);
}
#define CONTAINS(text, phrase) contains(__LINE__, #text, text, phrase)

static void copy_msg(char* dst, size_t n) {
  snprintf(dst, n, "%s", mps_shim_last_error());
}

/* ---------------------------------------------------------- metal source */

/* Record layout written by the ids* kernels: one REC-word record per thread. */
#define REC 24
#define R_COUNT 0 /* incremented: 1 means the thread ran exactly once */
#define R_GID 1
#define R_TPG 4
#define R_TPTG 7
#define R_TGPOS 10
#define R_TPOS 13
#define R_TGPG 16
#define R_TIDX 19
#define R_DTPTG 20

static const char* kSource =
    "#include <metal_stdlib>\n"
    "using namespace metal;\n"
    "\n"
    "kernel void add(device float* out [[buffer(0)]], constant float* a [[buffer(1)]],\n"
    "                constant float* b [[buffer(2)]], constant long& n [[buffer(3)]],\n"
    "                uint i [[thread_position_in_grid]]) {\n"
    "  if (i < n) out[i] = a[i] + b[i];\n"
    "}\n"
    "\n"
    "kernel void axpb(device float* out [[buffer(0)]], constant float* x [[buffer(1)]],\n"
    "                 constant long& a [[buffer(2)]], constant long& b [[buffer(3)]],\n"
    "                 uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = x[i] * float(a) + float(b);\n"
    "}\n"
    "\n"
    "kernel void lstore(device long* out [[buffer(0)]], constant long& v [[buffer(1)]],\n"
    "                   uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = v + long(i);\n"
    "}\n"
    "\n"
    "kernel void fill(device float* out [[buffer(0)]], constant long& base [[buffer(1)]],\n"
    "                 uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = float(base + long(i));\n"
    "}\n"
    "\n"
    "kernel void scalef(device float* out [[buffer(0)]], constant float* in [[buffer(1)]],\n"
    "                   constant float& s [[buffer(2)]], uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = in[i] * s;\n"
    "}\n"
    "\n"
    "kernel void untouched(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = 1.0f;\n"
    "}\n"
    "\n"
    "template <typename T>\n"
    "kernel void scale(device T* out [[buffer(0)]], constant T* in [[buffer(1)]],\n"
    "                  uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = in[i] * T(3);\n"
    "}\n"
    "#define INST(T) template [[host_name(\"scale_\" #T)]] kernel void scale<T>(device T*, constant T*, uint);\n"
    "INST(float) INST(int)\n"
    "\n"
    "static void record(device uint* rec, uint3 gid, uint3 tpg, uint3 tptg, uint3 tgpos, uint3 tpos,\n"
    "                   uint3 tgpg, uint tidx, uint3 dtptg) {\n"
    "  device uint* r = rec + (gid.x + tpg.x * (gid.y + tpg.y * gid.z)) * 24;\n"
    "  r[0] = r[0] + 1;\n"
    "  r[1] = gid.x;   r[2] = gid.y;   r[3] = gid.z;\n"
    "  r[4] = tpg.x;   r[5] = tpg.y;   r[6] = tpg.z;\n"
    "  r[7] = tptg.x;  r[8] = tptg.y;  r[9] = tptg.z;\n"
    "  r[10] = tgpos.x; r[11] = tgpos.y; r[12] = tgpos.z;\n"
    "  r[13] = tpos.x; r[14] = tpos.y; r[15] = tpos.z;\n"
    "  r[16] = tgpg.x; r[17] = tgpg.y; r[18] = tgpg.z;\n"
    "  r[19] = tidx;\n"
    "  r[20] = dtptg.x; r[21] = dtptg.y; r[22] = dtptg.z;\n"
    "}\n"
    "\n"
    "kernel void ids1(device uint* rec [[buffer(0)]], uint gid [[thread_position_in_grid]],\n"
    "                 uint tpg [[threads_per_grid]], uint tptg [[threads_per_threadgroup]],\n"
    "                 uint tgpos [[threadgroup_position_in_grid]], uint tpos [[thread_position_in_threadgroup]],\n"
    "                 uint tgpg [[threadgroups_per_grid]], uint tidx [[thread_index_in_threadgroup]],\n"
    "                 uint dtptg [[dispatch_threads_per_threadgroup]]) {\n"
    "  record(rec, uint3(gid, 0, 0), uint3(tpg, 1, 1), uint3(tptg, 1, 1), uint3(tgpos, 0, 0),\n"
    "         uint3(tpos, 0, 0), uint3(tgpg, 1, 1), tidx, uint3(dtptg, 1, 1));\n"
    "}\n"
    "\n"
    "[[max_total_threads_per_threadgroup(64)]]\n"
    "kernel void ids1_max64(device uint* rec [[buffer(0)]], uint gid [[thread_position_in_grid]],\n"
    "                 uint tpg [[threads_per_grid]], uint tptg [[threads_per_threadgroup]],\n"
    "                 uint tgpos [[threadgroup_position_in_grid]], uint tpos [[thread_position_in_threadgroup]],\n"
    "                 uint tgpg [[threadgroups_per_grid]], uint tidx [[thread_index_in_threadgroup]],\n"
    "                 uint dtptg [[dispatch_threads_per_threadgroup]]) {\n"
    "  record(rec, uint3(gid, 0, 0), uint3(tpg, 1, 1), uint3(tptg, 1, 1), uint3(tgpos, 0, 0),\n"
    "         uint3(tpos, 0, 0), uint3(tgpg, 1, 1), tidx, uint3(dtptg, 1, 1));\n"
    "}\n"
    "\n"
    "kernel void ids2(device uint* rec [[buffer(0)]], uint2 gid [[thread_position_in_grid]],\n"
    "                 uint2 tpg [[threads_per_grid]], uint2 tptg [[threads_per_threadgroup]],\n"
    "                 uint2 tgpos [[threadgroup_position_in_grid]], uint2 tpos [[thread_position_in_threadgroup]],\n"
    "                 uint2 tgpg [[threadgroups_per_grid]], uint tidx [[thread_index_in_threadgroup]],\n"
    "                 uint2 dtptg [[dispatch_threads_per_threadgroup]]) {\n"
    "  record(rec, uint3(gid, 0), uint3(tpg, 1), uint3(tptg, 1), uint3(tgpos, 0), uint3(tpos, 0),\n"
    "         uint3(tgpg, 1), tidx, uint3(dtptg, 1));\n"
    "}\n"
    "\n"
    "kernel void ids3(device uint* rec [[buffer(0)]], uint3 gid [[thread_position_in_grid]],\n"
    "                 uint3 tpg [[threads_per_grid]], uint3 tptg [[threads_per_threadgroup]],\n"
    "                 uint3 tgpos [[threadgroup_position_in_grid]], uint3 tpos [[thread_position_in_threadgroup]],\n"
    "                 uint3 tgpg [[threadgroups_per_grid]], uint tidx [[thread_index_in_threadgroup]],\n"
    "                 uint3 dtptg [[dispatch_threads_per_threadgroup]]) {\n"
    "  record(rec, gid, tpg, tptg, tgpos, tpos, tgpg, tidx, dtptg);\n"
    "}\n"
    "\n"
    "[[max_total_threads_per_threadgroup(64)]]\n"
    "kernel void ids3_max64(device uint* rec [[buffer(0)]], uint3 gid [[thread_position_in_grid]],\n"
    "                 uint3 tpg [[threads_per_grid]], uint3 tptg [[threads_per_threadgroup]],\n"
    "                 uint3 tgpos [[threadgroup_position_in_grid]], uint3 tpos [[thread_position_in_threadgroup]],\n"
    "                 uint3 tgpg [[threadgroups_per_grid]], uint tidx [[thread_index_in_threadgroup]],\n"
    "                 uint3 dtptg [[dispatch_threads_per_threadgroup]]) {\n"
    "  record(rec, gid, tpg, tptg, tgpos, tpos, tgpg, tidx, dtptg);\n"
    "}\n";

/* ------------------------------------------------------------ shared state */

static AOTIMetalShaderLibraryHandle g_lib;
static AOTIMetalKernelFunctionHandle k_add, k_axpb, k_lstore, k_fill, k_scalef, k_untouched, k_scale_float,
    k_scale_int, k_ids1, k_ids1_max64, k_ids2, k_ids3, k_ids3_max64;

static const int64_t kUnit[1] = {1}; /* the stride of a 1-d contiguous tensor */
static int32_t F32, F16, BF16, I32, I64, U8, U32, BOOL_;
static int32_t MPS, CPU;

static AOTIMetalKernelFunctionHandle kernel_named(const char* name) {
  AOTIMetalKernelFunctionHandle k = NULL;
  AOTITorchError rc = aoti_torch_mps_get_kernel_function(g_lib, name, &k);
  CHECKF(rc == AOTI_TORCH_SUCCESS && k != NULL, "get_kernel_function(\"%s\") failed", name);
  return k;
}

static void setup(void) {
  F32 = aoti_torch_dtype_float32();
  F16 = aoti_torch_dtype_float16();
  BF16 = aoti_torch_dtype_bfloat16();
  I32 = aoti_torch_dtype_int32();
  I64 = aoti_torch_dtype_int64();
  U8 = aoti_torch_dtype_uint8();
  U32 = aoti_torch_dtype_uint32();
  BOOL_ = aoti_torch_dtype_bool();
  MPS = aoti_torch_device_type_mps();
  CPU = aoti_torch_device_type_cpu();
  g_lib = NULL;
  OK(aoti_torch_mps_create_shader_library(kSource, &g_lib));
  CHECK(g_lib != NULL);
  k_add = kernel_named("add");
  k_axpb = kernel_named("axpb");
  k_lstore = kernel_named("lstore");
  k_fill = kernel_named("fill");
  k_scalef = kernel_named("scalef");
  k_untouched = kernel_named("untouched");
  k_scale_float = kernel_named("scale_float");
  k_scale_int = kernel_named("scale_int");
  k_ids1 = kernel_named("ids1");
  k_ids1_max64 = kernel_named("ids1_max64");
  k_ids2 = kernel_named("ids2");
  k_ids3 = kernel_named("ids3");
  k_ids3_max64 = kernel_named("ids3_max64");
}

/* --------------------------------------------------------- tensor helpers */

static AtenTensorHandle new_tensor(int64_t ndim, const int64_t* sizes, int32_t dtype, int32_t device) {
  int64_t strides[8];
  int64_t step = 1;
  AtenTensorHandle t = NULL;
  for (int64_t i = ndim - 1; i >= 0; --i) {
    strides[i] = step;
    step *= sizes[i];
  }
  OK(aoti_torch_empty_strided(ndim, sizes, strides, dtype, device, 0, &t));
  CHECK(t != NULL);
  return t;
}

static AtenTensorHandle new_1d(int64_t n, int32_t dtype, int32_t device) { return new_tensor(1, &n, dtype, device); }

/* A cpu tensor over host memory with t's sizes (contiguous) and the given dtype. */
static AtenTensorHandle host_view(void* host, AtenTensorHandle t, int32_t dtype) {
  int64_t ndim = 0, *sizes = NULL, strides[8], step = 1;
  AtenTensorHandle h = NULL;
  OK(aoti_torch_get_dim(t, &ndim));
  OK(aoti_torch_get_sizes(t, &sizes));
  for (int64_t i = ndim - 1; i >= 0; --i) {
    strides[i] = step;
    step *= sizes[i];
  }
  OK(aoti_torch_create_tensor_from_blob(host, ndim, sizes, strides, 0, dtype, CPU, 0, &h));
  return h;
}

static void h2d(AtenTensorHandle t, const void* host) { /* host holds t's elements in logical order */
  int32_t dtype = 0;
  AtenTensorHandle h;
  OK(aoti_torch_get_dtype(t, &dtype));
  h = host_view((void*)host, t, dtype);
  OK(aoti_torch_copy_(t, h, 0));
  OK(aoti_torch_delete_tensor_object(h));
}

static void d2h(void* host, AtenTensorHandle t) {
  int32_t dtype = 0;
  AtenTensorHandle h;
  OK(aoti_torch_get_dtype(t, &dtype));
  h = host_view(host, t, dtype);
  OK(aoti_torch_copy_(h, t, 0));
  OK(aoti_torch_delete_tensor_object(h));
}

/* Raw bytes of device memory at ptr, through a uint8 mps tensor over it. */
static void raw_d2h(void* host, void* device_ptr, size_t nbytes) {
  int64_t n = (int64_t)nbytes;
  AtenTensorHandle d = NULL, h = NULL;
  OK(aoti_torch_create_tensor_from_blob(device_ptr, 1, &n, kUnit, 0, U8, MPS, 0, &d));
  OK(aoti_torch_create_tensor_from_blob(host, 1, &n, kUnit, 0, U8, CPU, 0, &h));
  OK(aoti_torch_copy_(h, d, 0));
  OK(aoti_torch_delete_tensor_object(d));
  OK(aoti_torch_delete_tensor_object(h));
}

static void* device_buffer(size_t nbytes, const void* init) {
  void* p = NULL;
  OK(aoti_torch_mps_malloc(&p, nbytes));
  CHECK(p != NULL);
  OK(aoti_torch_mps_memcpy(p, 0, 0, nbytes, (uint8_t*)init));
  return p;
}

static AtenTensorHandle mps_f32(int64_t n, const float* values) {
  AtenTensorHandle t = new_1d(n, F32, MPS);
  h2d(t, values);
  return t;
}

static void del(AtenTensorHandle t) { OK(aoti_torch_delete_tensor_object(t)); }

static uint16_t bits16(const void* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
static float float_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* ----------------------------------------------------- command-block jobs */

/* fill(out, base) over n threads. */
typedef struct {
  AtenTensorHandle out;
  int64_t base;
  uint64_t n;
} fill_job;

static void fill_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  fill_job* j = (fill_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_int(k, 1, j->base));
  OK(aoti_torch_mps_dispatch_single(k, j->n));
}

static void run_fill(AtenTensorHandle out, int64_t base, uint64_t n) {
  fill_job j;
  j.out = out;
  j.base = base;
  j.n = n;
  OK(aoti_torch_mps_run_command_block(k_fill, fill_cb, &j));
}

/* add(out, a, b, n) with dispatch_single(n). */
typedef struct {
  AtenTensorHandle out, a, b;
  int64_t n;
} add_job;

static void add_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  add_job* j = (add_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_tensor(k, 1, j->a));
  OK(aoti_torch_mps_set_arg_tensor(k, 2, j->b));
  OK(aoti_torch_mps_set_arg_int(k, 3, j->n));
  OK(aoti_torch_mps_dispatch_single(k, (uint64_t)j->n));
}

/* Two-tensor kernels: out, in (+ optional scalars set by the callback). */
typedef struct {
  AtenTensorHandle out, in;
  int64_t a, b;
  float s;
  uint64_t n;
} unary_job;

static void axpb_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  unary_job* j = (unary_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_tensor(k, 1, j->in));
  OK(aoti_torch_mps_set_arg_int(k, 2, j->a));
  OK(aoti_torch_mps_set_arg_int(k, 3, j->b));
  OK(aoti_torch_mps_dispatch_single(k, j->n));
}

static void scale_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  unary_job* j = (unary_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_tensor(k, 1, j->in));
  OK(aoti_torch_mps_dispatch_single(k, j->n));
}

static void scalef_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  unary_job* j = (unary_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_tensor(k, 1, j->in));
  OK(mps_shim_set_arg_bytes(k, 2, &j->s, sizeof j->s));
  OK(aoti_torch_mps_dispatch_single(k, j->n));
}

static void lstore_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  unary_job* j = (unary_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_int(k, 1, j->a));
  OK(aoti_torch_mps_dispatch_single(k, j->n));
}

/* ================================================================ sections */

static void section_kernels(void) {
  /* the same name gives the same pointer; different names differ */
  AOTIMetalKernelFunctionHandle again = NULL;
  OK(aoti_torch_mps_get_kernel_function(g_lib, "add", &again));
  CHECK(again == k_add);
  OK(aoti_torch_mps_get_kernel_function(g_lib, "scale_float", &again));
  CHECK(again == k_scale_float);
  CHECK(k_add != k_axpb);
  CHECK(k_scale_float != k_scale_int);

  {
    const char* desc = mps_shim_library_describe(g_lib);
    CONTAINS(desc, "\"name\": \"add\"");
    CONTAINS(desc, "\"name\": \"scale_int\"");
    CONTAINS(desc, "\"max_threads\": 64");
  }

  /* add: out = a + b through a C callback */
  {
    enum { N = 1000 };
    static float a[N], b[N], out[N];
    AtenTensorHandle ta, tb, tout;
    add_job j;
    for (int i = 0; i < N; ++i) {
      a[i] = (float)i * 0.5f;
      b[i] = (float)(N - i);
      out[i] = -1.0f;
    }
    ta = mps_f32(N, a);
    tb = mps_f32(N, b);
    tout = mps_f32(N, out);
    j.out = tout;
    j.a = ta;
    j.b = tb;
    j.n = N;
    OK(aoti_torch_mps_run_command_block(k_add, add_cb, &j));
    OK(mps_shim_synchronize());
    d2h(out, tout);
    for (int i = 0; i < N; ++i) CHECKF(out[i] == a[i] + b[i], "add: out[%d] = %g, expected %g", i, out[i], a[i] + b[i]);

    /* n guards the tail: dispatch 600 threads over n = 600 of 1000 elements */
    for (int i = 0; i < N; ++i) out[i] = -1.0f;
    h2d(tout, out);
    j.n = 600;
    OK(aoti_torch_mps_run_command_block(k_add, add_cb, &j));
    d2h(out, tout);
    for (int i = 0; i < N; ++i) {
      float want = i < 600 ? a[i] + b[i] : -1.0f;
      CHECKF(out[i] == want, "add n=600: out[%d] = %g, expected %g", i, out[i], want);
    }
    del(ta);
    del(tb);
    del(tout);
  }

  /* axpb: two int64 scalars; scale_float / scale_int: template host names */
  {
    enum { N = 33 };
    float x[N], out[N];
    int32_t xi[N], outi[N];
    unary_job j;
    AtenTensorHandle tx, tout, txi, touti;
    for (int i = 0; i < N; ++i) {
      x[i] = (float)(i - 16);
      xi[i] = i * 7 - 100;
    }
    tx = mps_f32(N, x);
    tout = new_1d(N, F32, MPS);
    j.out = tout;
    j.in = tx;
    j.a = -3;
    j.b = 7;
    j.n = N;
    OK(aoti_torch_mps_run_command_block(k_axpb, axpb_cb, &j));
    d2h(out, tout);
    for (int i = 0; i < N; ++i) CHECKF(out[i] == x[i] * -3.0f + 7.0f, "axpb: out[%d] = %g", i, out[i]);

    OK(aoti_torch_mps_run_command_block(k_scale_float, scale_cb, &j));
    d2h(out, tout);
    for (int i = 0; i < N; ++i) CHECKF(out[i] == x[i] * 3.0f, "scale_float: out[%d] = %g", i, out[i]);

    txi = new_1d(N, I32, MPS);
    touti = new_1d(N, I32, MPS);
    h2d(txi, xi);
    j.out = touti;
    j.in = txi;
    OK(aoti_torch_mps_run_command_block(k_scale_int, scale_cb, &j));
    d2h(outi, touti);
    for (int i = 0; i < N; ++i) CHECKF(outi[i] == xi[i] * 3, "scale_int: out[%d] = %d", i, outi[i]);

    /* mps_shim_set_arg_bytes binds a float scalar */
    j.out = tout;
    j.in = tx;
    j.s = 0.25f;
    OK(aoti_torch_mps_run_command_block(k_scalef, scalef_cb, &j));
    d2h(out, tout);
    for (int i = 0; i < N; ++i) CHECKF(out[i] == x[i] * 0.25f, "scalef: out[%d] = %g", i, out[i]);
    del(tx);
    del(tout);
    del(txi);
    del(touti);
  }

  /* set_arg_int binds all 8 bytes */
  {
    enum { N = 5 };
    int64_t out[N];
    unary_job j;
    AtenTensorHandle t = new_1d(N, I64, MPS);
    j.out = t;
    j.a = -5000000000LL; /* needs more than 32 bits */
    j.n = N;
    OK(aoti_torch_mps_run_command_block(k_lstore, lstore_cb, &j));
    d2h(out, t);
    for (int i = 0; i < N; ++i) CHECK_EQ(out[i], -5000000000LL + i);
    j.a = INT64_MAX - 10;
    OK(aoti_torch_mps_run_command_block(k_lstore, lstore_cb, &j));
    d2h(out, t);
    for (int i = 0; i < N; ++i) CHECK_EQ(out[i], INT64_MAX - 10 + i);
    del(t);
  }

  /* a compile error fails with the compiler's diagnostics */
  {
    AOTIMetalShaderLibraryHandle bad = NULL;
    FAILS(aoti_torch_mps_create_shader_library(
              "#include <metal_stdlib>\nusing namespace metal;\n"
              "kernel void broken(device float* o [[buffer(0)]], uint i [[thread_position_in_grid]]) {\n"
              "  o[i] = undefined_name_xyz;\n}\n",
              &bad),
          "undefined_name_xyz");
  }
}

/* ---------------------------------------------------------------- dispatch */

enum dispatch_mode { D_SINGLE, D_SINGLE_G, D_ARRAY, D_ARRAY_G };

typedef struct {
  AtenTensorHandle rec;
  enum dispatch_mode mode;
  size_t dims;
  uint64_t len[3], grp[3];
  AOTITorchError rc;
  char msg[1024];
} dispatch_job;

static void dispatch_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  dispatch_job* j = (dispatch_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->rec));
  switch (j->mode) {
    case D_SINGLE: j->rc = aoti_torch_mps_dispatch_single(k, j->len[0]); break;
    case D_SINGLE_G: j->rc = aoti_torch_mps_dispatch_single_with_group_size(k, j->len[0], j->grp[0]); break;
    case D_ARRAY: j->rc = aoti_torch_mps_dispatch_array(k, j->len, j->dims); break;
    case D_ARRAY_G: j->rc = aoti_torch_mps_dispatch_array_with_group_size(k, j->len, j->dims, j->grp, j->dims); break;
  }
  copy_msg(j->msg, sizeof j->msg);
}

#define MAX_THREADS 4096
static uint32_t g_rec[MAX_THREADS * REC];
static AtenTensorHandle g_rec_t;

static void clear_records(void) {
  memset(g_rec, 0, sizeof g_rec);
  h2d(g_rec_t, g_rec);
}

static void run_dispatch(int line, AOTIMetalKernelFunctionHandle k, enum dispatch_mode mode, size_t dims,
                         const uint64_t* len, const uint64_t* grp) {
  dispatch_job j;
  AOTITorchError rc;
  memset(&j, 0, sizeof j);
  j.rec = g_rec_t;
  j.mode = mode;
  j.dims = dims;
  for (size_t d = 0; d < dims; ++d) {
    j.len[d] = len[d];
    j.grp[d] = grp ? grp[d] : 0;
  }
  clear_records();
  rc = aoti_torch_mps_run_command_block(k, dispatch_cb, &j);
  if (j.rc != AOTI_TORCH_SUCCESS) fail_at(line, "dispatch (mode %d) failed: %s", (int)mode, j.msg);
  if (rc != AOTI_TORCH_SUCCESS) fail_at(line, "run_command_block returned %d", (int)rc);
  d2h(g_rec, g_rec_t);
}

/* Checks every record against Metal's dispatchThreads rules, computed here by hand:
 * grid g, requested group b (both padded with 1s), edge groups partial. */
static uint8_t g_seen[MAX_THREADS * 1024 / 8]; /* (group, thread index) pairs seen */

static void check_records(int line, const char* what, size_t dims, const uint64_t* len, const uint64_t* group) {
  uint32_t g[3] = {1, 1, 1}, b[3] = {1, 1, 1};
  uint32_t total;
  memset(g_seen, 0, sizeof g_seen);
  for (size_t d = 0; d < dims; ++d) {
    g[d] = (uint32_t)len[d];
    b[d] = (uint32_t)group[d];
  }
  total = g[0] * g[1] * g[2];
  if (total > MAX_THREADS) fail_at(line, "test bug: grid too large");
  for (uint32_t z = 0; z < g[2]; ++z)
    for (uint32_t y = 0; y < g[1]; ++y)
      for (uint32_t x = 0; x < g[0]; ++x) {
        const uint32_t p[3] = {x, y, z};
        const uint32_t lin = x + g[0] * (y + g[1] * z);
        const uint32_t* r = g_rec + (size_t)lin * REC;
        uint32_t tgpos[3], tpos[3], tptg[3], tgpg[3], tidx;
        for (int d = 0; d < 3; ++d) {
          tgpos[d] = p[d] / b[d];
          tpos[d] = p[d] % b[d];
          tptg[d] = g[d] - tgpos[d] * b[d] < b[d] ? g[d] - tgpos[d] * b[d] : b[d];
          tgpg[d] = (g[d] + b[d] - 1) / b[d];
        }
        tidx = (tpos[2] * tptg[1] + tpos[1]) * tptg[0] + tpos[0];
        {
          /* MSL only promises a unique index per thread of a group. Full groups (and 1-d
           * ones) have one natural order; a partial 2-d/3-d group may be linearised with
           * its actual or its requested size, so there only uniqueness is checked. */
          const int partial = tptg[0] != b[0] || tptg[1] != b[1] || tptg[2] != b[2];
          const uint32_t group_lin = tgpos[0] + tgpg[0] * (tgpos[1] + tgpg[1] * tgpos[2]);
          const size_t bit = (size_t)group_lin * 1024 + r[R_TIDX];
          if (r[R_TIDX] >= b[0] * b[1] * b[2] || bit >= sizeof g_seen * 8)
            fail_at(line, "%s: thread (%u,%u,%u): thread_index_in_threadgroup %u out of range", what, x, y, z,
                    r[R_TIDX]);
          if (g_seen[bit / 8] & (1u << (bit % 8)))
            fail_at(line, "%s: thread (%u,%u,%u): thread_index_in_threadgroup %u is not unique in its group", what,
                    x, y, z, r[R_TIDX]);
          g_seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
          if (partial && dims > 1) tidx = r[R_TIDX];
        }
        if (r[R_COUNT] != 1)
          fail_at(line, "%s: thread (%u,%u,%u) ran %u times, expected once", what, x, y, z, r[R_COUNT]);
        for (int d = 0; d < 3; ++d) {
          const char* axis = d == 0 ? "x" : d == 1 ? "y" : "z";
#define EXPECT_FIELD(field, want)                                                                      \
  if (r[field + d] != (want))                                                                          \
  fail_at(line, "%s: thread (%u,%u,%u): %s.%s = %u, expected %u", what, x, y, z, #field, axis, r[field + d], \
          (unsigned)(want))
          EXPECT_FIELD(R_GID, p[d]);
          EXPECT_FIELD(R_TPG, g[d]);
          EXPECT_FIELD(R_TPTG, tptg[d]);
          EXPECT_FIELD(R_TGPOS, tgpos[d]);
          EXPECT_FIELD(R_TPOS, tpos[d]);
          EXPECT_FIELD(R_TGPG, tgpg[d]);
          EXPECT_FIELD(R_DTPTG, b[d]);
#undef EXPECT_FIELD
        }
        if (r[R_TIDX] != tidx)
          fail_at(line, "%s: thread (%u,%u,%u): thread_index_in_threadgroup = %u, expected %u", what, x, y, z,
                  r[R_TIDX], tidx);
      }
  for (size_t i = (size_t)total * REC; i < (size_t)MAX_THREADS * REC; ++i)
    if (g_rec[i] != 0) fail_at(line, "%s: word %zu past the grid was written", what, i);
}

#define DISPATCH_AND_CHECK(what, k, mode, dims, len, grp, expected_group) \
  do {                                                                   \
    run_dispatch(__LINE__, k, mode, dims, len, grp);                     \
    check_records(__LINE__, what, dims, len, expected_group);            \
  } while (0)

static void section_dispatch(void) {
  g_rec_t = new_1d(MAX_THREADS * REC, U32, MPS);

  /* dispatch_single: default group min(length, max threads) */
  {
    uint64_t len[1] = {10}, want[1] = {10};
    DISPATCH_AND_CHECK("single 10", k_ids1, D_SINGLE, 1, len, NULL, want);
  }
  {
    uint64_t len[1] = {3000}, want[1] = {1024}; /* groups 1024, 1024, 952 */
    DISPATCH_AND_CHECK("single 3000", k_ids1, D_SINGLE, 1, len, NULL, want);
    CHECK_EQ(g_rec[2999 * REC + R_TPTG], 952);
  }
  {
    uint64_t len[1] = {10}, grp[1] = {4}; /* groups 4, 4, 2 */
    DISPATCH_AND_CHECK("single 10 group 4", k_ids1, D_SINGLE_G, 1, len, grp, grp);
    CHECK_EQ(g_rec[9 * REC + R_TPTG], 2);
  }
  /* [[max_total_threads_per_threadgroup(64)]] changes the default group */
  {
    uint64_t len[1] = {100}, want[1] = {64}; /* groups 64, 36 */
    DISPATCH_AND_CHECK("max64 single 100", k_ids1_max64, D_SINGLE, 1, len, NULL, want);
    CHECK_EQ(g_rec[99 * REC + R_TPTG], 36);
    DISPATCH_AND_CHECK("max64 array 100", k_ids1_max64, D_ARRAY, 1, len, NULL, want);
  }
  {
    uint64_t len[1] = {100}, grp[1] = {64};
    DISPATCH_AND_CHECK("max64 single 100 group 64", k_ids1_max64, D_SINGLE_G, 1, len, grp, grp);
  }
  /* dispatch_array: default group (max threads, 1, 1) */
  {
    uint64_t len[2] = {5, 3}, want[2] = {1024, 1};
    DISPATCH_AND_CHECK("array 5x3", k_ids3, D_ARRAY, 2, len, NULL, want);
    CHECK_EQ(g_rec[0 * REC + R_TPTG], 5);
    CHECK_EQ(g_rec[0 * REC + R_DTPTG], 1024);
  }
  {
    uint64_t len[3] = {3, 2, 2}, want[3] = {1024, 1, 1};
    DISPATCH_AND_CHECK("array 3x2x2", k_ids3, D_ARRAY, 3, len, NULL, want);
  }
  {
    uint64_t len[1] = {2000}, want[1] = {1024};
    DISPATCH_AND_CHECK("array 2000", k_ids3, D_ARRAY, 1, len, NULL, want);
  }
  /* explicit groups with partial edge groups in every dimension */
  {
    uint64_t len[2] = {10, 7}, grp[2] = {4, 3};
    DISPATCH_AND_CHECK("array 10x7 group 4x3 (uint3)", k_ids3, D_ARRAY_G, 2, len, grp, grp);
    /* spot checks, by hand: thread (9,6) sits in group (2,2) of size (2,1) */
    CHECK_EQ(g_rec[(9 + 10 * 6) * REC + R_TPTG + 0], 2);
    CHECK_EQ(g_rec[(9 + 10 * 6) * REC + R_TPTG + 1], 1);
    CHECK_EQ(g_rec[(9 + 10 * 6) * REC + R_TGPOS + 0], 2);
    CHECK_EQ(g_rec[(9 + 10 * 6) * REC + R_TGPOS + 1], 2);
    CHECK_EQ(g_rec[(9 + 10 * 6) * REC + R_TPOS + 0], 1);
    CHECK_EQ(g_rec[(9 + 10 * 6) * REC + R_TPOS + 1], 0);
    CHECK_EQ(g_rec[(5 + 10 * 4) * REC + R_TPTG + 0], 4);
    CHECK_EQ(g_rec[(5 + 10 * 4) * REC + R_TPTG + 1], 3);
    DISPATCH_AND_CHECK("array 10x7 group 4x3 (uint2)", k_ids2, D_ARRAY_G, 2, len, grp, grp);
  }
  {
    uint64_t len[3] = {5, 4, 3}, grp[3] = {2, 3, 2};
    DISPATCH_AND_CHECK("array 5x4x3 group 2x3x2", k_ids3, D_ARRAY_G, 3, len, grp, grp);
  }
  {
    uint64_t len[3] = {7, 5, 9}, grp[3] = {8, 8, 4}; /* group larger than the grid in x and y */
    DISPATCH_AND_CHECK("array 7x5x9 group 8x8x4", k_ids3, D_ARRAY_G, 3, len, grp, grp);
  }
  {
    uint64_t len[1] = {7}, grp[1] = {3};
    DISPATCH_AND_CHECK("array 7 group 3", k_ids3, D_ARRAY_G, 1, len, grp, grp);
  }
  {
    uint64_t len[2] = {70, 30}, grp[2] = {32, 32}; /* exactly the 1024 limit */
    DISPATCH_AND_CHECK("array 70x30 group 32x32", k_ids3, D_ARRAY_G, 2, len, grp, grp);
  }
  {
    uint64_t len[2] = {100, 2}, grp[2] = {32, 2}; /* exactly the 64 limit */
    DISPATCH_AND_CHECK("max64 array 100x2 group 32x2", k_ids3_max64, D_ARRAY_G, 2, len, grp, grp);
  }
  {
    uint64_t len[3] = {9, 3, 2}, want[3] = {64, 1, 1};
    DISPATCH_AND_CHECK("max64 array 9x3x2", k_ids3_max64, D_ARRAY, 3, len, NULL, want);
  }

  /* zero threads: success, nothing runs (the record buffer stays all zero) */
  {
    static const uint64_t cases[][4] = {
        /* mode, len0, len1, grp */
        {D_SINGLE, 0, 0, 0},   {D_SINGLE_G, 0, 0, 8}, {D_ARRAY, 0, 5, 0},
        {D_ARRAY, 5, 0, 0},    {D_ARRAY_G, 4, 0, 2},  {D_ARRAY_G, 0, 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
      uint64_t len[2] = {cases[c][1], cases[c][2]}, grp[2] = {cases[c][3], cases[c][3]};
      size_t dims = cases[c][0] == D_SINGLE || cases[c][0] == D_SINGLE_G ? 1 : 2;
      run_dispatch(__LINE__, k_ids3, (enum dispatch_mode)cases[c][0], dims, len, grp);
      for (size_t i = 0; i < (size_t)MAX_THREADS * REC; ++i)
        CHECKF(g_rec[i] == 0, "zero-thread dispatch case %zu wrote word %zu", c, i);
    }
  }
  del(g_rec_t);
}

/* Group sizes over the pipeline's limit, whether one dimension or only the product
 * is too large: always upstream's "Threadgroup size exceeds N limit". */
typedef struct {
  AOTIMetalKernelFunctionHandle k;
  int op;
  AOTITorchError rc;
  char msg[1024];
} limit_job;

static void limit_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  limit_job* j = (limit_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, g_rec_t));
  switch (j->op) {
    case 0: j->rc = aoti_torch_mps_dispatch_single_with_group_size(k, 2048, 1025); break;
    case 1: {
      uint64_t len[1] = {4096}, grp[1] = {2048};
      j->rc = aoti_torch_mps_dispatch_array_with_group_size(k, len, 1, grp, 1);
      break;
    }
    case 2: {
      uint64_t len[3] = {64, 64, 2}, grp[3] = {32, 32, 2};
      j->rc = aoti_torch_mps_dispatch_array_with_group_size(k, len, 3, grp, 3);
      break;
    }
    case 3: j->rc = aoti_torch_mps_dispatch_single_with_group_size(k, 100, 65); break;
    case 4: {
      uint64_t len[2] = {100, 2}, grp[2] = {32, 3};
      j->rc = aoti_torch_mps_dispatch_array_with_group_size(k, len, 2, grp, 2);
      break;
    }
  }
  copy_msg(j->msg, sizeof j->msg);
}

static void expect_limit_error(int line, AOTIMetalKernelFunctionHandle k, int op, const char* phrase) {
  limit_job j;
  AOTITorchError rc;
  memset(&j, 0, sizeof j);
  j.op = op;
  clear_records();
  rc = aoti_torch_mps_run_command_block(k, limit_cb, &j);
  if (j.rc != AOTI_TORCH_FAILURE) fail_at(line, "limit case %d: dispatch returned %d, expected 1", op, (int)j.rc);
  if (strstr(j.msg, phrase) == NULL) fail_at(line, "limit case %d: \"%s\" lacks \"%s\"", op, j.msg, phrase);
  if (rc != AOTI_TORCH_FAILURE) fail_at(line, "limit case %d: run_command_block returned %d, expected 1", op, (int)rc);
  d2h(g_rec, g_rec_t);
  for (size_t i = 0; i < (size_t)MAX_THREADS * REC; ++i)
    if (g_rec[i] != 0) fail_at(line, "limit case %d: the rejected dispatch ran", op);
}

static void section_group_limits(void) {
  g_rec_t = new_1d(MAX_THREADS * REC, U32, MPS);
  /* product of the group dims over the limit */
  expect_limit_error(__LINE__, k_ids3, 2, "Threadgroup size exceeds 1024 limit");
  expect_limit_error(__LINE__, k_ids3_max64, 4, "Threadgroup size exceeds 64 limit");
  /* a single dimension over the limit */
  expect_limit_error(__LINE__, k_ids3, 0, "Threadgroup size exceeds 1024 limit");
  expect_limit_error(__LINE__, k_ids3, 1, "Threadgroup size exceeds 1024 limit");
  expect_limit_error(__LINE__, k_ids1_max64, 3, "Threadgroup size exceeds 64 limit");
  del(g_rec_t);
}

/* ------------------------------------------------------------------ errors */

enum err_op {
  E_INDEX_TENSOR,
  E_INDEX_INT,
  E_TENSOR_TOO_SMALL,
  E_INT_TO_BUFFER,
  E_UNBOUND,
  E_UNBOUND_AFTER_RESTART,
  E_DIMS_0,
  E_DIMS_4,
  E_DIMS_4_GROUP,
  E_GROUP_DIMS_MISMATCH,
  E_GROUP_0_SINGLE,
  E_GROUP_0_ARRAY,
  E_GROUP_NULL,
  E_NULL_TENSOR,
  E_DELETED_TENSOR,
  E_BEFORE_START,
  E_GRID_TOO_BIG
};

typedef struct {
  enum err_op op;
  AtenTensorHandle out, a, b;
  int failures;      /* calls expected to fail that did */
  int expected;      /* calls expected to fail */
  char first_msg[1024];
  char bad[1024];    /* the first expected failure that did not happen */
  const char* phrase;
} err_job;

static void expect_in_block(err_job* j, const char* text, AOTITorchError rc) {
  const char* msg = mps_shim_last_error();
  ++j->expected;
  if (rc == AOTI_TORCH_FAILURE && strstr(msg, j->phrase) != NULL) {
    if (j->failures++ == 0) snprintf(j->first_msg, sizeof j->first_msg, "%s", msg);
  } else if (j->bad[0] == '\0') {
    snprintf(j->bad, sizeof j->bad, "%s returned %d with \"%s\"", text, (int)rc, rc ? msg : "");
  }
}
#define EXPECT_IN_BLOCK(j, call) expect_in_block(j, #call, (call))

static AtenTensorHandle g_one_float; /* a 4-byte tensor */

static void bind_add(AOTIMetalKernelFunctionHandle k, err_job* j) {
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_set_arg_tensor(k, 1, j->a));
  OK(aoti_torch_mps_set_arg_tensor(k, 2, j->b));
  OK(aoti_torch_mps_set_arg_int(k, 3, 4));
}

static void err_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  err_job* j = (err_job*)ud;
  uint64_t len[4] = {4, 1, 1, 1}, grp[4] = {1, 1, 1, 1};
  if (j->op != E_BEFORE_START) OK(aoti_torch_mps_start_encoding(k));
  switch (j->op) {
    case E_INDEX_TENSOR: EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_tensor(k, 9, j->out)); break;
    case E_INDEX_INT: EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_int(k, 9, 1)); break;
    /* as Metal binds, a tensor may back `constant long& n`, but it must hold the 8 bytes read */
    case E_TENSOR_TOO_SMALL: EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_tensor(k, 3, g_one_float)); break;
    case E_INT_TO_BUFFER: EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_int(k, 0, 1)); break;
    case E_UNBOUND:
      OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
      OK(aoti_torch_mps_set_arg_tensor(k, 1, j->a));
      OK(aoti_torch_mps_set_arg_int(k, 3, 4));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_single(k, 4));
      break;
    case E_UNBOUND_AFTER_RESTART: /* start_encoding forgets the previous bindings */
      bind_add(k, j);
      OK(aoti_torch_mps_dispatch_single(k, 4));
      OK(aoti_torch_mps_start_encoding(k));
      OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
      OK(aoti_torch_mps_set_arg_tensor(k, 1, j->a));
      OK(aoti_torch_mps_set_arg_int(k, 3, 4));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_single(k, 4));
      break;
    case E_DIMS_0:
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array(k, len, 0));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 0, grp, 0));
      break;
    case E_DIMS_4:
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array(k, len, 4));
      break;
    case E_DIMS_4_GROUP:
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 4, grp, 4));
      break;
    case E_GROUP_DIMS_MISMATCH:
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 2, grp, 1));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 1, grp, 3));
      break;
    case E_GROUP_0_SINGLE:
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_single_with_group_size(k, 4, 0));
      break;
    case E_GROUP_0_ARRAY:
      bind_add(k, j);
      grp[1] = 0;
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 2, grp, 2));
      break;
    case E_GROUP_NULL:
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 1, NULL, 1));
      break;
    case E_NULL_TENSOR: EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_tensor(k, 0, NULL)); break;
    case E_DELETED_TENSOR: EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_tensor(k, 0, j->a)); break;
    case E_GRID_TOO_BIG: /* more than 2^32-1 threads in a dimension: an error, never truncated */
      bind_add(k, j);
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_single(k, (uint64_t)1 << 32));
      len[1] = (uint64_t)1 << 33;
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array(k, len, 2));
      break;
    case E_BEFORE_START:
      EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_tensor(k, 0, j->out));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_set_arg_int(k, 0, 1));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_single(k, 4));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_single_with_group_size(k, 4, 4));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array(k, len, 1));
      EXPECT_IN_BLOCK(j, aoti_torch_mps_dispatch_array_with_group_size(k, len, 1, grp, 1));
      break;
  }
}

/* Runs one error scenario in a command block: each call expected to fail must
 * fail with `phrase`, and the block itself must fail naming the first error. */
static void block_error(int line, AOTIMetalKernelFunctionHandle k, enum err_op op, AtenTensorHandle out,
                        AtenTensorHandle a, AtenTensorHandle b, const char* phrase) {
  err_job j;
  AOTITorchError rc;
  memset(&j, 0, sizeof j);
  j.op = op;
  j.out = out;
  j.a = a;
  j.b = b;
  j.phrase = phrase;
  rc = aoti_torch_mps_run_command_block(k, err_cb, &j);
  if (j.bad[0]) fail_at(line, "error case %d: %s, expected failure with \"%s\"", (int)op, j.bad, phrase);
  if (j.failures == 0) fail_at(line, "error case %d: test bug, no call checked", (int)op);
  if (rc != AOTI_TORCH_FAILURE)
    fail_at(line, "error case %d: run_command_block returned %d after a failed call, expected 1", (int)op, (int)rc);
  if (strstr(mps_shim_last_error(), phrase) == NULL)
    fail_at(line, "error case %d: the block's message lacks the first error \"%s\"", (int)op, phrase);
}

static void section_errors(void) {
  enum { N = 4 };
  float zeros[N] = {0, 0, 0, 0};
  AtenTensorHandle out = mps_f32(N, zeros), a = mps_f32(N, zeros), b = mps_f32(N, zeros);

  /* unknown kernel name: the message lists the library's kernels */
  {
    AOTIMetalKernelFunctionHandle k = NULL;
    FAILS(aoti_torch_mps_get_kernel_function(g_lib, "no_such_kernel", &k), "no_such_kernel");
    CONTAINS(mps_shim_last_error(), "'add'");
    CONTAINS(mps_shim_last_error(), "'scale_float'");
    CONTAINS(mps_shim_last_error(), "'ids3'");
  }

  block_error(__LINE__, k_add, E_INDEX_TENSOR, out, a, b, "no binding index 9");
  block_error(__LINE__, k_add, E_INDEX_INT, out, a, b, "no binding index 9");
  g_one_float = mps_f32(1, zeros);
  block_error(__LINE__, k_add, E_TENSOR_TOO_SMALL, out, a, b, "reads 8 bytes, but the tensor bound to it holds 4");
  del(g_one_float);
  block_error(__LINE__, k_add, E_INT_TO_BUFFER, out, a, b, "set_arg_tensor");
  block_error(__LINE__, k_add, E_UNBOUND, out, a, b, "binding 2");
  CONTAINS(mps_shim_last_error(), "never set");
  block_error(__LINE__, k_add, E_UNBOUND_AFTER_RESTART, out, a, b, "binding 2");
  block_error(__LINE__, k_add, E_DIMS_0, out, a, b, "1 to 3 dimensions");
  block_error(__LINE__, k_add, E_DIMS_4, out, a, b, "1 to 3 dimensions");
  block_error(__LINE__, k_add, E_DIMS_4_GROUP, out, a, b, "1 to 3 dimensions");
  block_error(__LINE__, k_add, E_GROUP_DIMS_MISMATCH, out, a, b, "dimensions");
  block_error(__LINE__, k_add, E_GROUP_0_SINGLE, out, a, b, "threadgroup size 0");
  block_error(__LINE__, k_add, E_GROUP_0_ARRAY, out, a, b, "threadgroup size 0");
  block_error(__LINE__, k_add, E_GROUP_NULL, out, a, b, "null group_size");
  block_error(__LINE__, k_add, E_NULL_TENSOR, out, a, b, "null tensor handle");
  block_error(__LINE__, k_untouched, E_BEFORE_START, out, a, b, "start_encoding");
  block_error(__LINE__, k_add, E_GRID_TOO_BIG, out, a, b, "exceeds");
  {
    AtenTensorHandle gone = new_1d(N, F32, MPS);
    del(gone);
    block_error(__LINE__, k_add, E_DELETED_TENSOR, out, gone, b, "invalid tensor handle");
  }

  /* NULL handles and NULL out-pointers, for every handle-taking entry point */
  {
    AOTIMetalShaderLibraryHandle lib = NULL;
    AOTIMetalKernelFunctionHandle k = NULL;
    AtenTensorHandle t = NULL;
    uint64_t len[1] = {4}, grp[1] = {4};
    int64_t sz[1] = {2}, st[1] = {1}, i64 = 0;
    int64_t* p64 = NULL;
    int32_t i32 = 0;
    void* ptr = NULL;
    double dv = 1.0;
    const char* lib_null = "null shader library handle";
    const char* fn_null = "null kernel function handle";
    const char* t_null = "null tensor handle";
    const char* out_null = "null output pointer";

    FAILS(aoti_torch_mps_create_shader_library(kSource, NULL), out_null);
    FAILS(aoti_torch_mps_create_shader_library(NULL, &lib), "null Metal source");
    FAILS(aoti_torch_mps_delete_shader_library(NULL), lib_null);
    FAILS(aoti_torch_mps_get_kernel_function(NULL, "add", &k), lib_null);
    FAILS(aoti_torch_mps_get_kernel_function(g_lib, NULL, &k), "null kernel name");
    FAILS(aoti_torch_mps_get_kernel_function(g_lib, "add", NULL), out_null);
    FAILS(aoti_torch_mps_start_encoding(NULL), fn_null);
    FAILS(aoti_torch_mps_set_arg_tensor(NULL, 0, out), fn_null);
    FAILS(aoti_torch_mps_set_arg_int(NULL, 0, 1), fn_null);
    FAILS(mps_shim_set_arg_bytes(NULL, 0, &dv, sizeof dv), fn_null);
    FAILS(aoti_torch_mps_dispatch_single(NULL, 4), fn_null);
    FAILS(aoti_torch_mps_dispatch_single_with_group_size(NULL, 4, 4), fn_null);
    FAILS(aoti_torch_mps_dispatch_array(NULL, len, 1), fn_null);
    FAILS(aoti_torch_mps_dispatch_array_with_group_size(NULL, len, 1, grp, 1), fn_null);
    FAILS(aoti_torch_mps_run_command_block(NULL, fill_cb, NULL), fn_null);
    FAILS(aoti_torch_mps_run_command_block(k_fill, NULL, NULL), "null callback");
    CHECK(mps_shim_library_describe(NULL) == NULL);
    FAILS(aoti_torch_mps_malloc(NULL, 16), out_null);

    FAILS(aoti_torch_empty_strided(1, sz, st, F32, MPS, 0, NULL), out_null);
    FAILS(aoti_torch_create_tensor_from_blob(zeros, 1, sz, st, 0, F32, CPU, 0, NULL), out_null);
    FAILS(aoti_torch_delete_tensor_object(NULL), t_null);
    FAILS(aoti_torch_new_tensor_handle(NULL, &t), t_null);
    FAILS(aoti_torch_new_tensor_handle(out, NULL), out_null);
    FAILS(aoti_torch__reinterpret_tensor(NULL, 1, sz, st, 0, &t), t_null);
    FAILS(aoti_torch_as_strided(NULL, sz, st, &t), t_null);
    FAILS(aoti_torch_clone(NULL, &t), t_null);
    FAILS(aoti_torch_clone_preserve_strides(NULL, &t), t_null);
    FAILS(aoti_torch_copy_(NULL, out, 0), t_null);
    FAILS(aoti_torch_copy_(out, NULL, 0), t_null);
    FAILS(aoti_torch_get_data_ptr(NULL, &ptr), t_null);
    FAILS(aoti_torch_get_sizes(NULL, &p64), t_null);
    FAILS(aoti_torch_get_strides(NULL, &p64), t_null);
    FAILS(aoti_torch_get_size(NULL, 0, &i64), t_null);
    FAILS(aoti_torch_get_stride(NULL, 0, &i64), t_null);
    FAILS(aoti_torch_get_dim(NULL, &i64), t_null);
    FAILS(aoti_torch_get_numel(NULL, &i64), t_null);
    FAILS(aoti_torch_get_storage_offset(NULL, &i64), t_null);
    FAILS(aoti_torch_get_storage_size(NULL, &i64), t_null);
    FAILS(aoti_torch_get_dtype(NULL, &i32), t_null);
    FAILS(aoti_torch_get_device_type(NULL, &i32), t_null);
    FAILS(aoti_torch_get_device_index(NULL, &i32), t_null);
    FAILS(aoti_torch_get_data_ptr(out, NULL), out_null);
    FAILS(aoti_torch_get_sizes(out, NULL), out_null);
    FAILS(aoti_torch_get_dim(out, NULL), out_null);
    FAILS(aoti_torch_get_dtype(out, NULL), out_null);
  }

  /* a deleted library handle, and the kernel functions it owned */
  {
    AOTIMetalShaderLibraryHandle lib2 = NULL;
    AOTIMetalKernelFunctionHandle k2 = NULL, k;
    const char* lib_gone = "invalid shader library handle";
    const char* fn_gone = "invalid kernel function handle";
    OK(aoti_torch_mps_create_shader_library(kSource, &lib2));
    CHECK(lib2 != g_lib);
    OK(aoti_torch_mps_get_kernel_function(lib2, "fill", &k2));
    CHECK(k2 != k_fill);
    OK(aoti_torch_mps_delete_shader_library(lib2));
    FAILS(aoti_torch_mps_get_kernel_function(lib2, "fill", &k), lib_gone);
    FAILS(aoti_torch_mps_delete_shader_library(lib2), lib_gone);
    CHECK(mps_shim_library_describe(lib2) == NULL);
    FAILS(aoti_torch_mps_start_encoding(k2), fn_gone);
    FAILS(aoti_torch_mps_set_arg_int(k2, 1, 1), fn_gone);
    FAILS(aoti_torch_mps_dispatch_single(k2, 4), fn_gone);
    FAILS(aoti_torch_mps_run_command_block(k2, fill_cb, NULL), fn_gone);
    /* the first library is unaffected */
    {
      float got[N];
      run_fill(out, 10, N);
      d2h(got, out);
      for (int i = 0; i < N; ++i) CHECK(got[i] == (float)(10 + i));
    }
  }

  /* a deleted tensor handle */
  {
    AtenTensorHandle t = new_1d(N, F32, MPS), t2 = NULL;
    int64_t i64 = 0;
    int32_t i32 = 0;
    void* ptr = NULL;
    const char* gone = "invalid tensor handle";
    del(t);
    FAILS(aoti_torch_delete_tensor_object(t), gone);
    FAILS(aoti_torch_get_dim(t, &i64), gone);
    FAILS(aoti_torch_get_numel(t, &i64), gone);
    FAILS(aoti_torch_get_dtype(t, &i32), gone);
    FAILS(aoti_torch_get_data_ptr(t, &ptr), gone);
    FAILS(aoti_torch_new_tensor_handle(t, &t2), gone);
    FAILS(aoti_torch_clone(t, &t2), gone);
    FAILS(aoti_torch_copy_(out, t, 0), gone);
    FAILS(aoti_torch_copy_(t, out, 0), gone);
  }

  /* device memory errors */
  {
    void* p = NULL;
    void* buf;
    void* buf2;
    int on_stack = 0;
    uint8_t bytes[64];
    memset(bytes, 7, sizeof bytes);
    FAILS(aoti_torch_mps_malloc(&p, SIZE_MAX), "cannot allocate");
    FAILS(aoti_torch_mps_free(&on_stack), "aoti_torch_mps_malloc");
    buf = device_buffer(64, bytes);
    buf2 = device_buffer(64, bytes);
    FAILS(aoti_torch_mps_free((char*)buf + 8), "aoti_torch_mps_malloc");
    FAILS(aoti_torch_mps_memcpy(buf, 60, 0, 8, bytes), "overruns");
    FAILS(aoti_torch_mps_memcpy(buf, 65, 0, 1, bytes), "overruns");
    FAILS(aoti_torch_mps_memcpy(buf, 0, 0, 65, bytes), "overruns");
    FAILS(aoti_torch_mps_memcpy(&on_stack, 0, 0, 4, bytes), "aoti_torch_mps_malloc");
    FAILS(aoti_torch_mps_copy_buffer(buf, buf2, 16, 56, 0), "overruns");
    FAILS(aoti_torch_mps_copy_buffer(buf, buf2, 16, 0, 56), "overruns");
    FAILS(aoti_torch_mps_copy_buffer(buf, buf2, 65, 0, 0), "overruns");
    FAILS(aoti_torch_mps_copy_buffer(&on_stack, buf2, 4, 0, 0), "aoti_torch_mps_malloc");
    FAILS(aoti_torch_mps_copy_buffer(buf, &on_stack, 4, 0, 0), "aoti_torch_mps_malloc");
    OK(aoti_torch_mps_free(buf));
    FAILS(aoti_torch_mps_free(buf), "aoti_torch_mps_malloc"); /* double free */
    OK(aoti_torch_mps_free(buf2));
  }

  /* tensor argument errors */
  {
    int64_t sz[2] = {4, 4}, st[2] = {4, 1}, big[1] = {17}, neg[1] = {-1};
    AtenTensorHandle t = NULL, v = NULL;
    int64_t i64;
    FAILS(aoti_torch_empty_strided(2, sz, st, 99, MPS, 0, &t), "dtype");
    FAILS(aoti_torch_empty_strided(2, sz, st, F32, 77, 0, &t), "device");
    FAILS(aoti_torch_empty_strided(1, neg, kUnit, F32, MPS, 0, &t), "negative");
    t = new_tensor(2, sz, F32, MPS);
    FAILS(aoti_torch__reinterpret_tensor(t, 1, big, kUnit, 0, &v), "storage"); /* view past the storage */
    FAILS(aoti_torch__reinterpret_tensor(t, 1, sz, kUnit, 13, &v), "storage");
    FAILS(aoti_torch_get_size(t, 2, &i64), "out of range");
    FAILS(aoti_torch_get_stride(t, -3, &i64), "out of range");
    {
      int64_t three[1] = {3};
      AtenTensorHandle src = new_1d(3, F32, CPU);
      FAILS(aoti_torch_copy_(t, src, 0), "broadcast"); /* [3] into [4,4] */
      del(src);
      FAILS(aoti_torch_create_tensor_from_blob_v2(zeros, 1, three, kUnit, 0, F32, CPU, 0, &v, 1, NULL, 0),
            "layout");
    }
    del(t);
  }
  del(out);
  del(a);
  del(b);
}

/* ------------------------------------------------------------------ blocks */

typedef struct {
  AtenTensorHandle out, a, b;
  AOTITorchError dispatch_rc;
} fail_then_dispatch_job;

static void fail_then_dispatch_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  fail_then_dispatch_job* j = (fail_then_dispatch_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  CHECK(aoti_torch_mps_set_arg_tensor(k, 7, j->out) == AOTI_TORCH_FAILURE); /* no binding 7 */
  /* generated code ignores return codes and carries on */
  (void)aoti_torch_mps_set_arg_tensor(k, 0, j->out);
  (void)aoti_torch_mps_set_arg_tensor(k, 1, j->a);
  (void)aoti_torch_mps_set_arg_tensor(k, 2, j->b);
  (void)aoti_torch_mps_set_arg_int(k, 3, 4);
  j->dispatch_rc = aoti_torch_mps_dispatch_single(k, 4);
}

typedef struct {
  AtenTensorHandle out1, out2, a, b;
} two_dispatch_job;

/* One encoding, two dispatches: rebinding between them affects only the second. */
static void two_dispatch_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  two_dispatch_job* j = (two_dispatch_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out1));
  OK(aoti_torch_mps_set_arg_tensor(k, 1, j->a));
  OK(aoti_torch_mps_set_arg_tensor(k, 2, j->b));
  OK(aoti_torch_mps_set_arg_int(k, 3, 4));
  OK(aoti_torch_mps_dispatch_single(k, 4));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out2));
  OK(aoti_torch_mps_set_arg_tensor(k, 2, j->out1)); /* reads the first dispatch's output */
  OK(aoti_torch_mps_dispatch_single(k, 4));
}

typedef struct {
  fill_job inner;
  add_job outer;
  AOTITorchError inner_rc;
  int inner_fails;
} nested_job;

static void bad_fill_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  (void)ud;
  OK(aoti_torch_mps_start_encoding(k));
  CHECK(aoti_torch_mps_set_arg_int(k, 0, 1) == AOTI_TORCH_FAILURE); /* binding 0 is a buffer */
}

static void nested_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  nested_job* j = (nested_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  /* a block inside a block, on another kernel: must not deadlock */
  if (j->inner_fails)
    j->inner_rc = aoti_torch_mps_run_command_block(k_fill, bad_fill_cb, NULL);
  else
    j->inner_rc = aoti_torch_mps_run_command_block(k_fill, fill_cb, &j->inner);
  (void)aoti_torch_mps_set_arg_tensor(k, 0, j->outer.out);
  (void)aoti_torch_mps_set_arg_tensor(k, 1, j->outer.a);
  (void)aoti_torch_mps_set_arg_tensor(k, 2, j->outer.b);
  (void)aoti_torch_mps_set_arg_int(k, 3, j->outer.n);
  (void)aoti_torch_mps_dispatch_single(k, (uint64_t)j->outer.n);
}

static void section_blocks(void) {
  enum { N = 4 };
  const float a_vals[N] = {1, 2, 3, 4}, b_vals[N] = {10, 20, 30, 40}, sentinel[N] = {-7, -7, -7, -7};
  AtenTensorHandle out = mps_f32(N, sentinel), a = mps_f32(N, a_vals), b = mps_f32(N, b_vals);
  float got[N];

  /* a failing call makes the block fail; its later dispatch is skipped */
  {
    fail_then_dispatch_job j;
    j.out = out;
    j.a = a;
    j.b = b;
    j.dispatch_rc = -1;
    FAILS(aoti_torch_mps_run_command_block(k_add, fail_then_dispatch_cb, &j), "no binding index 7");
    d2h(got, out);
    for (int i = 0; i < N; ++i) CHECKF(got[i] == -7.0f, "skipped dispatch wrote out[%d] = %g", i, got[i]);
  }
  /* the failure does not leak into the next block */
  {
    add_job j;
    j.out = out;
    j.a = a;
    j.b = b;
    j.n = N;
    OK(aoti_torch_mps_run_command_block(k_add, add_cb, &j));
    d2h(got, out);
    for (int i = 0; i < N; ++i) CHECK(got[i] == a_vals[i] + b_vals[i]);
  }
  /* two dispatches in one block */
  {
    two_dispatch_job j;
    float got2[N];
    AtenTensorHandle out2 = mps_f32(N, sentinel);
    j.out1 = out;
    j.out2 = out2;
    j.a = a;
    j.b = b;
    OK(aoti_torch_mps_run_command_block(k_add, two_dispatch_cb, &j));
    d2h(got, out);
    d2h(got2, out2);
    for (int i = 0; i < N; ++i) {
      CHECK(got[i] == a_vals[i] + b_vals[i]);
      CHECK(got2[i] == a_vals[i] + a_vals[i] + b_vals[i]);
    }
    del(out2);
  }
  /* shared_callback's user_data must be a std::function: NULL fails the block */
  FAILS(aoti_torch_mps_run_command_block(k_add, aoti_torch_mps_shared_callback, NULL), "user_data");

  /* nested run_command_block: the outer kernel reads what the inner one wrote */
  {
    nested_job j;
    AtenTensorHandle tmp = mps_f32(N, sentinel);
    h2d(out, sentinel);
    j.inner.out = tmp;
    j.inner.base = 100;
    j.inner.n = N;
    j.outer.out = out;
    j.outer.a = tmp;
    j.outer.b = b;
    j.outer.n = N;
    j.inner_rc = -1;
    j.inner_fails = 0;
    OK(aoti_torch_mps_run_command_block(k_add, nested_cb, &j));
    CHECK_EQ(j.inner_rc, 0);
    d2h(got, out);
    for (int i = 0; i < N; ++i) CHECKF(got[i] == (float)(100 + i) + b_vals[i], "nested: out[%d] = %g", i, got[i]);

    /* an inner failure fails the inner block and the enclosing one */
    j.inner_fails = 1;
    FAILS(aoti_torch_mps_run_command_block(k_add, nested_cb, &j), "set_arg_tensor");
    CHECK_EQ(j.inner_rc, AOTI_TORCH_FAILURE);
    del(tmp);
  }
  /* and everything still works afterwards (no lock left held, no failure left over) */
  {
    add_job j;
    j.out = out;
    j.a = b;
    j.b = b;
    j.n = N;
    OK(aoti_torch_mps_run_command_block(k_add, add_cb, &j));
    d2h(got, out);
    for (int i = 0; i < N; ++i) CHECK(got[i] == 2 * b_vals[i]);
  }
  del(out);
  del(a);
  del(b);
}

/* ----------------------------------------------------------------- tensors */

static void check_layout(int line, AtenTensorHandle t, int64_t ndim, const int64_t* sizes, const int64_t* strides,
                         int64_t offset, int32_t dtype, int32_t device) {
  int64_t dim = -1, numel = -1, off = -1, v = 0, want_numel = 1;
  int64_t *ps = NULL, *pt = NULL, *ps2 = NULL, *pt2 = NULL;
  int32_t dt = -1, dev = -1, idx = -1;
  OK(aoti_torch_get_dim(t, &dim));
  if (dim != ndim) fail_at(line, "dim %lld, expected %lld", (long long)dim, (long long)ndim);
  OK(aoti_torch_get_sizes(t, &ps));
  OK(aoti_torch_get_strides(t, &pt));
  for (int64_t d = 0; d < ndim; ++d) {
    if (ps[d] != sizes[d]) fail_at(line, "size[%lld] %lld, expected %lld", (long long)d, (long long)ps[d], (long long)sizes[d]);
    if (pt[d] != strides[d]) fail_at(line, "stride[%lld] %lld, expected %lld", (long long)d, (long long)pt[d], (long long)strides[d]);
    OK(aoti_torch_get_size(t, d, &v));
    if (v != sizes[d]) fail_at(line, "get_size(%lld) %lld", (long long)d, (long long)v);
    OK(aoti_torch_get_size(t, d - ndim, &v)); /* negative dims count from the end */
    if (v != sizes[d]) fail_at(line, "get_size(%lld) %lld", (long long)(d - ndim), (long long)v);
    OK(aoti_torch_get_stride(t, d, &v));
    if (v != strides[d]) fail_at(line, "get_stride(%lld) %lld", (long long)d, (long long)v);
    want_numel *= sizes[d];
  }
  OK(aoti_torch_get_numel(t, &numel));
  if (numel != want_numel) fail_at(line, "numel %lld, expected %lld", (long long)numel, (long long)want_numel);
  OK(aoti_torch_get_storage_offset(t, &off));
  if (off != offset) fail_at(line, "storage offset %lld, expected %lld", (long long)off, (long long)offset);
  OK(aoti_torch_get_dtype(t, &dt));
  if (dt != dtype) fail_at(line, "dtype %d, expected %d", dt, dtype);
  OK(aoti_torch_get_device_type(t, &dev));
  if (dev != device) fail_at(line, "device %d, expected %d", dev, device);
  OK(aoti_torch_get_device_index(t, &idx));
  if (idx != 0) fail_at(line, "device index %d, expected 0", idx);
  /* the same pointers every time */
  OK(aoti_torch_get_sizes(t, &ps2));
  OK(aoti_torch_get_strides(t, &pt2));
  if (ps2 != ps || pt2 != pt) fail_at(line, "get_sizes/get_strides pointers moved");
}
#define CHECK_LAYOUT(t, ndim, sizes, strides, offset, dtype, device) \
  check_layout(__LINE__, t, ndim, sizes, strides, offset, dtype, device)

static void data_ptr_is(int line, AtenTensorHandle t, const void* want) {
  void* p = NULL;
  OK(aoti_torch_get_data_ptr(t, &p));
  if (p != want) fail_at(line, "data ptr %p, expected %p", p, want);
}
#define DATA_PTR_IS(t, want) data_ptr_is(__LINE__, t, want)

static int64_t storage_bytes(AtenTensorHandle t) {
  int64_t n = -1;
  OK(aoti_torch_get_storage_size(t, &n));
  return n;
}

static void section_tensors(void) {
  /* empty_strided, mps and cpu, and every getter */
  {
    int64_t sz[2] = {2, 3}, st[2] = {3, 1};
    int64_t sz3[3] = {2, 3, 4}, st3[3] = {1, 2, 6}; /* column-major */
    int64_t *ps = NULL, *ps_again = NULL;
    AtenTensorHandle t = NULL, c = NULL, s = NULL, others[8];
    void* p = NULL;
    OK(aoti_torch_empty_strided(2, sz, st, F32, MPS, 0, &t));
    CHECK_LAYOUT(t, 2, sz, st, 0, F32, MPS);
    CHECK_EQ(storage_bytes(t), 24);
    OK(aoti_torch_get_data_ptr(t, &p));
    CHECK(p != NULL);
    OK(aoti_torch_get_sizes(t, &ps));
    for (int i = 0; i < 8; ++i) others[i] = new_tensor(2, sz, F32, MPS); /* the pointers survive other work */
    OK(aoti_torch_get_sizes(t, &ps_again));
    CHECK(ps == ps_again);
    CHECK(ps[0] == 2 && ps[1] == 3);
    for (int i = 0; i < 8; ++i) del(others[i]);

    OK(aoti_torch_empty_strided(3, sz3, st3, I64, CPU, 0, &c));
    CHECK_LAYOUT(c, 3, sz3, st3, 0, I64, CPU);
    CHECK_EQ(storage_bytes(c), 2 * 3 * 4 * 8);

    OK(aoti_torch_empty_strided(0, NULL, NULL, F32, MPS, 0, &s)); /* a scalar */
    CHECK_LAYOUT(s, 0, sz, st, 0, F32, MPS);
    CHECK_EQ(storage_bytes(s), 4);
    del(s);
    {
      int64_t zsz[2] = {0, 3}, zst[2] = {3, 1}, n = -1;
      OK(aoti_torch_empty_strided(2, zsz, zst, F32, MPS, 0, &s)); /* no elements */
      OK(aoti_torch_get_numel(s, &n));
      CHECK_EQ(n, 0);
      del(s);
    }
    {
      int64_t bsz[1] = {3}, bst[1] = {1};
      OK(aoti_torch_empty_strided(1, bsz, bst, BOOL_, CPU, 0, &s));
      CHECK_LAYOUT(s, 1, bsz, bst, 0, BOOL_, CPU);
      CHECK_EQ(storage_bytes(s), 3);
      del(s);
    }
    del(t);
    del(c);
  }

  /* create_tensor_from_blob(_v2): storage_offset counts elements; a kernel's element 0 lands there */
  {
    enum { B = 16 };
    float init[B], got[B];
    void* blob;
    AtenTensorHandle t = NULL, t2 = NULL;
    int64_t sz[1] = {4}, st[1] = {1}, sz2[2] = {2, 3}, st2[2] = {3, 1};
    for (int i = 0; i < B; ++i) init[i] = -1.0f;
    blob = device_buffer(sizeof init, init);
    OK(aoti_torch_create_tensor_from_blob(blob, 1, sz, st, 5, F32, MPS, 0, &t));
    CHECK_LAYOUT(t, 1, sz, st, 5, F32, MPS);
    DATA_PTR_IS(t, (char*)blob + 5 * 4);
    run_fill(t, 100, 4);
    raw_d2h(got, blob, sizeof got);
    for (int i = 0; i < B; ++i) {
      float want = i >= 5 && i < 9 ? (float)(100 + i - 5) : -1.0f;
      CHECKF(got[i] == want, "from_blob offset 5: blob[%d] = %g, expected %g", i, got[i], want);
    }
    OK(aoti_torch_create_tensor_from_blob_v2(blob, 2, sz2, st2, 9, F32, MPS, 0, &t2, aoti_torch_layout_strided(),
                                             NULL, 0));
    CHECK_LAYOUT(t2, 2, sz2, st2, 9, F32, MPS);
    DATA_PTR_IS(t2, (char*)blob + 9 * 4);
    run_fill(t2, 200, 6);
    raw_d2h(got, blob, sizeof got);
    for (int i = 0; i < B; ++i) {
      float want = i >= 9 && i < 15 ? (float)(200 + i - 9) : i >= 5 && i < 9 ? (float)(100 + i - 5) : -1.0f;
      CHECKF(got[i] == want, "from_blob_v2 offset 9: blob[%d] = %g, expected %g", i, got[i], want);
    }
    /* reading through the tensor (copy_ to cpu) starts at the offset too */
    d2h(got, t2);
    for (int i = 0; i < 6; ++i) CHECK(got[i] == (float)(200 + i));
    del(t);
    del(t2);
    OK(aoti_torch_mps_free(blob)); /* the blob belongs to the caller */
  }

  /* _reinterpret_tensor and as_strided: views whose kernel writes land in the parent */
  {
    int64_t psz[2] = {4, 4}, pst[2] = {4, 1}, vsz[1] = {3}, vst[1] = {1}, asz[1] = {2}, ast[1] = {2};
    float init[16], got[16], v2got[2];
    AtenTensorHandle parent = new_tensor(2, psz, F32, MPS), v1 = NULL, v2 = NULL;
    void* base = NULL;
    for (int i = 0; i < 16; ++i) init[i] = -1.0f;
    h2d(parent, init);
    CHECK_LAYOUT(parent, 2, psz, pst, 0, F32, MPS);
    OK(aoti_torch_get_data_ptr(parent, &base));
    OK(aoti_torch__reinterpret_tensor(parent, 1, vsz, vst, 6, &v1));
    CHECK_LAYOUT(v1, 1, vsz, vst, 6, F32, MPS);
    DATA_PTR_IS(v1, (char*)base + 6 * 4);
    CHECK_EQ(storage_bytes(v1), storage_bytes(parent));
    run_fill(v1, 100, 3);
    d2h(got, parent);
    for (int i = 0; i < 16; ++i) {
      float want = i >= 6 && i < 9 ? (float)(100 + i - 6) : -1.0f;
      CHECKF(got[i] == want, "reinterpret view: parent[%d] = %g, expected %g", i, got[i], want);
    }
    OK(aoti_torch_as_strided(v1, asz, ast, &v2)); /* keeps v1's storage offset */
    CHECK_LAYOUT(v2, 1, asz, ast, 6, F32, MPS);
    DATA_PTR_IS(v2, (char*)base + 6 * 4);
    d2h(v2got, v2); /* strided read: parent[6], parent[8] */
    CHECK(v2got[0] == 100.0f && v2got[1] == 102.0f);
    run_fill(v2, 200, 1);
    d2h(got, parent);
    CHECK(got[6] == 200.0f && got[7] == 101.0f && got[8] == 102.0f);

    /* views keep the storage alive after the parent handle is gone */
    del(parent);
    run_fill(v1, 300, 3);
    d2h(got, v1);
    for (int i = 0; i < 3; ++i) CHECK(got[i] == (float)(300 + i));
    del(v1);
    d2h(v2got, v2);
    CHECK(v2got[0] == 300.0f && v2got[1] == 302.0f);
    del(v2);
  }

  /* new_tensor_handle: a second handle on the same tensor */
  {
    int64_t sz[2] = {2, 2}, st[2] = {2, 1};
    const float vals[4] = {1, 2, 3, 4};
    float got[4];
    AtenTensorHandle t = new_tensor(2, sz, F32, MPS), n = NULL;
    void *p1 = NULL, *p2 = NULL;
    h2d(t, vals);
    OK(aoti_torch_new_tensor_handle(t, &n));
    CHECK(n != NULL && n != t);
    CHECK_LAYOUT(n, 2, sz, st, 0, F32, MPS);
    OK(aoti_torch_get_data_ptr(t, &p1));
    OK(aoti_torch_get_data_ptr(n, &p2));
    CHECK(p1 == p2);
    del(t);
    d2h(got, n);
    for (int i = 0; i < 4; ++i) CHECK(got[i] == vals[i]);
    del(n);
  }

  /* clone / clone_preserve_strides of a transposed view */
  {
    int64_t sz[2] = {2, 3}, tsz[2] = {3, 2}, tst[2] = {1, 3}, cst[2] = {2, 1};
    const float vals[6] = {0, 1, 2, 3, 4, 5};
    const float transposed[6] = {0, 3, 1, 4, 2, 5};
    float got[6];
    AtenTensorHandle src = new_tensor(2, sz, F32, MPS), tr = NULL, c = NULL, cp = NULL;
    void *ps = NULL, *pc = NULL;
    h2d(src, vals);
    OK(aoti_torch_as_strided(src, tsz, tst, &tr));
    OK(aoti_torch_clone(tr, &c));
    CHECK_LAYOUT(c, 2, tsz, cst, 0, F32, MPS);
    OK(aoti_torch_get_data_ptr(src, &ps));
    OK(aoti_torch_get_data_ptr(c, &pc));
    CHECK(ps != pc);
    d2h(got, c);
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == transposed[i], "clone[%d] = %g", i, got[i]);
    OK(aoti_torch_clone_preserve_strides(tr, &cp));
    CHECK_LAYOUT(cp, 2, tsz, tst, 0, F32, MPS);
    CHECK_EQ(storage_bytes(cp), 24);
    d2h(got, cp);
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == transposed[i], "clone_preserve_strides[%d] = %g", i, got[i]);
    /* clones are independent of the source */
    run_fill(src, 50, 6);
    d2h(got, c);
    CHECK(got[1] == 3.0f);
    {
      int64_t vsz[1] = {2}, vst[1] = {1};
      AtenTensorHandle v = NULL, cv = NULL;
      OK(aoti_torch__reinterpret_tensor(src, 1, vsz, vst, 4, &v));
      OK(aoti_torch_clone(v, &cv));
      CHECK_LAYOUT(cv, 1, vsz, vst, 0, F32, MPS);
      d2h(got, cv);
      CHECK(got[0] == 54.0f && got[1] == 55.0f);
      del(v);
      del(cv);
    }
    del(src);
    del(tr);
    del(c);
    del(cp);
  }

  /* copy_ cpu -> mps from a transposed cpu view */
  {
    int64_t sz[2] = {2, 3}, st[2] = {3, 1}, tsz[2] = {3, 2}, tst[2] = {1, 3};
    float host[6] = {0, 1, 2, 3, 4, 5}, got[6];
    const float transposed[6] = {0, 3, 1, 4, 2, 5};
    AtenTensorHandle cpu = NULL, cpu_t = NULL, dst = new_tensor(2, tsz, F32, MPS);
    OK(aoti_torch_create_tensor_from_blob(host, 2, sz, st, 0, F32, CPU, 0, &cpu));
    OK(aoti_torch_as_strided(cpu, tsz, tst, &cpu_t));
    OK(aoti_torch_copy_(dst, cpu_t, 0));
    d2h(got, dst);
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == transposed[i], "cpu->mps transposed [%d] = %g", i, got[i]);
    del(cpu);
    del(cpu_t);
    del(dst);
  }

  /* copy_ mps -> cpu from a transposed mps view, float32 -> int32 (truncates toward zero) */
  {
    int64_t sz[2] = {2, 3}, tsz[2] = {3, 2}, tst[2] = {1, 3}, cst[2] = {2, 1};
    const float vals[6] = {1.5f, -2.7f, 3.9f, 100.2f, -0.4f, 7.0f};
    const int32_t want[6] = {1, 100, -2, 0, 3, 7}; /* transposed, then truncated */
    int32_t got[6];
    AtenTensorHandle src = new_tensor(2, sz, F32, MPS), src_t = NULL, cpu = NULL;
    h2d(src, vals);
    OK(aoti_torch_as_strided(src, tsz, tst, &src_t));
    OK(aoti_torch_create_tensor_from_blob(got, 2, tsz, cst, 0, I32, CPU, 0, &cpu));
    OK(aoti_torch_copy_(cpu, src_t, 0));
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == want[i], "mps->cpu f32->i32 [%d] = %d, expected %d", i, got[i], want[i]);
    del(src);
    del(src_t);
    del(cpu);
  }

  /* float32 -> float16 (cpu -> mps), exact bit patterns, round to nearest even */
  {
    enum { N = 10 };
    const float vals[N] = {1.0f, 65504.0f, 1e-8f, -2.0f, 0.5f, 65520.0f, 5.9604645e-8f, 1e-4f, 1.00048828125f,
                           1.00146484375f};
    /* 1.00048828125 = 1 + 2^-11 ties to 0x3C00 (even); 1.00146484375 = 1 + 3*2^-11 ties up to 0x3C02 */
    const uint16_t want[N] = {0x3C00, 0x7BFF, 0x0000, 0xC000, 0x3800, 0x7C00, 0x0001, 0x068E, 0x3C00, 0x3C02};
    uint16_t bits[N];
    float back[N];
    AtenTensorHandle src = NULL, half = new_1d(N, F16, MPS), hcpu = NULL, fback = NULL;
    int64_t n = N;
    OK(aoti_torch_create_tensor_from_blob((void*)vals, 1, &n, kUnit, 0, F32, CPU, 0, &src));
    OK(aoti_torch_copy_(half, src, 0));
    OK(aoti_torch_create_tensor_from_blob(bits, 1, &n, kUnit, 0, F16, CPU, 0, &hcpu));
    OK(aoti_torch_copy_(hcpu, half, 0));
    for (int i = 0; i < N; ++i)
      CHECKF(bits16(&bits[i]) == want[i], "float16(%g) = 0x%04X, expected 0x%04X", vals[i], bits[i], want[i]);
    /* and back: float16 -> float32 (mps -> cpu) */
    OK(aoti_torch_create_tensor_from_blob(back, 1, &n, kUnit, 0, F32, CPU, 0, &fback));
    OK(aoti_torch_copy_(fback, half, 0));
    CHECK(back[0] == 1.0f && back[1] == 65504.0f && back[3] == -2.0f && back[6] == 5.9604645e-8f);
    del(src);
    del(half);
    del(hcpu);
    del(fback);
  }

  /* float32 -> bfloat16 (mps -> cpu), round to nearest even */
  {
    enum { N = 7 };
    const uint32_t in_bits[N] = {0x3F800000u, 0x3F808000u, 0x3F818000u, 0x3F808001u,
                                 0x3F80FFFFu, 0xBF808000u, 0x7F7FFFFFu};
    const uint16_t want[N] = {0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x3F81, 0xBF80, 0x7F80};
    float vals[N];
    uint16_t bits[N];
    AtenTensorHandle src = new_1d(N, F32, MPS), dst = NULL;
    int64_t n = N;
    for (int i = 0; i < N; ++i) vals[i] = float_from_bits(in_bits[i]);
    h2d(src, vals);
    OK(aoti_torch_create_tensor_from_blob(bits, 1, &n, kUnit, 0, BF16, CPU, 0, &dst));
    OK(aoti_torch_copy_(dst, src, 0));
    for (int i = 0; i < N; ++i)
      CHECKF(bits[i] == want[i], "bfloat16(0x%08X) = 0x%04X, expected 0x%04X", in_bits[i], bits[i], want[i]);
    del(src);
    del(dst);
  }

  /* int -> float and float -> bool */
  {
    enum { N = 4 };
    const int64_t iv[N] = {-3, 0, 1 << 20, 7};
    const float fv[N] = {0.0f, -0.5f, 2.0f, 0.0f};
    float fgot[N];
    uint8_t bgot[N];
    int64_t n = N;
    AtenTensorHandle is = new_1d(N, I64, MPS), fs = new_1d(N, F32, MPS), fd = NULL, bd = NULL;
    h2d(is, iv);
    h2d(fs, fv);
    OK(aoti_torch_create_tensor_from_blob(fgot, 1, &n, kUnit, 0, F32, CPU, 0, &fd));
    OK(aoti_torch_copy_(fd, is, 0));
    for (int i = 0; i < N; ++i) CHECK(fgot[i] == (float)iv[i]);
    OK(aoti_torch_create_tensor_from_blob(bgot, 1, &n, kUnit, 0, BOOL_, CPU, 0, &bd));
    OK(aoti_torch_copy_(bd, fs, 0));
    CHECK(bgot[0] == 0 && bgot[1] == 1 && bgot[2] == 1 && bgot[3] == 0);
    del(is);
    del(fs);
    del(fd);
    del(bd);
  }

  /* copy_ between overlapping views of one storage reads before it writes */
  {
    int64_t n6 = 6, n5 = 5;
    const float vals[6] = {0, 1, 2, 3, 4, 5};
    float got[6];
    AtenTensorHandle parent = new_tensor(1, &n6, F32, MPS), lo = NULL, hi = NULL;
    h2d(parent, vals);
    OK(aoti_torch__reinterpret_tensor(parent, 1, &n5, kUnit, 0, &lo));
    OK(aoti_torch__reinterpret_tensor(parent, 1, &n5, kUnit, 1, &hi));
    OK(aoti_torch_copy_(hi, lo, 0));
    d2h(got, parent);
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == (i == 0 ? 0.0f : vals[i - 1]), "overlap copy [%d] = %g", i, got[i]);
    del(parent);
    del(lo);
    del(hi);
  }

  /* broadcast copy_: [1,3] and [3] into [2,3] */
  {
    int64_t ssz[2] = {1, 3}, dsz[2] = {2, 3}, dst_st[2] = {3, 1}, vsz[1] = {3};
    const float row[3] = {1, 2, 3};
    float got[6];
    AtenTensorHandle src = new_tensor(2, ssz, F32, MPS), vec = new_tensor(1, vsz, F32, CPU), dst = NULL;
    h2d(src, row);
    h2d(vec, row);
    OK(aoti_torch_create_tensor_from_blob(got, 2, dsz, dst_st, 0, F32, CPU, 0, &dst));
    OK(aoti_torch_copy_(dst, src, 0));
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == row[i % 3], "broadcast [1,3]: [%d] = %g", i, got[i]);
    memset(got, 0, sizeof got);
    OK(aoti_torch_copy_(dst, vec, 0));
    for (int i = 0; i < 6; ++i) CHECKF(got[i] == row[i % 3], "broadcast [3]: [%d] = %g", i, got[i]);
    del(src);
    del(vec);
    del(dst);
  }
}

/* ------------------------------------------------------------------ memory */

static void section_memory(void) {
  /* malloc(0): NULL and success */
  {
    void* p = (void*)&p;
    OK(aoti_torch_mps_malloc(&p, 0));
    CHECK(p == NULL);
    OK(aoti_torch_mps_free(NULL));
  }
  /* malloc / memcpy / copy_buffer round trip */
  {
    uint8_t consts[32], zeros[64], got[64];
    void *a, *b;
    for (int i = 0; i < 32; ++i) consts[i] = (uint8_t)(i * 3 + 1);
    memset(zeros, 0, sizeof zeros);
    a = device_buffer(64, zeros);
    b = device_buffer(64, zeros);
    CHECK(a != b);
    /* memcpy copies data_size bytes from constants_start + bytes_read to buffer + constant_offset */
    OK(aoti_torch_mps_memcpy(a, 8, 4, 16, consts));
    raw_d2h(got, a, 64);
    for (int i = 0; i < 64; ++i) {
      uint8_t want = i >= 8 && i < 24 ? consts[i - 8 + 4] : 0;
      CHECKF(got[i] == want, "memcpy: a[%d] = %u, expected %u", i, got[i], want);
    }
    OK(aoti_torch_mps_copy_buffer(a, b, 16, 8, 32));
    raw_d2h(got, b, 64);
    for (int i = 0; i < 64; ++i) {
      uint8_t want = i >= 32 && i < 48 ? consts[i - 32 + 4] : 0;
      CHECKF(got[i] == want, "copy_buffer: b[%d] = %u, expected %u", i, got[i], want);
    }
    OK(aoti_torch_mps_memcpy(a, 64, 0, 0, consts)); /* zero bytes at the very end */
    OK(aoti_torch_mps_copy_buffer(a, b, 0, 64, 64));
    OK(aoti_torch_mps_copy_buffer(a, b, 64, 0, 0)); /* the whole buffer */
    raw_d2h(got, b, 64);
    CHECK(got[8] == consts[4] && got[23] == consts[19] && got[32] == 0);
    OK(aoti_torch_mps_free(a));
    OK(aoti_torch_mps_free(b));
  }
  /* a kernel writes into malloc'd memory through a tensor over it */
  {
    float zeros[8] = {0}, got[8];
    int64_t n = 8;
    void* buf = device_buffer(sizeof zeros, zeros);
    AtenTensorHandle t = NULL;
    OK(aoti_torch_create_tensor_from_blob(buf, 1, &n, kUnit, 0, F32, MPS, 0, &t));
    run_fill(t, -4, 8);
    del(t); /* the tensor borrowed buf: deleting it leaves buf alive */
    raw_d2h(got, buf, sizeof got);
    for (int i = 0; i < 8; ++i) CHECK(got[i] == (float)(i - 4));
    OK(aoti_torch_mps_free(buf));
  }
}

/* ------------------------------------------------------------------- misc */

static void section_misc(void) {
  struct {
    const char* name;
    int32_t code, want;
    size_t size;
  } dtypes[] = {
      {"uint8", aoti_torch_dtype_uint8(), 0, 1},     {"int8", aoti_torch_dtype_int8(), 1, 1},
      {"int16", aoti_torch_dtype_int16(), 2, 2},     {"int32", aoti_torch_dtype_int32(), 3, 4},
      {"int64", aoti_torch_dtype_int64(), 4, 8},     {"float16", aoti_torch_dtype_float16(), 5, 2},
      {"float32", aoti_torch_dtype_float32(), 6, 4}, {"float64", aoti_torch_dtype_float64(), 7, 8},
      {"bool", aoti_torch_dtype_bool(), 11, 1},      {"bfloat16", aoti_torch_dtype_bfloat16(), 15, 2},
      {"uint16", aoti_torch_dtype_uint16(), 27, 2},  {"uint32", aoti_torch_dtype_uint32(), 28, 4},
      {"uint64", aoti_torch_dtype_uint64(), 29, 8},
  };
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; ++i) {
    CHECKF(dtypes[i].code == dtypes[i].want, "aoti_torch_dtype_%s() = %d, expected %d", dtypes[i].name,
           dtypes[i].code, dtypes[i].want);
    CHECKF(aoti_torch_dtype_element_size(dtypes[i].code) == dtypes[i].size, "element size of %s = %zu",
           dtypes[i].name, aoti_torch_dtype_element_size(dtypes[i].code));
  }
  CHECK_EQ(aoti_torch_dtype_element_size(99), 0);
  CHECK_EQ(aoti_torch_dtype_element_size(-1), 0);
  CHECK_EQ(aoti_torch_device_type_cpu(), 0);
  CHECK_EQ(aoti_torch_device_type_cuda(), 1);
  CHECK_EQ(aoti_torch_device_type_mps(), 13);
  CHECK_EQ(aoti_torch_layout_strided(), 0);

  CHECK(aoti_torch_grad_mode_is_enabled());
  aoti_torch_grad_mode_set_enabled(false);
  CHECK(!aoti_torch_grad_mode_is_enabled());
  aoti_torch_grad_mode_set_enabled(true);
  CHECK(aoti_torch_grad_mode_is_enabled());

  CHECK(strcmp(mps_shim_backend_name(), "host") == 0);
  CHECK_EQ(mps_shim_synchronize(), AOTI_TORCH_SUCCESS);
  CONTAINS(mps_shim_runtime_info(), "\"backend\": \"host\"");

  /* aoti_torch_warn logs and returns; aoti_torch_check passes on true (its false case
   * throws a C++ exception: generated_model.cpp checks that from C++) */
  aoti_torch_warn("section_misc", __FILE__, __LINE__, "expected warning from abi_test");
  aoti_torch_check(true, "section_misc", __FILE__, __LINE__, "never printed");
}

/* ----------------------------------------------------------------- threads */

enum { kThreads = 4, kRounds = 25, kLen = 64 };

typedef struct {
  int id;
  AtenTensorHandle out;
} thread_job;

/* Every thread runs blocks on the same kernel function handle, as several callers
 * of one generated model would; blocks serialise, so each sees its own bindings. */
static void* thread_main(void* ud) {
  thread_job* j = (thread_job*)ud;
  char name[64];
  float got[kLen];
  for (int round = 0; round < kRounds; ++round) {
    const int64_t base = (int64_t)j->id * 100000 + round * 100;
    run_fill(j->out, base, kLen);
    d2h(got, j->out);
    for (int i = 0; i < kLen; ++i)
      CHECKF(got[i] == (float)(base + i), "thread %d round %d: out[%d] = %g", j->id, round, i, got[i]);
  }
  snprintf(name, sizeof name, "thread_%d_error", j->id);
  {
    AOTIMetalKernelFunctionHandle k = NULL;
    FAILS(aoti_torch_mps_get_kernel_function(g_lib, name, &k), name);
  }
  return NULL;
}

static void section_threads(void) {
  pthread_t threads[kThreads];
  thread_job jobs[kThreads];
  AOTIMetalKernelFunctionHandle k = NULL;
  FAILS(aoti_torch_mps_get_kernel_function(g_lib, "main_thread_error", &k), "main_thread_error");
  for (int t = 0; t < kThreads; ++t) {
    jobs[t].id = t;
    jobs[t].out = new_1d(kLen, F32, MPS);
    CHECK(pthread_create(&threads[t], NULL, thread_main, &jobs[t]) == 0);
  }
  for (int t = 0; t < kThreads; ++t) CHECK(pthread_join(threads[t], NULL) == 0);
  for (int t = 0; t < kThreads; ++t) del(jobs[t].out);
  /* the last error is per thread: the workers' errors did not replace this one */
  CONTAINS(mps_shim_last_error(), "main_thread_error");
}

/* ------------------------------------------------------- metal binding */

/* Metal's binding rules and the extensions torch.mps.compile_shader needs: include folders,
 * bytes up to 4 KiB, a tensor behind a `constant T&`, argument buffers, c10's error buffer
 * (its layout, written by hand here: c10/metal/error.h ships with torch). */
static const char* kBindingSource =
    "#include <metal_stdlib>\n"
    "#include <twice.h>\n"
    "using namespace metal;\n"
    "kernel void lookup(device float* out, constant float* table, uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = twice(table[1023 - i]);\n"
    "}\n"
    "kernel void strided(device float* out, constant ulong2& strides, uint2 p [[thread_position_in_grid]]) {\n"
    "  out[p.x * strides.x + p.y * strides.y] = p.x + 10.0f * p.y;\n"
    "}\n"
    "struct Inputs { device float* args[3]; };\n"
    "kernel void sum3(device float* out, constant Inputs& in, uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = in.args[0][i] + in.args[1][i] + in.args[2][i];\n"
    "}\n"
    "struct Message { char file[128]; char func[128]; char message[250]; uint line; };\n"
    "struct Messages { atomic_uint count; Message msg[30]; };\n"
    "kernel void bounded(device float* x, constant int& limit, device Messages* errors,\n"
    "                    uint i [[thread_position_in_grid]]) {\n"
    "  if (int(i) >= limit) {\n"
    "    const uint k = atomic_fetch_add_explicit(&errors->count, 1u, memory_order_relaxed);\n"
    "    if (k < 30) { errors->msg[k].message[0] = 'h'; errors->msg[k].message[1] = 'i'; errors->msg[k].line = 42; }\n"
    "    return;\n"
    "  }\n"
    "  x[i] = 1.0f;\n"
    "}\n";

typedef struct {
  int op; /* 0 lookup, 1 lookup with 4097 bytes, 2 strided, 3 sum3, 4 bounded */
  AtenTensorHandle out, strides, in[3];
  const void* bytes;
  size_t nbytes;
  int64_t limit;
} binding_job;

static void binding_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  binding_job* j = (binding_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  if (j->op == 0 || j->op == 1) {
    if (j->op == 1) {
      FAILS(mps_shim_set_arg_bytes(k, 1, j->bytes, j->nbytes), "1 to 4096 bytes");
      return;
    }
    OK(mps_shim_set_arg_bytes(k, 1, j->bytes, j->nbytes));
    OK(aoti_torch_mps_dispatch_single(k, 1024));
  } else if (j->op == 2) {
    uint64_t grid[2] = {4, 3};
    OK(aoti_torch_mps_set_arg_tensor(k, 1, j->strides)); /* a tensor behind `constant ulong2&` */
    OK(aoti_torch_mps_dispatch_array(k, grid, 2));
  } else if (j->op == 3) {
    void* addresses[3];
    for (int t = 0; t < 3; ++t) OK(aoti_torch_get_data_ptr(j->in[t], &addresses[t]));
    OK(mps_shim_set_arg_bytes(k, 1, addresses, sizeof addresses)); /* an argument buffer */
    OK(aoti_torch_mps_dispatch_single(k, 8));
  } else {
    OK(aoti_torch_mps_set_arg_int(k, 1, j->limit));
    OK(mps_shim_set_arg_error_buffer(k, 2));
    aoti_torch_mps_dispatch_single(k, 8); /* checked by the caller, through the block's result */
  }
}

static void write_text(const char* path, const char* text) {
  FILE* f = fopen(path, "w");
  CHECK(f != NULL);
  CHECK(fputs(text, f) >= 0);
  CHECK(fclose(f) == 0);
}

static void section_binding(void) {
  char dir[] = "/tmp/mps_shim_abi_XXXXXX", header[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(header, sizeof header, "%s/twice.h", dir);
  write_text(header, "inline float twice(float x) { return 2.0f * x; }\n");

  AOTIMetalShaderLibraryHandle lib = NULL;
  FAILS(aoti_torch_mps_create_shader_library(kBindingSource, &lib), "twice.h");
  const char* missing[1] = {"/no/such/folder"};
  FAILS(mps_shim_create_shader_library_with_includes(kBindingSource, missing, 1, &lib), "'/no/such/folder' is not a folder");
  const char* dirs[1] = {dir};
  FAILS(mps_shim_create_shader_library_with_includes(kBindingSource, NULL, 1, &lib), "null include_dirs");
  OK(mps_shim_create_shader_library_with_includes(kBindingSource, dirs, 1, &lib));
  remove(header);
  remove(dir);

  AOTIMetalKernelFunctionHandle lookup, strided, sum3, bounded;
  OK(aoti_torch_mps_get_kernel_function(lib, "lookup", &lookup));
  OK(aoti_torch_mps_get_kernel_function(lib, "strided", &strided));
  OK(aoti_torch_mps_get_kernel_function(lib, "sum3", &sum3));
  OK(aoti_torch_mps_get_kernel_function(lib, "bounded", &bounded));

  /* 4 KiB by value: a 1024-float table */
  static float table[1025], got[1024];
  for (int i = 0; i < 1025; ++i) table[i] = (float)i;
  binding_job j;
  memset(&j, 0, sizeof j);
  j.out = new_1d(1024, F32, MPS);
  j.bytes = table;
  j.nbytes = 4096;
  OK(aoti_torch_mps_run_command_block(lookup, binding_cb, &j));
  d2h(got, j.out);
  for (int i = 0; i < 1024; ++i) CHECK_EQ(got[i], 2 * (1023 - i));
  j.op = 1;
  j.nbytes = 4097;
  FAILS(aoti_torch_mps_run_command_block(lookup, binding_cb, &j), "4096");
  CHECK(mps_shim_take_pending_error() == AOTI_TORCH_FAILURE);
  del(j.out);

  /* a tensor bound to `constant ulong2& strides`: column-major 4x3 */
  {
    const int64_t strides_v[2] = {1, 4};
    float grid_out[12];
    j.op = 2;
    j.out = new_1d(12, F32, MPS);
    j.strides = new_1d(2, I64, MPS);
    h2d(j.strides, strides_v);
    OK(aoti_torch_mps_run_command_block(strided, binding_cb, &j));
    d2h(grid_out, j.out);
    for (int x = 0; x < 4; ++x)
      for (int y = 0; y < 3; ++y) CHECK_EQ(grid_out[x + 4 * y], x + 10 * y);
    del(j.out);
    del(j.strides);
  }

  /* an argument buffer: three device addresses packed by value */
  {
    float v[8], sum[8];
    j.op = 3;
    j.out = new_1d(8, F32, MPS);
    for (int t = 0; t < 3; ++t) {
      for (int i = 0; i < 8; ++i) v[i] = (float)((t + 1) * 100 + i);
      j.in[t] = mps_f32(8, v);
    }
    OK(aoti_torch_mps_run_command_block(sum3, binding_cb, &j));
    d2h(sum, j.out);
    for (int i = 0; i < 8; ++i) CHECK_EQ(sum[i], 600 + 3 * i);
    for (int t = 0; t < 3; ++t) del(j.in[t]);
    del(j.out);
  }

  /* the error buffer: a report fails the dispatch and the block, with the kernel's words */
  {
    j.op = 4;
    j.out = new_1d(8, F32, MPS);
    j.limit = 8;
    OK(aoti_torch_mps_run_command_block(bounded, binding_cb, &j));
    j.limit = 5;
    FAILS(aoti_torch_mps_run_command_block(bounded, binding_cb, &j), "the command block failed");
    CHECK_EQ(mps_shim_last_error_kind(), MPS_SHIM_ERROR_COMMAND_BLOCK);
    CHECK(mps_shim_take_pending_error() == AOTI_TORCH_FAILURE);
    CHECK_EQ(mps_shim_last_error_kind(), MPS_SHIM_ERROR_KERNEL_REPORTED);
    CONTAINS(mps_shim_last_error(), "kernel 'bounded' reported an error: hi (:42, in )");
    CONTAINS(mps_shim_last_error(), "2 more reports");
    j.limit = 8; /* read and emptied: the next dispatch is clean */
    OK(aoti_torch_mps_run_command_block(bounded, binding_cb, &j));
    del(j.out);
  }
  OK(aoti_torch_mps_delete_shader_library(lib));
}

/* ------------------------------------------------ lazy libraries, constants */

static const char* kConstantsSource =
    "#include <metal_stdlib>\n"
    "using namespace metal;\n"
    "constant short MODE [[function_constant(1200 + 0)]];\n"
    "constant float GAIN [[function_constant(4)]];\n"
    "constant bool HAS_GAIN = is_function_constant_defined(GAIN);\n"
    "kernel void apply(device float* out, uint i [[thread_position_in_grid]]) {\n"
    "  float v = float(i) * float(MODE);\n"
    "  out[i] = HAS_GAIN ? v * GAIN : v;\n"
    "}\n"
    "kernel void iota(device float* out, uint i [[thread_position_in_grid]]) { out[i] = float(i); }\n";

typedef struct {
  AtenTensorHandle out;
  uint64_t n;
} out_job;

static void out_cb(AOTIMetalKernelFunctionHandle k, void* ud) {
  out_job* j = (out_job*)ud;
  OK(aoti_torch_mps_start_encoding(k));
  OK(aoti_torch_mps_set_arg_tensor(k, 0, j->out));
  OK(aoti_torch_mps_dispatch_single(k, j->n));
}

static void run_out(AOTIMetalKernelFunctionHandle k, float* got, uint64_t n) {
  out_job j;
  j.out = new_1d((int64_t)n, F32, MPS);
  j.n = n;
  OK(aoti_torch_mps_run_command_block(k, out_cb, &j));
  d2h(got, j.out);
  del(j.out);
}

static void section_constants(void) {
  AOTIMetalShaderLibraryHandle lib = NULL;
  mps_shim_library_options options;
  memset(&options, 0, sizeof options);
  options.compile = MPS_SHIM_COMPILE_LAZY;
  OK(mps_shim_create_shader_library_with_options(kConstantsSource, &options, &lib));
  const char* described = mps_shim_library_describe(lib);
  CONTAINS(described, "\"name\": \"apply\"");
  CONTAINS(described, "\"compiled\": false");
  CONTAINS(described, "{\"name\": \"MODE\", \"type\": \"short\", \"data_type\": 37, \"size\": 2, \"index\": 1200");
  CONTAINS(described, "\"name\": \"GAIN\", \"type\": \"float\", \"data_type\": 3, \"size\": 4, \"index\": 4, "
                      "\"line\": 4, \"required\": false");

  AOTIMetalKernelFunctionHandle apply2 = NULL, apply2_again = NULL, apply3 = NULL, iota = NULL;
  FAILS(aoti_torch_mps_get_kernel_function(lib, "apply", &apply2), "reads function constant 'MODE'");
  mps_shim_take_pending_error();
  short two = 2, three = 3;
  float half_gain = 0.5f;
  mps_shim_function_constant by_index[1] = {{NULL, 1200, MPS_SHIM_DATA_TYPE_SHORT, &two, sizeof two}};
  OK(mps_shim_get_kernel_function_with_constants(lib, "apply", by_index, 1, &apply2));
  OK(mps_shim_get_kernel_function_with_constants(lib, "apply", by_index, 1, &apply2_again));
  CHECK(apply2 == apply2_again); /* the same values: the same function */
  mps_shim_function_constant by_name[2] = {{"MODE", 0, MPS_SHIM_DATA_TYPE_NONE, &three, sizeof three},
                                           {"GAIN", 0, MPS_SHIM_DATA_TYPE_FLOAT, &half_gain, sizeof half_gain}};
  OK(mps_shim_get_kernel_function_with_constants(lib, "apply", by_name, 2, &apply3));
  CHECK(apply3 != apply2);
  CONTAINS(mps_shim_kernel_function_describe(apply3), "\"constants\": {\"MODE\": \"3\", \"GAIN\": \"0.5\"}");
  float got[8];
  run_out(apply2, got, 8);
  for (int i = 0; i < 8; ++i) CHECKF(got[i] == 2.0f * i, "apply MODE=2: got[%d] = %g", i, got[i]);
  run_out(apply3, got, 8);
  for (int i = 0; i < 8; ++i) CHECKF(got[i] == 1.5f * i, "apply MODE=3 GAIN=0.5: got[%d] = %g", i, got[i]);

  int wrong = 2;
  mps_shim_function_constant bad_type[1] = {{"MODE", 0, MPS_SHIM_DATA_TYPE_INT, &wrong, sizeof wrong}};
  FAILS(mps_shim_get_kernel_function_with_constants(lib, "apply", bad_type, 1, &apply3), "declared short");
  CHECK_EQ(mps_shim_last_error_kind(), MPS_SHIM_ERROR_ARGUMENT);
  mps_shim_function_constant unknown[1] = {{NULL, 7, MPS_SHIM_DATA_TYPE_NONE, &two, sizeof two}};
  FAILS(mps_shim_get_kernel_function_with_constants(lib, "apply", unknown, 1, &apply3),
        "declares no function constant index 7");
  FAILS(mps_shim_get_kernel_function_with_constants(lib, "apply", NULL, 1, &apply3), "null constants");
  mps_shim_take_pending_error();

  OK(aoti_torch_mps_get_kernel_function(lib, "iota", &iota));
  CONTAINS(mps_shim_library_describe(lib), "\"compiled\": true");
  run_out(iota, got, 4);
  for (int i = 0; i < 4; ++i) CHECK_EQ(got[i], i);
  OK(mps_shim_compile_all(lib));
  FAILS(mps_shim_compile_all(NULL), "null shader library handle");
  mps_shim_take_pending_error();
  OK(aoti_torch_mps_delete_shader_library(lib));

  options.compile = 7;
  FAILS(mps_shim_create_shader_library_with_options(kConstantsSource, &options, &lib), "unknown compile mode 7");
  options.compile = MPS_SHIM_COMPILE_EAGER;
  OK(mps_shim_create_shader_library_with_options(kConstantsSource, &options, &lib));
  CHECK(strstr(mps_shim_library_describe(lib), "\"compiled\": false") == NULL);
  OK(aoti_torch_mps_delete_shader_library(lib));
  OK(mps_shim_create_shader_library_with_options(kConstantsSource, NULL, &lib)); /* the defaults */
  OK(aoti_torch_mps_delete_shader_library(lib));
  mps_shim_take_pending_error();
}

/* -------------------------------------------------------------------- main */

typedef struct {
  const char* name;
  void (*run)(void);
} section;

static const section kSections[] = {
    {"misc", section_misc},       {"kernels", section_kernels}, {"dispatch", section_dispatch},
    {"errors", section_errors},   {"blocks", section_blocks},   {"tensors", section_tensors},
    {"memory", section_memory},   {"threads", section_threads}, {"group_limits", section_group_limits},
    {"binding", section_binding}, {"constants", section_constants},
};

int main(int argc, char** argv) {
  const char* want = argc > 1 ? argv[1] : "all";
  int ran = 0;
  setup();
  for (size_t i = 0; i < sizeof kSections / sizeof kSections[0]; ++i) {
    if (strcmp(want, "all") != 0 && strcmp(want, kSections[i].name) != 0) continue;
    g_section = kSections[i].name;
    kSections[i].run();
    printf("abi_test: section %s passed\n", kSections[i].name);
    fflush(stdout);
    ++ran;
  }
  if (ran == 0) {
    fprintf(stderr, "abi_test: no section named '%s'\n", want);
    return 2;
  }
  g_section = "teardown";
  OK(aoti_torch_mps_delete_shader_library(g_lib));
  return 0;
}
