// aoti_host.cpp - a C++ host for a real AOTInductor model.so, as docs/loading_model_so.md describes:
// dlopen libmps_shim.so RTLD_GLOBAL, then the model, create a container on "mps", run it once on one
// float32 input filled with 0.5, and report what happened, without judging it (the test does).
//
// Build: c++ -std=c++17 -I<include_dir> aoti_host.cpp -ldl   (no -lmps_shim: everything through dlsym)
// Usage: aoti_host <libmps_shim.so> <model.so> <dim>...
// Prints, one per line: "run <rc>", "synchronize <rc>", "kind <code>", "error <message>", and for a
// successful run "output <n> <first value>". Exits 2 when the host itself cannot proceed.
#include "mps_shim.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

// The container API a model.so exports (torch/csrc/inductor/aoti_runtime/interface.h).
using Container = void*;
using CreateFn = int32_t (*)(Container*, size_t, const char*, const char*);
using RunFn = int32_t (*)(Container, AtenTensorHandle*, size_t, AtenTensorHandle*, size_t, void*, void*);
using CountFn = int32_t (*)(Container, size_t*);
using DeleteFn = int32_t (*)(Container);

void* lookup(void* lib, const char* name) {
  void* p = dlsym(lib, name);
  if (p == nullptr) {
    std::fprintf(stderr, "aoti_host: dlsym(%s): %s\n", name, dlerror());
    std::exit(2);
  }
  return p;
}

template <typename F>
F fn(void* lib, const char* name) {
  return reinterpret_cast<F>(lookup(lib, name));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: aoti_host <libmps_shim.so> <model.so> <dim>...\n");
    return 2;
  }
  // RTLD_GLOBAL: the model's undefined aoti_torch_* symbols resolve only against global libraries.
  void* shim = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
  if (shim == nullptr) {
    std::fprintf(stderr, "aoti_host: dlopen(%s): %s\n", argv[1], dlerror());
    return 2;
  }
  void* model = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  if (model == nullptr) {
    std::fprintf(stderr, "aoti_host: dlopen(%s): %s\n", argv[2], dlerror());
    return 2;
  }
  auto from_blob = fn<decltype(&aoti_torch_create_tensor_from_blob)>(shim, "aoti_torch_create_tensor_from_blob");
  auto delete_tensor = fn<decltype(&aoti_torch_delete_tensor_object)>(shim, "aoti_torch_delete_tensor_object");
  auto get_numel = fn<decltype(&aoti_torch_get_numel)>(shim, "aoti_torch_get_numel");
  auto get_data = fn<decltype(&aoti_torch_get_data_ptr)>(shim, "aoti_torch_get_data_ptr");
  auto synchronize = fn<decltype(&mps_shim_synchronize)>(shim, "mps_shim_synchronize");
  auto last_error = fn<decltype(&mps_shim_last_error)>(shim, "mps_shim_last_error");
  auto last_error_kind = fn<decltype(&mps_shim_last_error_kind)>(shim, "mps_shim_last_error_kind");
  auto create = fn<CreateFn>(model, "AOTInductorModelContainerCreateWithDevice");
  auto run = fn<RunFn>(model, "AOTInductorModelContainerRun");
  auto num_outputs = fn<CountFn>(model, "AOTInductorModelContainerGetNumOutputs");
  auto destroy = fn<DeleteFn>(model, "AOTInductorModelContainerDelete");

  Container c = nullptr;
  if (create(&c, 1, "mps", nullptr) != 0) {
    std::fprintf(stderr, "aoti_host: creating the container failed\n");
    return 2;
  }
  size_t n_out = 0;
  num_outputs(c, &n_out);

  std::vector<int64_t> sizes, strides(argc - 3);
  for (int i = 3; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
  int64_t numel = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    strides[i] = numel;
    numel *= sizes[i];
  }
  std::vector<float> x(numel, 0.5f);
  AtenTensorHandle in = nullptr;
  if (from_blob(x.data(), int64_t(sizes.size()), sizes.data(), strides.data(), 0, 6 /* float32 */, 13 /* mps */, 0,
                &in) != 0) {
    std::fprintf(stderr, "aoti_host: create_tensor_from_blob: %s\n", last_error());
    return 2;
  }
  std::vector<AtenTensorHandle> out(n_out, nullptr);
  const int32_t rc = run(c, &in, 1, out.data(), n_out, nullptr, nullptr);  // steals `in`
  std::printf("run %d\n", rc);
  const int32_t sync = synchronize();
  std::printf("synchronize %d\nkind %d\nerror %s\n", sync, sync ? last_error_kind() : 0, sync ? last_error() : "");
  if (rc == 0 && n_out > 0) {
    int64_t n = 0;
    void* data = nullptr;
    get_numel(out[0], &n);
    get_data(out[0], &data);
    std::printf("output %lld %g\n", static_cast<long long>(n), n > 0 ? static_cast<double>(*(float*)data) : 0.0);
    for (AtenTensorHandle h : out) delete_tensor(h);
  }
  destroy(c);
  return 0;
}
