/* Times the dispatch round trip through the C ABI: one run_command_block whose
 * callback does start_encoding + 2 set_arg calls + a dispatch of 1 thread.
 * Where device memory is a GPU's (MPS_SHIM_BACKEND=cuda) the output is a device
 * tensor, dispatches are asynchronous, and the time includes one final
 * mps_shim_synchronize per round.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mps_shim.h"

static const char* SOURCE =
    "kernel void touch(device int* out, constant long& v, uint i [[thread_position_in_grid]]) {\n"
    "  out[i] = int(v);\n"
    "}\n";

typedef struct {
  AtenTensorHandle out;
  int64_t value;
} Args;

static void encode(AOTIMetalKernelFunctionHandle k, void* user_data) {
  Args* a = (Args*)user_data;
  aoti_torch_mps_start_encoding(k);
  aoti_torch_mps_set_arg_tensor(k, 0, a->out);
  aoti_torch_mps_set_arg_int(k, 1, a->value);
  aoti_torch_mps_dispatch_single(k, 1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? atol(argv[1]) : 200000;
  AOTIMetalShaderLibraryHandle lib;
  AOTIMetalKernelFunctionHandle fn;
  if (aoti_torch_mps_create_shader_library(SOURCE, &lib) || aoti_torch_mps_get_kernel_function(lib, "touch", &fn)) {
    fprintf(stderr, "setup failed: %s\n", mps_shim_last_error());
    return 1;
  }
  int32_t storage = 0;
  int64_t size = 1, stride = 1;
  Args args = {NULL, 0};
  const int on_gpu = mps_shim_device_memory_is_host() == 0;
  void* device_storage = NULL;
  if (on_gpu) {
    aoti_torch_empty_strided(1, &size, &stride, aoti_torch_dtype_int32(), aoti_torch_device_type_mps(), 0, &args.out);
    aoti_torch_get_data_ptr(args.out, &device_storage);
  } else {
    aoti_torch_create_tensor_from_blob(&storage, 1, &size, NULL, 0, aoti_torch_dtype_int32(),
                                       aoti_torch_device_type_mps(), 0, &args.out);
  }
  double best = 1e9;
  for (int round = 0; round < 5; ++round) {
    const double t0 = now();
    for (long i = 0; i < iterations; ++i) {
      args.value = i;
      if (aoti_torch_mps_run_command_block(fn, encode, &args)) {
        fprintf(stderr, "dispatch failed: %s\n", mps_shim_last_error());
        return 1;
      }
    }
    if (mps_shim_synchronize()) {
      fprintf(stderr, "synchronize failed: %s\n", mps_shim_last_error());
      return 1;
    }
    const double per = (now() - t0) / (double)iterations;
    if (per < best) best = per;
  }
  if (on_gpu) mps_shim_copy_from_device(&storage, device_storage, sizeof storage);
  if (storage != (int32_t)(iterations - 1)) {
    fprintf(stderr, "kernel did not run: %d\n", storage);
    return 1;
  }
  printf("dispatch round trip: %.3f us (best of 5 x %ld%s)\n", best * 1e6, iterations,
         on_gpu ? ", asynchronous on the GPU" : "");
  aoti_torch_delete_tensor_object(args.out);
  aoti_torch_mps_delete_shader_library(lib);
  return 0;
}
