// AtenTensorHandle <-> runtime Tensor, for the ABI files: a handle is a
// registered Tensor*; publish() registers a new one the caller must delete.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "abi/guard.h"

namespace mps_shim::abi {

inline Tensor& tensor(AtenTensorHandle h) { return *tensors().get(h); }

// Generated code passes an optional tensor as a pointer to a handle; null is None.
inline std::optional<Tensor> optional_tensor(const AtenTensorHandle* h) {
  if (h == nullptr) return std::nullopt;
  return tensor(*h);
}

inline AtenTensorHandle publish(Tensor t) {
  auto* p = new Tensor(std::move(t));
  tensors().add(p);
  return reinterpret_cast<AtenTensorHandle>(p);
}

// Checks the result slot, then publishes `t` into it.
inline void publish_to(AtenTensorHandle* ret, const char* name, Tensor t) {
  check_out(ret, name);
  *ret = publish(std::move(t));
}

inline void publish_pair(AtenTensorHandle* ret0, AtenTensorHandle* ret1, std::pair<Tensor, Tensor> ts) {
  check_out(ret0, "ret0");
  check_out(ret1, "ret1");
  *ret0 = publish(std::move(ts.first));
  *ret1 = publish(std::move(ts.second));
}

// A list argument (`const T* name, int64_t name_len_`); null only when empty.
template <typename T>
std::vector<T> int_list(const T* values, int64_t len, const char* name) {
  MPS_SHIM_CHECK(len >= 0 && (len == 0 || values != nullptr), "invalid list argument '", name, "'");
  return std::vector<T>(values, values + len);
}

// A list of optional tensors (`const AtenTensorHandle** name, int64_t name_len_`): null entries are None.
inline std::vector<std::optional<Tensor>> optional_tensors(const AtenTensorHandle** handles, int64_t len) {
  MPS_SHIM_CHECK(len >= 0 && (len == 0 || handles != nullptr), "invalid tensor list");
  std::vector<std::optional<Tensor>> out;
  for (int64_t i = 0; i < len; ++i) out.push_back(optional_tensor(handles[i]));
  return out;
}

// A list of tensors (`const AtenTensorHandle* name, int64_t name_len_`).
inline std::vector<Tensor> tensor_list(const AtenTensorHandle* handles, int64_t len) {
  MPS_SHIM_CHECK(len >= 0 && (len == 0 || handles != nullptr), "invalid tensor list");
  std::vector<Tensor> out;
  for (int64_t i = 0; i < len; ++i) out.push_back(tensor(handles[i]));
  return out;
}

}  // namespace mps_shim::abi
