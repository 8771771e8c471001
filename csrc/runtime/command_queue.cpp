#include "runtime/command_queue.h"

#include "util/error.h"

namespace mps_shim {

namespace {
struct BlockState {
  int depth = 0;
  bool failed = false;
  std::string error;
};
thread_local BlockState state;
uint64_t queue_epoch = 0;  // guarded by the queue mutex
}  // namespace

uint64_t CommandQueue::epoch() { return queue_epoch; }

std::recursive_mutex& CommandQueue::mutex() {
  static auto* m = new std::recursive_mutex();
  return *m;
}

bool CommandQueue::block_failed() { return state.depth > 0 && state.failed; }
const std::string& CommandQueue::block_error() { return state.error; }

void CommandQueue::note_failure(const std::string& message) {
  if (state.depth == 0 || state.failed) return;
  state.failed = true;
  state.error = message;
}

CommandQueue::Block::Block() : lock_(mutex()), outermost_(state.depth == 0) {
  if (outermost_) {
    state.failed = false;
    state.error.clear();
  }
  ++state.depth;
}

CommandQueue::Block::~Block() {
  if (--state.depth == 0) ++queue_epoch;
}

// A nested block's failure stays recorded, so the enclosing block fails too.
void CommandQueue::Block::finish() {
  MPS_SHIM_CHECK_AS(CommandBlockError, !state.failed, "the command block failed: ", state.error);
}

}  // namespace mps_shim
