// Counter-based uniform integers: element i of a call gets a 64-bit hash of
// (seed, offset + i), mapped onto [low, high) by a 128-bit multiply (bias
// below range / 2^64).
#include "backends/host/ops/elements.h"
#include "backends/host/ops/host_ops.h"

namespace mps_shim::host {

namespace {

// Two rounds of the splitmix64 finaliser over the seed-keyed counter.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t draw(uint64_t seed, uint64_t counter) {
  return mix(mix(seed ^ 0x9e3779b97f4a7c15ULL) + counter * 0x9e3779b97f4a7c15ULL);
}

}  // namespace

void HostOps::randint(const Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) {
  const uint64_t range = uint64_t(high) - uint64_t(low);
  const bool direct = out.dtype() == DType::Int64 && out.is_contiguous();
  Tensor values = direct ? out : empty_tensor(out.sizes(), DType::Int64, DeviceType::CPU);
  int64_t* p = reinterpret_cast<int64_t*>(values.data());
  parallel_range(values.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const unsigned __int128 wide = static_cast<unsigned __int128>(draw(seed, offset + uint64_t(i))) * range;
      p[i] = int64_t(uint64_t(low) + uint64_t(wide >> 64));
    }
  });
  if (!direct) copy_into(out, values);
}

}  // namespace mps_shim::host
