// randint_low_out and the process random stream behind it.
//
// The stream is counter-based: each call takes the next `numel` counters of
// (seed, offset), so results depend only on the seed and the calls made since
// it was set, never on threads or backends. Like torch's default generators,
// the seed starts at a fixed value (67280421310721) in every process;
// mps_shim_manual_seed() sets it and restarts the counter. The numbers are
// not torch's own stream: the same seed gives different values than torch.
#include <limits>
#include <mutex>

#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

constexpr uint64_t kDefaultSeed = 67280421310721ULL;

struct Stream {
  std::mutex mutex;
  uint64_t seed = kDefaultSeed;
  uint64_t offset = 0;
};

Stream& stream() {
  static Stream* s = new Stream();
  return *s;
}

// The largest integer out's dtype holds exactly (floating types: 2^digits).
bool representable(DType t, int64_t v) {
  switch (t) {
    case DType::Bool: return v >= 0 && v <= 1;
    case DType::UInt8: return v >= 0 && v <= 255;
    case DType::Int8: return v >= -128 && v <= 127;
    case DType::Int16: return v >= -32768 && v <= 32767;
    case DType::UInt16: return v >= 0 && v <= 65535;
    case DType::Int32: return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    case DType::UInt32: return v >= 0 && v <= int64_t(std::numeric_limits<uint32_t>::max());
    case DType::UInt64: return v >= 0;
    case DType::Float16: return v >= -(int64_t(1) << 11) && v <= (int64_t(1) << 11);
    case DType::BFloat16: return v >= -(int64_t(1) << 8) && v <= (int64_t(1) << 8);
    case DType::Float32: return v >= -(int64_t(1) << 24) && v <= (int64_t(1) << 24);
    case DType::Float64: return v >= -(int64_t(1) << 53) && v <= (int64_t(1) << 53);
    default: return true;
  }
}

}  // namespace

void manual_seed(uint64_t seed) {
  Stream& s = stream();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.seed = seed;
  s.offset = 0;
}

void randint_low_out(Tensor& out, int64_t low, int64_t high, const std::vector<int64_t>& size) {
  const char* op = "randint";
  for (int64_t s : size) MPS_SHIM_OP_CHECK(s >= 0, op, "negative dimension in size ", shape_str(size));
  MPS_SHIM_OP_CHECK(low < high, op, "random_ expects 'from' to be less than 'to', but got from=", low,
                    " >= to=", high);
  MPS_SHIM_OP_CHECK(representable(out.dtype(), low) && representable(out.dtype(), high - 1), op, "range [", low,
                    ", ", high, ") does not fit out's dtype ", dtype_name(int32_t(out.dtype())));
  resize_out(op, out, "out", size, out.dtype());
  const int64_t n = out.numel();
  if (n == 0) return;
  uint64_t seed, offset;
  {
    Stream& s = stream();
    std::lock_guard<std::mutex> lock(s.mutex);
    seed = s.seed;
    offset = s.offset;
    s.offset += uint64_t(n);
  }
  op_backend().randint(out, low, high, seed, offset);
}

}  // namespace mps_shim::ops
