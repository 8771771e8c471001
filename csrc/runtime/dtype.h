// PyTorch's c10::ScalarType codes for the dtypes this runtime stores.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mps_shim {

enum class DType : int32_t {
  UInt8 = 0, Int8 = 1, Int16 = 2, Int32 = 3, Int64 = 4, Float16 = 5, Float32 = 6, Float64 = 7,
  ComplexFloat = 9, ComplexDouble = 10,  // stored and bound (Metal reads float2 / double2); ops take none
  Bool = 11, BFloat16 = 15, UInt16 = 27, UInt32 = 28, UInt64 = 29,
};

enum class DeviceType : int32_t { CPU = 0, CUDA = 1, MPS = 13 };

constexpr int32_t kLayoutStrided = 0;

// 0 for a code this runtime does not store.
size_t element_size(int32_t code);
const char* dtype_name(int32_t code);
inline bool is_complex(DType t) { return t == DType::ComplexFloat || t == DType::ComplexDouble; }
// Throws mps_shim::Error naming the code when it is not a stored dtype.
DType checked_dtype(int32_t code);
DeviceType checked_device(int32_t code);

// float <-> binary16 / bfloat16 with round-to-nearest-even, as Metal converts.
uint16_t float_to_half_bits(float f);
float half_bits_to_float(uint16_t h);
uint16_t float_to_bfloat_bits(float f);
float bfloat_bits_to_float(uint16_t b);

}  // namespace mps_shim
