#include "runtime/error_buffer.h"

#include <cstdint>
#include <cstring>
#include <mutex>

#include "runtime/backend.h"
#include "util/error.h"

namespace mps_shim {

namespace {

// c10/metal/error.h's layout: a 4-byte atomic count, then 30 messages.
constexpr unsigned kMessages = 30;
struct ErrorMessage {
  char file[128];
  char func[128];
  char message[250];
  uint32_t line;
};
struct ErrorMessages {
  uint32_t count;
  ErrorMessage msg[kMessages];
};
static_assert(sizeof(ErrorMessage) == 512 && sizeof(ErrorMessages) == 4 + 30 * 512,
              "the layout of c10::metal::ErrorMessages");

std::string bounded(const char* s, size_t n) { return std::string(s, strnlen(s, n)); }

std::mutex& mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

ErrorBuffer& ErrorBuffer::instance() {
  static auto* buffer = new ErrorBuffer;  // process lifetime: kernels may hold its address
  return *buffer;
}

void* ErrorBuffer::data() {
  std::lock_guard<std::mutex> lock(mutex());
  if (!data_) {
    data_ = backend().allocate(sizeof(ErrorMessages));
    if (!data_) throw OutOfMemoryError("no memory for the kernel error buffer");
    if (backend().host_addressable()) {
      std::memset(data_, 0, sizeof(ErrorMessages));
    } else {
      static const ErrorMessages zeros{};
      backend().copy(data_, &zeros, sizeof zeros, CopyKind::HostToDevice);
    }
  }
  return data_;
}

std::optional<std::string> ErrorBuffer::take() {
  std::lock_guard<std::mutex> lock(mutex());
  if (!data_) return std::nullopt;
  auto* messages = static_cast<ErrorMessages*>(data_);
  uint32_t count = 0;
  ErrorMessage first;
  if (backend().host_addressable()) {
    count = __atomic_exchange_n(&messages->count, 0u, __ATOMIC_ACQ_REL);
    if (count == 0) return std::nullopt;
    first = messages->msg[0];
    std::memset(messages->msg, 0, sizeof messages->msg);
  } else {  // a GPU's memory: these copies wait for the kernels that may report
    backend().copy(&count, &messages->count, sizeof count, CopyKind::DeviceToHost);
    if (count == 0) return std::nullopt;
    backend().copy(&first, &messages->msg[0], sizeof first, CopyKind::DeviceToHost);
    static const ErrorMessages zeros{};
    backend().copy(messages, &zeros, sizeof zeros, CopyKind::HostToDevice);
  }
  const ErrorMessage& m = first;
  std::string out = concat(bounded(m.message, sizeof m.message), " (", bounded(m.file, sizeof m.file), ":", m.line,
                           ", in ", bounded(m.func, sizeof m.func), ")");
  if (count > 1) out += concat("; ", count - 1, " more report", count > 2 ? "s" : "");
  return out;
}

}  // namespace mps_shim
