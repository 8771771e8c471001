// AtenTensorHandle <-> runtime Tensor, for the ABI files: a handle is a
// registered Tensor*; publish() registers a new one the caller must delete.
#pragma once

#include <optional>

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

}  // namespace mps_shim::abi
