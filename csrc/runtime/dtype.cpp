#include "runtime/dtype.h"

#include <cstring>

#include "util/error.h"

namespace mps_shim {

size_t element_size(int32_t code) {
  switch (static_cast<DType>(code)) {
    case DType::UInt8: case DType::Int8: case DType::Bool: return 1;
    case DType::Int16: case DType::UInt16: case DType::Float16: case DType::BFloat16: return 2;
    case DType::Int32: case DType::UInt32: case DType::Float32: return 4;
    case DType::Int64: case DType::UInt64: case DType::Float64: case DType::ComplexFloat: return 8;
    case DType::ComplexDouble: return 16;
  }
  return 0;
}

const char* dtype_name(int32_t code) {
  switch (static_cast<DType>(code)) {
    case DType::UInt8: return "uint8";
    case DType::Int8: return "int8";
    case DType::Int16: return "int16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Float16: return "float16";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::ComplexFloat: return "complex64";
    case DType::ComplexDouble: return "complex128";
    case DType::Bool: return "bool";
    case DType::BFloat16: return "bfloat16";
    case DType::UInt16: return "uint16";
    case DType::UInt32: return "uint32";
    case DType::UInt64: return "uint64";
  }
  return "unknown";
}

DType checked_dtype(int32_t code) {
  MPS_SHIM_CHECK(element_size(code) != 0, "unsupported dtype code ", code,
                 " (supported: uint8 0, int8 1, int16 2, int32 3, int64 4, float16 5, float32 6, "
                 "float64 7, complex64 9, complex128 10, bool 11, bfloat16 15, uint16 27, uint32 28, uint64 29)");
  return static_cast<DType>(code);
}

DeviceType checked_device(int32_t code) {
  MPS_SHIM_CHECK(code == int32_t(DeviceType::CPU) || code == int32_t(DeviceType::MPS),
                 "unsupported device type ", code, " (supported: cpu 0, mps 13)");
  return static_cast<DeviceType>(code);
}

static uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

uint16_t float_to_half_bits(float f) {
  const uint32_t u = bits_of(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t mag = u & 0x7fffffffu;
  if (mag >= 0x7f800000u)  // inf or NaN (NaN stays quiet)
    return uint16_t(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u | ((mag >> 13) & 0x3ffu) : 0u));
  if (mag >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds past 65504
  if (mag < 0x38800000u) {  // half subnormal or zero: let the FPU round by adding 0.5
    const float scaled = float_of(mag) + 0.5f;
    return uint16_t(sign | (bits_of(scaled) - 0x3f000000u));
  }
  const uint32_t odd = (mag >> 13) & 1u;
  return uint16_t(sign | ((mag - 0x38000000u + 0xfffu + odd) >> 13));
}

float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {  // subnormal: value is man * 2^-24
    const float v = float(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t float_to_bfloat_bits(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float bfloat_bits_to_float(uint16_t b) { return float_of(uint32_t(b) << 16); }

}  // namespace mps_shim
