/*
 * model_driver.c - loads generated_model.cpp's shared object the way an AOTInductor
 * model runner does and checks what it computes.
 *
 * Build: cc -std=c99 -Wall -Werror -I<include_dir> model_driver.c -L<lib dir> -lmps_shim
 *           -Wl,-rpath,<lib dir> -ldl
 * Usage: model_driver <path of model.so>
 *
 * The driver links libmps_shim; the model does not, and dlopen(RTLD_NOW) must
 * resolve the model's aoti_torch_* references to this process's copy.
 * Exits 0 when every check passes, 1 with a message on the first failure.
 */
#define _POSIX_C_SOURCE 200809L
#include "mps_shim.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail_at(int line, const char* fmt, ...) {
  va_list ap;
  fflush(stdout);
  fprintf(stderr, "model_driver.c:%d: CHECK FAILED: ", line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n    mps_shim_last_error(): \"%s\"\n", mps_shim_last_error());
  fflush(stderr);
  _Exit(1);
}

#define CHECK(cond)                              \
  do {                                           \
    if (!(cond)) fail_at(__LINE__, "%s", #cond); \
  } while (0)
#define OK(call)                                                                                    \
  do {                                                                                              \
    AOTITorchError rc_ = (call);                                                                    \
    if (rc_ != AOTI_TORCH_SUCCESS) fail_at(__LINE__, "%s returned %d, expected 0", #call, (int)rc_); \
  } while (0)

typedef AOTITorchError (*model_run_fn)(AtenTensorHandle input, AtenTensorHandle* output);
typedef int (*model_library_creations_fn)(void);
typedef AOTIMetalShaderLibraryHandle (*model_library_fn)(int index);
typedef AOTITorchError (*model_run_throwing_fn)(AtenTensorHandle input);
typedef AOTITorchError (*model_run_empty_function_fn)(void);
typedef int (*model_check_throws_fn)(void);

static void* symbol(void* lib, const char* name) {
  void* p = dlsym(lib, name);
  if (p == NULL) fail_at(__LINE__, "dlsym(%s): %s", name, dlerror());
  return p;
}

/* The model's constants, as serialized in generated_model.cpp. */
static const float kW[4] = {1.0f, -2.0f, 0.5f, 3.0f};
static const float kB[4] = {0.25f, 1.0f, -1.0f, 2.0f};

enum { kMaxN = 64 };

static AtenTensorHandle make_input(int64_t n, const float* values) {
  const int64_t sizes[1] = {n}, strides[1] = {1};
  AtenTensorHandle t = NULL, host = NULL;
  OK(aoti_torch_empty_strided(1, sizes, strides, aoti_torch_dtype_float32(), aoti_torch_device_type_mps(), 0, &t));
  OK(aoti_torch_create_tensor_from_blob((void*)values, 1, sizes, strides, 0, aoti_torch_dtype_float32(),
                                        aoti_torch_device_type_cpu(), 0, &host));
  OK(aoti_torch_copy_(t, host, 0));
  OK(aoti_torch_delete_tensor_object(host));
  return t;
}

/* Runs the model on x[0..n) and checks its output against the same math done here. */
static void run_and_check(model_run_fn run, int64_t n, const float* x) {
  float buf0[kMaxN], want[kMaxN], got[kMaxN];
  const int64_t sizes[1] = {n}, strides[1] = {1};
  AtenTensorHandle input = make_input(n, x), output = NULL, host = NULL;
  int64_t dim = 0, size = 0;
  int32_t dtype = -1, device = -1;
  for (int64_t i = 0; i < n; ++i) buf0[i] = x[i] * kW[i % 4] + kB[i % 4];
  for (int64_t i = 0; i < n; ++i) want[i] = 2.0f * buf0[i] - buf0[n - 1 - i];

  OK(run(input, &output));
  CHECK(output != NULL);
  OK(aoti_torch_get_dim(output, &dim));
  OK(aoti_torch_get_size(output, 0, &size));
  OK(aoti_torch_get_dtype(output, &dtype));
  OK(aoti_torch_get_device_type(output, &device));
  CHECK(dim == 1 && size == n);
  CHECK(dtype == aoti_torch_dtype_float32() && device == aoti_torch_device_type_mps());
  OK(aoti_torch_create_tensor_from_blob(got, 1, sizes, strides, 0, aoti_torch_dtype_float32(),
                                        aoti_torch_device_type_cpu(), 0, &host));
  OK(aoti_torch_copy_(host, output, 0));
  for (int64_t i = 0; i < n; ++i)
    if (got[i] != want[i])
      fail_at(__LINE__, "n=%lld: out[%lld] = %g, expected %g", (long long)n, (long long)i, got[i], want[i]);
  OK(aoti_torch_delete_tensor_object(host));
  OK(aoti_torch_delete_tensor_object(output));
  OK(aoti_torch_delete_tensor_object(input));
}

int main(int argc, char** argv) {
  void* model;
  model_run_fn run;
  model_library_creations_fn creations;
  model_library_fn library;
  model_run_throwing_fn run_throwing;
  model_run_empty_function_fn run_empty;
  model_check_throws_fn check_throws;
  AOTIMetalShaderLibraryHandle lib0, lib1;
  float x[kMaxN];

  if (argc != 2) {
    fprintf(stderr, "usage: model_driver <model.so>\n");
    return 2;
  }
  model = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (model == NULL) fail_at(__LINE__, "dlopen(%s): %s", argv[1], dlerror());
  /* POSIX's way to turn dlsym's void* into function pointers */
  *(void**)&run = symbol(model, "model_run");
  *(void**)&creations = symbol(model, "model_library_creations");
  *(void**)&library = symbol(model, "model_library");
  *(void**)&run_throwing = symbol(model, "model_run_throwing");
  *(void**)&run_empty = symbol(model, "model_run_empty_function");
  *(void**)&check_throws = symbol(model, "model_check_throws");

  CHECK(creations() == 0); /* libraries are created lazily, on the first run */

  for (int i = 0; i < 37; ++i) x[i] = (float)(i - 10);
  run_and_check(run, 37, x);
  CHECK(creations() == 2);
  lib0 = library(0);
  lib1 = library(1);
  CHECK(lib0 != NULL && lib1 != NULL && lib0 != lib1);
  CHECK(mps_shim_library_describe(lib0) != NULL);
  CHECK(strstr(mps_shim_library_describe(lib0), "generated_kernel") != NULL);

  /* a second run, with another size: the function-local statics are not rebuilt */
  for (int i = 0; i < 50; ++i) x[i] = (float)i * 1.5f - 20.0f;
  run_and_check(run, 50, x);
  CHECK(creations() == 2);
  CHECK(library(0) == lib0 && library(1) == lib1);

  /* an exception thrown inside the std::function fails the block with its message */
  {
    AtenTensorHandle input = make_input(4, x);
    AOTITorchError rc = run_throwing(input);
    const char* msg = mps_shim_last_error();
    if (rc != AOTI_TORCH_FAILURE) fail_at(__LINE__, "throwing lambda: run_command_block returned %d", (int)rc);
    if (strstr(msg, "boom from the generated lambda") == NULL)
      fail_at(__LINE__, "throwing lambda: message \"%s\" lacks the exception's text", msg);
    OK(aoti_torch_delete_tensor_object(input));
  }
  {
    AOTITorchError rc = run_empty();
    if (rc != AOTI_TORCH_FAILURE) fail_at(__LINE__, "empty std::function: run_command_block returned %d", (int)rc);
    if (strstr(mps_shim_last_error(), "std::function") == NULL)
      fail_at(__LINE__, "empty std::function: message lacks \"std::function\"");
  }
  /* aoti_torch_check(false) throws into the C++ caller, with the message */
  CHECK(check_throws() == 1);
  /* and the model still runs afterwards */
  run_and_check(run, 37, x);
  CHECK(creations() == 2);

  /* unloading the model runs its static destructors: the unique_ptr deleters
   * delete both libraries, so their handles are no longer valid */
  CHECK(dlclose(model) == 0);
  {
    AOTIMetalKernelFunctionHandle k = NULL;
    AOTITorchError rc = aoti_torch_mps_get_kernel_function(lib0, "generated_kernel", &k);
    if (rc != AOTI_TORCH_FAILURE || strstr(mps_shim_last_error(), "invalid shader library handle") == NULL)
      fail_at(__LINE__, "library 0 still alive after dlclose (rc %d)", (int)rc);
    CHECK(mps_shim_library_describe(lib1) == NULL);
  }
  printf("model_driver: all checks passed\n");
  return 0;
}
