// Live-handle registries: every ABI entry point checks that a handle is one this
// runtime handed out and has not deleted, instead of dereferencing garbage.
#pragma once

#include <mutex>
#include <unordered_set>

#include "util/error.h"

namespace mps_shim {

template <typename T>
class HandleRegistry {
 public:
  explicit HandleRegistry(const char* kind) : kind_(kind) {}
  void add(T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.insert(p);
  }
  bool remove(T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.erase(p) != 0;
  }
  // The object behind `handle`; throws when it is null, unknown or deleted.
  T* get(const void* handle) {
    MPS_SHIM_CHECK_AS(InvalidHandleError, handle != nullptr, "null ", kind_, " handle");
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(static_cast<T*>(const_cast<void*>(handle)));
    MPS_SHIM_CHECK_AS(InvalidHandleError, it != live_.end(), "invalid ", kind_, " handle ", handle, " (deleted, or never created)");
    return *it;
  }

 private:
  const char* kind_;
  std::mutex mutex_;
  std::unordered_set<T*> live_;
};

}  // namespace mps_shim
