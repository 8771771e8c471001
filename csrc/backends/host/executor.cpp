#include "backends/host/executor.h"

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace mps_shim::host {

namespace {

struct Job {
  Executor::RangeFn fn = nullptr;
  void* ctx = nullptr;
  uint64_t total = 0, chunk = 1;
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> done{0};
};

// Workers sleep on a generation counter; each new job bumps it.
class Pool {
 public:
  explicit Pool(unsigned workers) {
    for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }

  void run(Job& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    drain(job);
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [&] { return job.done.load() == job.total && busy_ == 0; });
    job_ = nullptr;
  }

 private:
  static void drain(Job& job) {
    for (;;) {
      const uint64_t first = job.next.fetch_add(job.chunk);
      if (first >= job.total) return;
      const uint64_t end = first + job.chunk < job.total ? first + job.chunk : job.total;
      job.fn(job.ctx, first, end);
      job.done.fetch_add(end - first);
    }
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
        if (!job) continue;
        ++busy_;
      }
      drain(*job);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --busy_;
      }
      finished_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  unsigned busy_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace

unsigned configured_threads() {
  if (const char* env = std::getenv("MPS_SHIM_NUM_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n > 0 && n <= 4096) return unsigned(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return unsigned(CPU_COUNT(&set));
  const unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

Executor::Executor() : threads_(configured_threads()) {}

Executor& Executor::instance() {
  static Executor* executor = new Executor();  // never destroyed: workers may outlive static destructors
  return *executor;
}

void Executor::parallel_for(uint64_t total, uint64_t grain, RangeFn fn, void* ctx) {
  if (total == 0) return;
  grain = grain ? grain : 1;
  if (threads_ <= 1 || total <= grain) {
    fn(ctx, 0, total);
    return;
  }
  // Several chunks per thread balance uneven work; never below `grain`.
  uint64_t chunk = (total + threads_ * 4 - 1) / (threads_ * 4);
  if (chunk < grain) chunk = grain;
  static Pool* pool = new Pool(threads_ - 1);
  static std::mutex one_job_at_a_time;
  std::lock_guard<std::mutex> lock(one_job_at_a_time);
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.total = total;
  job.chunk = chunk;
  pool->run(job);
}

}  // namespace mps_shim::host
