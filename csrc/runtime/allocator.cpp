#include "runtime/allocator.h"

#include <unistd.h>

#include <mutex>
#include <unordered_map>

#include "runtime/backend.h"
#include "util/error.h"

namespace mps_shim {

namespace {
std::mutex registry_mutex;
std::unordered_map<const void*, size_t>& registry() {
  static auto* live = new std::unordered_map<const void*, size_t>();  // outlives static destructors
  return *live;
}
}  // namespace

size_t max_allocation_size() {
  static const size_t limit = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGESIZE));
  return limit;
}

void* device_malloc(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  MPS_SHIM_CHECK_AS(OutOfMemoryError, nbytes <= max_allocation_size(), "cannot allocate ", nbytes,
                 " bytes: more than the device's memory (", max_allocation_size(), " bytes)");
  void* ptr = backend().allocate(nbytes);
  MPS_SHIM_CHECK_AS(OutOfMemoryError, ptr != nullptr, "out of device memory allocating ", nbytes, " bytes");
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry()[ptr] = nbytes;
  return ptr;
}

void device_free(void* ptr) {
  if (ptr == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry().find(ptr);
    MPS_SHIM_CHECK_AS(InvalidHandleError, it != registry().end(), "pointer ", ptr,
                   " was not allocated by aoti_torch_mps_malloc, or was already freed");
    registry().erase(it);
  }
  backend().deallocate(ptr);
}

Allocation find_allocation(const void* base, const char* what) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry().find(base);
  MPS_SHIM_CHECK_AS(InvalidHandleError, it != registry().end(), what, " ", base,
                 " is not a live buffer from aoti_torch_mps_malloc");
  return {static_cast<char*>(const_cast<void*>(base)), it->second};
}

Allocation containing_allocation(const void* ptr) {
  const char* p = static_cast<const char*>(ptr);
  std::lock_guard<std::mutex> lock(registry_mutex);
  for (const auto& [base, size] : registry()) {
    const char* b = static_cast<const char*>(base);
    if (p >= b && p < b + size) return {const_cast<char*>(b), size};
  }
  return {nullptr, 0};
}

}  // namespace mps_shim
