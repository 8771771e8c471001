// The serial queue that run_command_block encodes on. One recursive mutex
// serialises encoding across threads (nested blocks on one thread are fine);
// a thread-local record makes a block fail once any call inside it failed,
// because generated code ignores return codes.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace mps_shim {

class CommandQueue {
 public:
  static std::recursive_mutex& mutex();
  // Call within a block: true once any call in the current block failed.
  static bool block_failed();
  static const std::string& block_error();
  // Records a failure (no-op outside a block).
  static void note_failure(const std::string& message);
  // Advances when an outermost command block ends: encoding state set up in a
  // block (start_encoding, bindings) does not carry into later ones.
  static uint64_t epoch();

  // RAII scope of one run_command_block; finish() throws if the block failed.
  class Block {
   public:
    Block();
    ~Block();
    void finish();

   private:
    std::lock_guard<std::recursive_mutex> lock_;
    bool outermost_;
  };
};

}  // namespace mps_shim
