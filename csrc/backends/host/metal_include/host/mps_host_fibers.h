// Threadgroups for real on the CPU: every work-item of a threadgroup is a fiber
// (its own small stack) and all fibers of one group run round-robin on the OS
// thread that calls run_group(). threadgroup_barrier() and the SIMD-group
// functions switch to the next fiber with a hand-written context switch (a few
// nanoseconds, no system call, no signal mask), so barriers work anywhere:
// inside helper functions, loops, recursion (c10/metal/reduction_utils.h).
//
// Semantics (Metal Shading Language spec §4.4.1, §6.9):
// - threadgroup_barrier: no fiber continues past a barrier before every live
//   fiber of the group has arrived at one. A fiber whose kernel returned has
//   left the group and no longer holds the others (Apple silicon, §6.9.1).
// - SIMD-groups: 32 lanes, simdgroup = tid / 32, lane = tid % 32, the last
//   SIMD-group of a partial threadgroup has fewer lanes. A SIMD operation
//   combines the active lanes: those of the SIMD-group that have not returned
//   and are not waiting at the threadgroup barrier. So in
//   `if (idx < n) x = simd_sum(v); threadgroup_barrier(...);` the sum covers
//   the lanes that took the branch, as on the GPU where the others are masked
//   off. Lanes on two different SIMD operations at once are not modelled.
// - Reading an inactive lane (simd_shuffle_down past an inactive or returned
//   lane, simd_broadcast from one) is undefined in Metal; here it yields the
//   caller's own value, like the lanes shuffled in past the end.
//
// Use from generated code:
//   int rc = mps_host::fibers::run_group(n, body, ctx);   // on each worker thread
//   body(ctx, tid) runs once per tid in [0, n); inside it (at any depth):
//   mps_host::fibers::barrier(), simd_sum(x), ..., yield_for_spin().
// n == 1 calls body directly on the calling thread's stack (no fiber); the
// same API then works trivially (barrier is a no-op, the SIMD-group is 1 lane).
//
// Progress guard: the engine's spin-wait lowering (a loop polling an atomic,
// e.g. `while (atomic_load_explicit(flag, ...) == 0) {}`, or a failed
// compare-exchange retry) calls yield_for_spin() once per iteration. It lets
// the other fibers run (one of them is the producer the spinner waits for); if
// fibers spin more than DeadlockHandler::spin_limit times in total with no
// fiber passing a barrier or SIMD op or finishing, or if every live fiber is
// blocked (e.g. a barrier some lanes of a SIMD-group never reach while others
// wait in a SIMD op), the group is deadlocked: the handler is called (the
// engine records "kernel X: threadgroup deadlock" as the dispatch's error),
// the group is abandoned (its fibers are never resumed; their stacks are
// reused by the next group, no destructors run on them) and run_group returns
// kDeadlock. With n == 1 the body runs on the caller's stack: the handler is
// called and the body is abandoned the same way (__builtin_longjmp back to
// run_group, no destructors run); run_group returns kDeadlock.
//
// Linkage: the header is force-included into every kernel module; everything
// it defines has hidden visibility (inline functions and variables included),
// and the assembly symbols live in COMDAT groups, so several translation units
// of one module share one copy and several modules loaded into one process
// (RTLD_LOCAL or RTLD_GLOBAL) each use their own, with their own thread state.
// Define MPS_HOST_FIBER_SWITCH to rename the assembly symbols per module.
//
// Stacks: a pool per OS thread, mapped lazily with mmap up to the largest
// group the thread ran (at most 1024), each with a PROT_NONE guard below it,
// reused by every later group. Under libmps_shim the pool is shared by every
// module (the runtime keeps it: shared_slot) and lives as long as the thread;
// without it, each module has its own, unmapped at thread exit.
//
// Cost (x86-64, one OS thread): ~7 ns per work-item per barrier, ~9 ns per lane
// per simd_sum for 256-thread groups; most of it is the cache misses of
// touching 256 stacks in turn, which the stack colouring and the prefetch in
// switch_to() reduce. Kernels with no barrier or SIMD call should not use this.
//
// Limits: at most 1024 fibers per group; MPS_HOST_FIBER_STACK_SIZE bytes of
// stack per fiber (default 64 KiB, overflow hits a PROT_NONE guard page:
// SIGSEGV, not corruption); SIMD deposits of at most 16 bytes; one group at a
// time per OS thread (no nesting); a group never migrates between OS threads;
// kernels must not throw (an exception cannot unwind past a fiber's first
// frame: std::terminate). Each stack costs 2 memory mappings: 1024-thread
// groups on T worker threads need 2048*T of vm.max_map_count (default 65530),
// once per process under libmps_shim.
// Not for use under AddressSanitizer or with x86 shadow stacks (CET) enforced.
// Build modules with the default TLS dialect: with -mtls-dialect=gnu2 the
// first TLS access from a dlopen'ed module clobbered a live vector register
// (glibc 2.36's _dl_tlsdesc_dynamic), and initial-exec TLS makes dlopen fail
// ("cannot allocate memory in static TLS block").
//
// Only <stdint.h>, <stddef.h>, <sys/mman.h> and <unistd.h>; no C++ library.
#ifndef MPS_HOST_FIBERS_H
#define MPS_HOST_FIBERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__ELF__) && (defined(__x86_64__) || defined(__aarch64__))
#define MPS_HOST_FIBERS_SUPPORTED 1
#else
#define MPS_HOST_FIBERS_SUPPORTED 0
#endif

#if MPS_HOST_FIBERS_SUPPORTED

// Per-fiber stack bytes (rounded up to whole pages), and the guard below it.
#ifndef MPS_HOST_FIBER_STACK_SIZE
#define MPS_HOST_FIBER_STACK_SIZE (64u * 1024u)
#endif
#ifndef MPS_HOST_FIBER_GUARD_SIZE
#define MPS_HOST_FIBER_GUARD_SIZE 4096u
#endif

// Assembly symbol names: MPS_HOST_FIBER_SWITCH and MPS_HOST_FIBER_SWITCH ## _entry.
#ifndef MPS_HOST_FIBER_SWITCH
#define MPS_HOST_FIBER_SWITCH mps_host_fiber_switch
#endif
#define MPS_HOST_FIBER_STR2_(x) #x
#define MPS_HOST_FIBER_STR_(x) MPS_HOST_FIBER_STR2_(x)
#define MPS_HOST_FIBER_CAT2_(a, b) a##b
#define MPS_HOST_FIBER_CAT_(a, b) MPS_HOST_FIBER_CAT2_(a, b)
#define MPS_HOST_FIBER_ENTRY_ MPS_HOST_FIBER_CAT_(MPS_HOST_FIBER_SWITCH, _entry)
#define MPS_HOST_FIBER_SW_S_ MPS_HOST_FIBER_STR_(MPS_HOST_FIBER_SWITCH)
#define MPS_HOST_FIBER_EN_S_ MPS_HOST_FIBER_STR_(MPS_HOST_FIBER_ENTRY_)

// Plain types the caller may embed in its own (default-visibility) types:
// they have no symbols, so they stay outside the hidden region.
namespace mps_host {
namespace fibers {

constexpr unsigned kMaxThreads = 1024;   // fibers per group
constexpr unsigned kSimdWidth = 32;      // lanes per SIMD-group
constexpr unsigned kMaxSimdGroups = kMaxThreads / kSimdWidth;
constexpr size_t kSlotBytes = 16;        // largest value one SIMD exchange carries
constexpr size_t kStackBytes = MPS_HOST_FIBER_STACK_SIZE;
constexpr size_t kGuardBytes = MPS_HOST_FIBER_GUARD_SIZE;
constexpr uint64_t kDefaultSpinLimit = uint64_t(1) << 22;
constexpr unsigned kStackColours = 64;  // stack tops staggered by 64 bytes * (tid % 64)

// run_group results.
enum : int {
  kOk = 0,
  kTooManyThreads = -1,  // n_threads > kMaxThreads
  kOutOfMemory = -2,     // a stack or the thread state could not be mapped
  kNested = -3,          // run_group called from inside a fiber
  kDeadlock = -4,        // the progress guard fired (see DeadlockHandler)
};

// DeadlockInfo::kind
enum : int {
  kSpinLimit = 1,   // yield_for_spin() called spin_limit times without progress
  kAllBlocked = 2,  // every live fiber waits at a barrier or SIMD op that can never complete
};

struct DeadlockInfo {
  int kind;
  unsigned n_threads;   // group size
  unsigned live;        // fibers that had not returned
  unsigned tid;         // the fiber that detected it
  unsigned at_barrier;  // live fibers waiting at the threadgroup barrier
  uint64_t spins;       // yield_for_spin calls since the last progress
};

struct DeadlockHandler {
  // Called once, on the fiber that detected the deadlock (or on the calling
  // thread for n == 1), before the group is abandoned. May be null.
  void (*fn)(void* user, const DeadlockInfo* info);
  void* user;
  uint64_t spin_limit;  // 0: kDefaultSpinLimit
};

}  // namespace fibers
}  // namespace mps_host

#pragma GCC visibility push(hidden)

extern "C" {
// Saves the callee-saved registers on the current stack, stores the stack
// pointer into *save_sp, switches to to_sp (a stack saved by this function or
// prepared by prepare_stack) and returns there.
__attribute__((visibility("hidden"))) void MPS_HOST_FIBER_SWITCH(void** save_sp, void* to_sp);
// First frame of every fiber: calls fn(arg); when fn returns, switches to the
// stack stored in *back (the scheduler). Never called directly.
__attribute__((visibility("hidden"))) void MPS_HOST_FIBER_ENTRY_(void);
}

// A COMDAT group per symbol name: any number of translation units of one module
// may include this header; the linker keeps one copy.
#if defined(__x86_64__)
// Frame (64 bytes, from the saved stack pointer up): MXCSR (4) and x87 control
// word (2) in one 8-byte slot, r15, r14, r13, r12, rbx, rbp, return address.
// Entry registers prepared by prepare_stack: r12 = fn, r13 = arg, r14 = back
// (void** holding the scheduler's stack), r15 = a dead save slot.
__asm__(
    ".pushsection .text." MPS_HOST_FIBER_SW_S_ ",\"axG\",@progbits," MPS_HOST_FIBER_SW_S_ ",comdat\n"
    ".weak " MPS_HOST_FIBER_SW_S_ "\n"
    ".hidden " MPS_HOST_FIBER_SW_S_ "\n"
    ".type " MPS_HOST_FIBER_SW_S_ ",@function\n"
    ".p2align 4\n"
    MPS_HOST_FIBER_SW_S_ ":\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size " MPS_HOST_FIBER_SW_S_ ", .-" MPS_HOST_FIBER_SW_S_ "\n"
    ".weak " MPS_HOST_FIBER_EN_S_ "\n"
    ".hidden " MPS_HOST_FIBER_EN_S_ "\n"
    ".type " MPS_HOST_FIBER_EN_S_ ",@function\n"
    ".p2align 4\n"
    MPS_HOST_FIBER_EN_S_ ":\n"
    "  .cfi_startproc\n"
    "  .cfi_undefined %rip\n"  // outermost frame: debuggers stop unwinding here
    "  movq %r13, %rdi\n"
    "  callq *%r12\n"
    "  movq %r15, %rdi\n"
    "  movq (%r14), %rsi\n"
    "  jmp " MPS_HOST_FIBER_SW_S_ "\n"
    "  .cfi_endproc\n"
    ".size " MPS_HOST_FIBER_EN_S_ ", .-" MPS_HOST_FIBER_EN_S_ "\n"
    ".popsection\n");
#elif defined(__aarch64__)
// Frame (160 bytes, from the saved stack pointer up): x19..x28, x29 (fp),
// x30 (lr: where `ret` resumes), d8..d15.
// Entry registers prepared by prepare_stack: x19 = fn, x20 = arg, x21 = back,
// x22 = a dead save slot, x30 = the entry trampoline.
__asm__(
    ".pushsection .text." MPS_HOST_FIBER_SW_S_ ",\"axG\",%progbits," MPS_HOST_FIBER_SW_S_ ",comdat\n"
    ".weak " MPS_HOST_FIBER_SW_S_ "\n"
    ".hidden " MPS_HOST_FIBER_SW_S_ "\n"
    ".type " MPS_HOST_FIBER_SW_S_ ",%function\n"
    ".p2align 4\n"
    MPS_HOST_FIBER_SW_S_ ":\n"
    "  sub sp, sp, #160\n"
    "  stp x19, x20, [sp, #0]\n"
    "  stp x21, x22, [sp, #16]\n"
    "  stp x23, x24, [sp, #32]\n"
    "  stp x25, x26, [sp, #48]\n"
    "  stp x27, x28, [sp, #64]\n"
    "  stp x29, x30, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n"
    "  stp d10, d11, [sp, #112]\n"
    "  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  mov x9, sp\n"
    "  str x9, [x0]\n"
    "  mov sp, x1\n"
    "  ldp x19, x20, [sp, #0]\n"
    "  ldp x21, x22, [sp, #16]\n"
    "  ldp x23, x24, [sp, #32]\n"
    "  ldp x25, x26, [sp, #48]\n"
    "  ldp x27, x28, [sp, #64]\n"
    "  ldp x29, x30, [sp, #80]\n"
    "  ldp d8, d9, [sp, #96]\n"
    "  ldp d10, d11, [sp, #112]\n"
    "  ldp d12, d13, [sp, #128]\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  add sp, sp, #160\n"
    "  ret\n"
    ".size " MPS_HOST_FIBER_SW_S_ ", .-" MPS_HOST_FIBER_SW_S_ "\n"
    ".weak " MPS_HOST_FIBER_EN_S_ "\n"
    ".hidden " MPS_HOST_FIBER_EN_S_ "\n"
    ".type " MPS_HOST_FIBER_EN_S_ ",%function\n"
    ".p2align 4\n"
    MPS_HOST_FIBER_EN_S_ ":\n"
    "  .cfi_startproc\n"
    "  .cfi_undefined x30\n"  // outermost frame: debuggers stop unwinding here
    "  mov x0, x20\n"
    "  blr x19\n"
    "  mov x0, x22\n"
    "  ldr x1, [x21]\n"
    "  b " MPS_HOST_FIBER_SW_S_ "\n"
    "  .cfi_endproc\n"
    ".size " MPS_HOST_FIBER_EN_S_ ", .-" MPS_HOST_FIBER_EN_S_ "\n"
    ".popsection\n");
#endif

namespace mps_host {
namespace fibers {

namespace detail {

struct Group;

struct Fiber {
  void* sp;  // saved stack pointer while switched out
  Fiber* next;
  Fiber* prev;
  Group* group;
  unsigned tid;
  uint32_t site;  // the call site of the SIMD-group function it is in (0: not told)
};

// One SIMD-group. Values travel through slot[parity][lane]; parity = number of
// completed operations & 1. A lane that passed operation k may deposit for k+1
// (other parity) while slower lanes still read k; operation k+2 (same parity as
// k) cannot start before k+1 completed, i.e. before every lane finished with k.
struct alignas(64) Simd {
  uint32_t arrived;    // lanes waiting in the current operation
  uint32_t live;       // lanes that have not returned
  uint32_t at_barrier; // lanes waiting at the threadgroup barrier: not in this SIMD op (divergence)
  uint32_t gen;        // completed operations
  uint32_t mask[2];    // lanes that deposited, per parity
  uint32_t reduced[2]; // simd_collective: result[parity] holds the combined value
  uint32_t site[kSimdWidth];    // each arrived lane's call site
  uint32_t served[kSimdWidth];  // 1 + the operation that last completed for each lane
  alignas(16) unsigned char result[2][kSlotBytes];
  alignas(16) unsigned char slot[2][kSimdWidth][kSlotBytes];
};

struct Group {
  Fiber* running;
  unsigned n;
  unsigned live;     // fibers that have not returned
  unsigned arrived;  // live fibers waiting at the barrier
  uint32_t gen;      // completed barriers
  unsigned stuck;    // consecutive resumptions that found their fiber still blocked
  int status;
  uint64_t spins;    // yield_for_spin calls since the last progress
  uint64_t spin_limit;
  const DeadlockHandler* handler;
  void* main_sp;     // the scheduler (run_group's caller) while fibers run
  void (*body)(void*, unsigned);
  void* ctx;
  Simd simd[kMaxSimdGroups];
  Fiber fibers[kMaxThreads];
};

}  // namespace detail
}  // namespace fibers

#ifdef MPS_SHIM_CHECKED
// Checked mode's hooks into the scheduler (defined in mps_host_checked.h):
// where each thread waits, which threads returned, and what a SIMD-group
// operation or a barrier release leaves out (synccheck).
namespace checked {
void on_barrier_arrive(unsigned tid);
void on_barrier_release(fibers::detail::Group* g);
void on_fiber_return(unsigned tid);
void on_simd_arrive(unsigned tid, bool user_barrier);
void on_simd_complete(const fibers::detail::Simd& s, uint32_t done);
void inactive_lane_read(unsigned lane);
void inactive_lane_read_by(unsigned tid, unsigned lane);  // lane loops: thread tid read lane
void flush(unsigned tid);  // the thread's threadgroup accesses since its last wait (racecheck, initcheck)
void settle_reads();       // an epoch ended: reads of memory no thread wrote are uninitialised
void barrier_place(unsigned line, const char* file);  // where the running thread's next barrier call is
}  // namespace checked
#endif

namespace fibers {
namespace detail {

// mmap'ed once per OS thread (zero-filled, so no constructor), unmapped at
// thread exit together with its stacks.
struct ThreadState {
  Group group;
  void* stacks[kMaxThreads];  // mapping base: guard pages, then the stack
  unsigned n_stacks;
  size_t map_bytes;   // guard + stack
  size_t guard_bytes;
  size_t self_bytes;
};

struct ThreadStateOwner {
  ThreadState* p = nullptr;
  ~ThreadStateOwner() {
    if (!p) return;
    for (unsigned i = 0; i < p->n_stacks; ++i) munmap(p->stacks[i], p->map_bytes);
    munmap(p, p->self_bytes);
    p = nullptr;
  }
};

struct Solo {  // state of an n == 1 group, run without fibers
  uint64_t spins;
  uint64_t spin_limit;
  const DeadlockHandler* handler;
  int status;
  int active;
  void* escape[5];  // __builtin_setjmp buffer: a spin that never ends jumps back to run_group
  alignas(16) unsigned char slot[1][kSlotBytes];
};

inline thread_local ThreadStateOwner tls_owner;  // non-trivial destructor: registered on first use
struct LaneExchange;
// One thread-local object, so that a SIMD-group function finds its state with
// one TLS lookup (a call to __tls_get_addr in a dlopen'ed module).
struct ThreadSlots {
  Group* group;          // the group whose fibers run on this thread
  LaneExchange* lanes;   // the lane-loop exchange while a group runs as lane loops
  Solo solo;
};
inline thread_local ThreadSlots tls = {};
inline const DeadlockHandler* default_handler = nullptr;

inline size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Set by the entry points from the launch: the runtime's per-thread slot, which
// makes one pool per OS thread serve every module. Each module keeping its own
// held 2 memory mappings per stack for as long as the process ran, and a test
// suite's modules exhausted vm.max_map_count. Without it (the engine's own
// C++ tests), the pool is this module's and is unmapped at thread exit.
inline void** (*shared_slot)(void) = nullptr;

inline ThreadState* thread_state() {
  void** shared = shared_slot ? shared_slot() : nullptr;
  if (shared && *shared) return static_cast<ThreadState*>(*shared);
  ThreadStateOwner* owner = shared ? nullptr : &tls_owner;
  if (owner && owner->p) return owner->p;
  long ps = sysconf(_SC_PAGESIZE);
  const size_t page = ps > 0 ? size_t(ps) : 4096;
  const size_t bytes = round_up(sizeof(ThreadState), page);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  ThreadState* ts = static_cast<ThreadState*>(mem);
  ts->self_bytes = bytes;
  ts->guard_bytes = round_up(kGuardBytes ? kGuardBytes : 1, page);
  ts->map_bytes = ts->guard_bytes + round_up(kStackBytes + kStackColours * 64, page);
  if (shared) *shared = ts;
  else owner->p = ts;
  return ts;
}

// Maps stacks until the pool holds n; they are kept for later groups.
inline bool ensure_stacks(ThreadState* ts, unsigned n) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_STACK
  flags |= MAP_STACK;
#endif
  while (ts->n_stacks < n) {
    void* mem = mmap(nullptr, ts->map_bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (mem == MAP_FAILED) return false;
    if (mprotect(mem, ts->guard_bytes, PROT_NONE) != 0) {
      munmap(mem, ts->map_bytes);
      return false;
    }
    ts->stacks[ts->n_stacks++] = mem;
  }
  return true;
}

inline void fiber_main(void* arg);

// The caller's floating-point control state, given to every new fiber.
inline uint64_t capture_fp_control() {
#if defined(__x86_64__)
  uint32_t mxcsr;
  uint16_t fcw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fcw));
  return uint64_t(mxcsr) | (uint64_t(fcw) << 32);
#else
  return 0;
#endif
}

// Lays out a first frame at the top of a stack so that switching to the
// returned stack pointer enters the trampoline, which calls fiber_main(f) and,
// when that returns, switches to *back.
inline void* prepare_stack(void* top, Fiber* f, void** back, uint64_t fp_control) {
  typedef void (*Fn)(void*);
  const Fn fn = &fiber_main;
#if defined(__x86_64__)
  uint64_t* sp = static_cast<uint64_t*>(top) - 8;
  sp[0] = fp_control;
  sp[1] = uint64_t(&f->sp);  // r15: dead save slot for the final switch
  sp[2] = uint64_t(back);    // r14
  sp[3] = uint64_t(f);       // r13: arg
  sp[4] = uint64_t(fn);      // r12: fn
  sp[5] = 0;                 // rbx
  sp[6] = 0;                 // rbp
  sp[7] = uint64_t(&MPS_HOST_FIBER_ENTRY_);
#else
  (void)fp_control;
  uint64_t* sp = static_cast<uint64_t*>(top) - 20;
  for (int i = 0; i < 20; ++i) sp[i] = 0;
  sp[0] = uint64_t(fn);      // x19
  sp[1] = uint64_t(f);       // x20
  sp[2] = uint64_t(back);    // x21
  sp[3] = uint64_t(&f->sp);  // x22
  sp[11] = uint64_t(&MPS_HOST_FIBER_ENTRY_);  // x30
#endif
  return sp;
}

inline const DeadlockHandler* resolve_handler(const DeadlockHandler* h) {
  return h ? h : __atomic_load_n(&default_handler, __ATOMIC_ACQUIRE);
}

inline uint64_t spin_limit_of(const DeadlockHandler* h) {
  return h && h->spin_limit ? h->spin_limit : kDefaultSpinLimit;
}

inline void switch_to(Group* g, Fiber* from, Fiber* to) {
  g->running = to;
  {  // the fiber after `to` runs next: fetch the top of its saved stack now
    const char* after = static_cast<const char*>(to->next->sp);
    __builtin_prefetch(after);
    __builtin_prefetch(after + 64);
  }
  MPS_HOST_FIBER_SWITCH(&from->sp, to->sp);
}

// Reports the deadlock and abandons the group: back to run_group's caller.
__attribute__((noinline, cold)) inline void deadlock(Group* g, Fiber* f, int kind) {
  DeadlockInfo info;
  info.kind = kind;
  info.n_threads = g->n;
  info.live = g->live;
  info.tid = f->tid;
  info.at_barrier = g->arrived;
  info.spins = g->spins;
  if (g->handler && g->handler->fn) g->handler->fn(g->handler->user, &info);
  g->status = kDeadlock;
  MPS_HOST_FIBER_SWITCH(&f->sp, g->main_sp);
  __builtin_unreachable();
}

// The running fiber f has arrived at a wait; runs the others until *gen moves
// past `seen`.
__attribute__((noinline)) inline void block(Group* g, Fiber* f, const uint32_t* gen, uint32_t seen) {
  for (;;) {
    if (f->next == f) deadlock(g, f, kAllBlocked);  // alone and blocked
    switch_to(g, f, f->next);
    if (*gen != seen) break;
    if (++g->stuck >= g->live) deadlock(g, f, kAllBlocked);
  }
  g->stuck = 0;
}

// Runs on the fiber's own stack, called by the entry trampoline.
// A SIMD op completes when every lane of the SIMD-group still running has
// arrived: lanes that returned, or that wait at the threadgroup barrier (they
// took another path, as in `if (idx < n) simd_sum(...); barrier();`), are not
// part of it, as on the GPU where divergent lanes are masked off.
//
// Lanes of one SIMD-group can wait at different call sites (`if (t < 1) r =
// simd_max(v); s = simd_sum(v);`): a GPU runs the divergent path first and
// reconverges, so the operation completes for the lanes at the earliest call
// site in the source, and the others are carried, with their deposits, into
// the next operation.
inline void simd_complete_if_ready(Simd& s) {
  if (s.arrived == 0 || s.arrived != s.live - s.at_barrier) return;
  const unsigned p = s.gen & 1u;
  const uint32_t all = s.mask[p];
  uint32_t first = ~0u, done = 0;
  for (uint32_t m = all; m; m &= m - 1) first = s.site[__builtin_ctz(m)] < first ? s.site[__builtin_ctz(m)] : first;
  for (uint32_t m = all; m; m &= m - 1) done |= s.site[__builtin_ctz(m)] == first ? 1u << __builtin_ctz(m) : 0u;
#ifdef MPS_SHIM_CHECKED
  ::mps_host::checked::on_simd_complete(s, done);
#endif
  for (uint32_t m = done; m; m &= m - 1) s.served[__builtin_ctz(m)] = s.gen + 1;
  const uint32_t rest = all & ~done;
  s.mask[p] = done;
  s.arrived = 0;
  if (rest) {
    const unsigned q = p ^ 1u;  // every lane has finished with the operation before this one
    s.mask[q] = rest;
    s.reduced[q] = 0;
    for (uint32_t m = rest; m; m &= m - 1) __builtin_memcpy(s.slot[q][__builtin_ctz(m)], s.slot[p][__builtin_ctz(m)], kSlotBytes);
    s.arrived = unsigned(__builtin_popcount(rest));
  }
  s.gen += 1;
}

inline void release_barrier(Group* g) {
#ifdef MPS_SHIM_CHECKED
  ::mps_host::checked::on_barrier_release(g);
#endif
  g->arrived = 0;
  g->gen += 1;
  for (unsigned i = 0, n = (g->n + kSimdWidth - 1) / kSimdWidth; i < n; ++i) g->simd[i].at_barrier = 0;
}

inline void fiber_main(void* arg) {
  Fiber* f = static_cast<Fiber*>(arg);
  Group* g = f->group;
  g->body(g->ctx, f->tid);
#ifdef MPS_SHIM_CHECKED
  ::mps_host::checked::on_fiber_return(f->tid);
#endif
  // The fiber leaves the group: it holds nobody at later barriers or SIMD ops.
  g->stuck = 0;
  g->spins = 0;
  Simd& s = g->simd[f->tid / kSimdWidth];
  s.live -= 1;
  simd_complete_if_ready(s);  // the others may have been waiting only for it
  g->live -= 1;
  if (g->live == 0) return;  // the trampoline switches back to run_group
  if (g->arrived != 0 && g->arrived == g->live) release_barrier(g);
  Fiber* next = f->next;
  f->prev->next = next;
  next->prev = f->prev;
  switch_to(g, f, next);  // never resumed
  __builtin_unreachable();
}

// A SIMD-group operation: deposits n bytes of v for the running lane, waits
// until every active lane of its SIMD-group deposited; *parity selects the
// slots and mask of this operation.
inline Simd* simd_arrive(Group* g, const void* v, size_t n, unsigned* parity, unsigned* lane) {
  Fiber* f = g->running;
  const unsigned tid = f->tid;
#ifdef MPS_SHIM_CHECKED
  ::mps_host::checked::flush(tid);
#endif
  const unsigned l = tid % kSimdWidth;
  Simd* s = &g->simd[tid / kSimdWidth];
  const uint32_t gen = s->gen;
  const unsigned p = gen & 1u;
  if (s->arrived == 0) {  // first lane of this operation
    s->mask[p] = 0;
    s->reduced[p] = 0;
  }
  if (n) __builtin_memcpy(s->slot[p][l], v, n);
  s->mask[p] |= 1u << l;
  s->site[l] = f->site;
  g->stuck = 0;
  const uint32_t before = s->served[l];
  ++s->arrived;
  simd_complete_if_ready(*s);
  if (s->gen != gen) g->spins = 0;
  // Until an operation that holds this lane completes (a lane at a later call
  // site is carried into the next operation).
  if (s->served[l] == before) block(g, f, &s->served[l], before);
  *parity = (s->served[l] - 1u) & 1u;
  *lane = l;
  return s;
}

}  // namespace detail

// ---- threadgroup -----------------------------------------------------------

// Sets the handler used by run_group calls that pass none (module-wide; the
// pointer is kept, the caller owns the object). Null: no callback, the group
// still ends with kDeadlock.
inline void set_default_deadlock_handler(const DeadlockHandler* h) {
  __atomic_store_n(&detail::default_handler, h, __ATOMIC_RELEASE);
}

// Runs body(ctx, tid) for tid in [0, n_threads) as one threadgroup on the
// calling thread and returns when all have returned (kOk) or on an error.
inline int run_group(unsigned n_threads, void (*body)(void* ctx, unsigned tid), void* ctx,
                     const DeadlockHandler* handler = nullptr) {
  using namespace detail;
  if (n_threads == 0) return kOk;
  if (n_threads > kMaxThreads) return kTooManyThreads;
  if (tls.group || tls.solo.active) return kNested;
  const DeadlockHandler* h = resolve_handler(handler);
#ifdef MPS_SHIM_CHECKED
  if (false) {  // checked mode: every thread is a fiber (a report walks the fiber's frames)
#else
  if (n_threads == 1) {
#endif
    Solo& solo = tls.solo;
    solo.spins = 0;
    solo.spin_limit = spin_limit_of(h);
    solo.handler = h;
    solo.status = kOk;
    solo.active = 1;
    if (__builtin_setjmp(solo.escape) == 0) body(ctx, 0);
    tls.solo.active = 0;
    return tls.solo.status;
  }
  ThreadState* ts = thread_state();
  if (!ts || !ensure_stacks(ts, n_threads)) return kOutOfMemory;
  Group* g = &ts->group;
  g->n = n_threads;
  g->live = n_threads;
  g->arrived = 0;
  g->gen = 0;
  g->stuck = 0;
  g->status = kOk;
  g->spins = 0;
  g->spin_limit = spin_limit_of(h);
  g->handler = h;
  g->body = body;
  g->ctx = ctx;
  const uint64_t fp = capture_fp_control();
  for (unsigned i = 0; i < n_threads; ++i) {
    Fiber* f = &g->fibers[i];
    f->group = g;
    f->tid = i;
    f->site = 0;
    f->next = &g->fibers[i + 1 == n_threads ? 0 : i + 1];
    f->prev = &g->fibers[i == 0 ? n_threads - 1 : i - 1];
    // Stack tops staggered by a cache line per fiber (64 colours): page-aligned
    // tops would all compete for the same L1 sets.
    char* top = static_cast<char*>(ts->stacks[i]) + ts->map_bytes - (i % kStackColours) * 64;
    f->sp = prepare_stack(top, f, &g->main_sp, fp);
  }
  const unsigned n_simd = (n_threads + kSimdWidth - 1) / kSimdWidth;
  for (unsigned s = 0; s < n_simd; ++s) {
    Simd& sg = g->simd[s];
    const unsigned lanes = s + 1 < n_simd ? kSimdWidth : n_threads - s * kSimdWidth;
    sg.arrived = 0;
    sg.live = lanes;
    sg.at_barrier = 0;
    sg.gen = 0;
    sg.mask[0] = sg.mask[1] = 0;
    sg.reduced[0] = sg.reduced[1] = 0;
    __builtin_memset(sg.served, 0, sizeof(sg.served));
  }
  tls.group = g;
  g->running = &g->fibers[0];
  MPS_HOST_FIBER_SWITCH(&g->main_sp, g->fibers[0].sp);
  tls.group = nullptr;
  return g->status;
}

// threadgroup_barrier: waits until every live fiber of the group arrived.
inline void barrier() {
  __asm__ volatile("" ::: "memory");
  detail::Group* g = detail::tls.group;
  if (!g) return;
  detail::Fiber* f = g->running;
  g->stuck = 0;
#ifdef MPS_SHIM_CHECKED
  ::mps_host::checked::on_barrier_arrive(f->tid);
#endif
  if (++g->arrived == g->live) {  // the last one releases the others and goes on
    detail::release_barrier(g);
    g->spins = 0;
    return;
  }
  detail::Simd& s = g->simd[f->tid / kSimdWidth];
  s.at_barrier += 1;
  detail::simd_complete_if_ready(s);
  detail::block(g, f, &g->gen, g->gen);
}

// For spin-wait loops on atomics: lets the other fibers run. Returns true
// (false only outside run_group's reach: never in practice). When the progress
// guard fires it does not return: the group is abandoned.
inline bool yield_for_spin() {
  detail::Group* g = detail::tls.group;
  if (!g) {
    detail::Solo& solo = detail::tls.solo;
    if (!solo.active) return true;
    if (solo.status != kOk) return false;
    if (++solo.spins <= solo.spin_limit) return true;
    DeadlockInfo info = {kSpinLimit, 1, 1, 0, 0, solo.spins};
    solo.status = kDeadlock;
    if (solo.handler && solo.handler->fn) solo.handler->fn(solo.handler->user, &info);
    __builtin_longjmp(solo.escape, 1);  // abandon the group, as a fibered one is
  }
  detail::Fiber* f = g->running;
  if (++g->spins > g->spin_limit) detail::deadlock(g, f, kSpinLimit);
  if (f->next != f) detail::switch_to(g, f, f->next);
  g->stuck = 0;
  return true;
}

// The running work-item's index in its group (0 outside a fibered group).
inline unsigned current_thread_index() {
  detail::Group* g = detail::tls.group;
  return g ? g->running->tid : 0u;
}

// Stacks mapped by this OS thread's pool (for tests and diagnostics).
inline unsigned pooled_stacks() {
  detail::ThreadStateOwner& o = detail::tls_owner;
  return o.p ? o.p->n_stacks : 0u;
}

// ---- SIMD-group ------------------------------------------------------------

// What one SIMD exchange saw: the deposits of the active lanes and their mask.
// Valid until the calling lane's next SIMD-group operation.
struct SimdView {
  const unsigned char (*slots)[kSlotBytes];
  uint32_t mask;  // active lanes (those that deposited)
  unsigned lane;  // the caller's lane
  bool active(unsigned l) const { return l < kSimdWidth && ((mask >> l) & 1u); }
  template <class T>
  T get(unsigned l) const {
    T v;
    __builtin_memcpy(&v, slots[l], sizeof(T));
    return v;
  }
};

// Lane loops (mps_host_engine.h) run a group's threads one after another, one
// loop per stretch of code between barriers, instead of as fibers. A statement
// with SIMD-group functions then runs as repeated passes over the group's
// threads: in pass p every thread deposits the value of its p-th SIMD
// operation, and operations before p see every deposit. When a pass deposits
// nothing new, each thread has computed the statement with all of its
// operations complete. The statement must be free of side effects (the
// splitter checks) since it runs once per operation, plus once. While a group
// runs as lane loops, exchanges go to lane_exchange().
namespace detail {
// The state of one SIMD operation of a replayed statement (index k).
struct LaneOp {
  uint32_t mask[kMaxSimdGroups];  // lanes that deposited, per SIMD-group
  // Which function deposited: lanes of one SIMD-group on different functions
  // at one step (`c ? simd_max(v) : simd_min(v)`) form separate operations.
  unsigned char mixed[kMaxSimdGroups];
  unsigned char combined[kMaxSimdGroups];  // simd_collective: result holds the SIMD-group's value
  const void* lane_kind[kMaxThreads];
  alignas(16) unsigned char result[kMaxSimdGroups][kSlotBytes];
  alignas(16) unsigned char slots[kMaxThreads][kSlotBytes];
};

struct LaneExchange {
  // A statement may run any number of SIMD operations (c10's 64-bit simd_sum
  // is a loop of shuffles): their states are mapped on first use and kept
  // for the thread's later statements (~25 KiB each).
  bool replaying;  // inside for_each_lane_replayed; otherwise an exchange is an engine bug
  bool failed;     // an exchange outside a replayed statement (engine bug)
  bool no_memory;  // no memory for an operation's state
  bool deposited;  // a thread deposited for operation `resolved` in this pass
  unsigned lane, op, resolved;
  uint32_t site;   // the call site of the SIMD function being called (0: not told)
#ifdef MPS_SHIM_CHECKED
  bool placeholder;  // the last exchange returned a placeholder (its operation not complete yet)
#endif
  LaneOp** ops;    // ops[k], k < n_ops, mapped
  unsigned n_ops, ops_capacity;
  // Lanes that deposited for operation `resolved` in this pass. A lane only
  // marks itself; masks are built once the pass is over (close_deposits), so
  // consecutive lanes do not wait on each other's read-modify-write of a mask.
  unsigned char arrived[kMaxThreads];
  alignas(16) unsigned char scratch[kSimdWidth][kSlotBytes];
};

// Maps the state of operation k (k == x->n_ops); false when out of memory.
__attribute__((noinline)) inline bool add_lane_op(LaneExchange* x) {
  if (x->n_ops == x->ops_capacity) {
    const unsigned cap = x->ops_capacity ? x->ops_capacity * 2 : 64;
    void* mem = mmap(nullptr, cap * sizeof(LaneOp*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    LaneOp** table = static_cast<LaneOp**>(mem);
    for (unsigned i = 0; i < x->n_ops; ++i) table[i] = x->ops[i];
    if (x->ops) munmap(x->ops, x->ops_capacity * sizeof(LaneOp*));
    x->ops = table;
    x->ops_capacity = cap;
  }
  void* mem = mmap(nullptr, sizeof(LaneOp), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return false;
  x->ops[x->n_ops++] = static_cast<LaneOp*>(mem);
  return true;
}

// After a pass over n lanes that deposited for operation `resolved`: each
// SIMD-group's mask of deposited lanes, and whether they were on different functions.
// Out of line: it runs once per round, and inlined (vectorised twice) into
// every replayed statement it was a tenth of the compile time of SIMD-heavy kernels.
__attribute__((noinline)) inline void close_deposits(LaneExchange* x, unsigned n) {
  LaneOp* o = x->ops[x->resolved];
  for (unsigned sg = 0; sg * kSimdWidth < n; ++sg) {
    const unsigned char* arrived = &x->arrived[sg * kSimdWidth];
    const unsigned lanes = n - sg * kSimdWidth < kSimdWidth ? n - sg * kSimdWidth : kSimdWidth;
    uint32_t mask = 0;
    for (unsigned l = 0; l < lanes; ++l) mask |= uint32_t(arrived[l]) << l;
    o->mask[sg] = mask;
    o->mixed[sg] = 0;
    if (!mask) continue;
    const void* const* kinds = &o->lane_kind[sg * kSimdWidth];
    const void* first = kinds[__builtin_ctz(mask)];
    for (uint32_t m = mask; m; m &= m - 1)
      if (kinds[__builtin_ctz(m)] != first) {
        o->mixed[sg] = 1;
        break;
      }
  }
}

// `kind` tells apart the functions of a SIMD-group that meet at one step.
inline __attribute__((always_inline)) SimdView lane_exchange(LaneExchange* x, const void* value, size_t n,
                                                           const void* kind = nullptr) {
  if (x->site) kind = reinterpret_cast<const void*>(uintptr_t(x->site));  // the call site tells operations apart
  const unsigned k = x->op++, lane = x->lane, sg = lane / kSimdWidth, l = lane % kSimdWidth;
#ifdef MPS_SHIM_CHECKED
  x->placeholder = !(x->replaying && k < x->resolved);
#endif
  if (x->replaying && k < x->resolved) {
    const LaneOp* o = x->ops[k];
    uint32_t mask = o->mask[sg];
    if (o->mixed[sg])  // only the lanes on the same function
      for (uint32_t m = mask; m; m &= m - 1)
        if (o->lane_kind[sg * kSimdWidth + unsigned(__builtin_ctz(m))] != kind) mask &= ~(1u << __builtin_ctz(m));
    return SimdView{&o->slots[sg * kSimdWidth], mask, l};
  }
  if (!x->replaying || (k >= x->n_ops && !add_lane_op(x))) {
    (x->replaying ? x->no_memory : x->failed) = true;
    __builtin_memcpy(x->scratch[l], value, n);
    return SimdView{x->scratch, 1u << l, l};
  }
  LaneOp* o = x->ops[k];
  __builtin_memcpy(o->slots[lane], value, n);
  if (k == x->resolved) {
    o->lane_kind[lane] = kind;
    x->arrived[lane] = 1;
    x->deposited = true;
  }
  return SimdView{&o->slots[sg * kSimdWidth], 1u << l, l};  // a placeholder until the operation completes
}
}  // namespace detail

namespace detail {
// The fiber and single-thread paths of simd_exchange / simd_collective stay
// out of line, so that the lane-loop path inlines into the pass over the
// group's threads (a call per thread per pass cost more than the exchange).
template <class T>
__attribute__((noinline)) SimdView fiber_exchange(const T& value) {
  Group* g = tls.group;
  if (!g) {
    Solo& solo = tls.solo;
    __builtin_memcpy(solo.slot[0], &value, sizeof(T));
    return SimdView{solo.slot, 1u, 0u};
  }
  unsigned p, lane;
  Simd* s = simd_arrive(g, &value, sizeof(T), &p, &lane);
  return SimdView{s->slot[p], s->mask[p], lane};
}

template <class R, class T, class Fin>
__attribute__((noinline)) R fiber_collective(const T& value, Fin& fin) {
  Group* g = tls.group;
  if (!g) {
    Solo& solo = tls.solo;
    __builtin_memcpy(solo.slot[0], &value, sizeof(T));
    return fin(SimdView{solo.slot, 1u, 0u});
  }
  unsigned p, lane;
  Simd* s = simd_arrive(g, &value, sizeof(T), &p, &lane);
  R r;
  if (s->reduced[p]) {
    __builtin_memcpy(&r, s->result[p], sizeof(R));
  } else {
    r = fin(SimdView{s->slot[p], s->mask[p], lane});
    __builtin_memcpy(s->result[p], &r, sizeof(R));
    s->reduced[p] = 1;
  }
  return r;
}

template <class R, class T, class Fin>
inline __attribute__((always_inline)) R lane_collective(LaneExchange* x, const T& value, Fin& fin) {
  static const char kind = 0;  // one per instantiation: per SIMD-group function
  const unsigned k = x->op, lane = x->lane, sg = lane / kSimdWidth;
  if (!x->replaying || k >= x->resolved || x->ops[k]->mixed[sg]) return fin(lane_exchange(x, &value, sizeof(T), &kind));
  ++x->op;  // complete: one result per SIMD-group
  LaneOp* o = x->ops[k];
  R r;
  if (o->combined[sg]) {
    __builtin_memcpy(&r, o->result[sg], sizeof(R));
  } else {
    r = fin(SimdView{&o->slots[sg * kSimdWidth], o->mask[sg], lane % kSimdWidth});
    __builtin_memcpy(o->result[sg], &r, sizeof(R));
    o->combined[sg] = 1;
  }
  return r;
}
}  // namespace detail

// Every active lane deposits `value`; returns once all have, with all deposits.
template <class T>
inline __attribute__((always_inline)) SimdView simd_exchange(const T& value) {
  static_assert(sizeof(T) <= kSlotBytes, "SIMD exchange carries at most 16 bytes");
  static_assert(__is_trivially_copyable(T), "SIMD exchange copies bytes");
  detail::ThreadSlots& slots = detail::tls;
  if (!slots.group && slots.lanes) return detail::lane_exchange(slots.lanes, &value, sizeof(T));
  return detail::fiber_exchange(value);
}

// Like simd_exchange, for a result that is the same on every lane: fin(view)
// runs once per operation (by the first lane to resume) and the others copy
// its result. R: at most 16 bytes, trivially copyable.
template <class R, class T, class Fin>
inline __attribute__((always_inline)) R simd_collective(const T& value, Fin fin) {
  static_assert(sizeof(T) <= kSlotBytes && sizeof(R) <= kSlotBytes, "at most 16 bytes");
  static_assert(__is_trivially_copyable(T) && __is_trivially_copyable(R), "SIMD exchange copies bytes");
  detail::ThreadSlots& slots = detail::tls;
  if (!slots.group && slots.lanes) return detail::lane_collective<R>(slots.lanes, value, fin);
  return detail::fiber_collective<R>(value, fin);
}

// simdgroup_barrier: waits for the active lanes of the SIMD-group. `user`:
// the kernel's own simdgroup_barrier (not a reconvergence point).
inline void simd_barrier(bool user = false) {
  detail::Group* g = detail::tls.group;
  __asm__ volatile("" ::: "memory");
  if (!g) return;
#ifdef MPS_SHIM_CHECKED
  ::mps_host::checked::on_simd_arrive(g->running->tid, user);
#else
  (void)user;
#endif
  unsigned p, lane;
  detail::simd_arrive(g, nullptr, 0, &p, &lane);
}

namespace detail {
inline float max_of(float a, float b) { return __builtin_fmaxf(a, b); }
inline double max_of(double a, double b) { return __builtin_fmax(a, b); }
template <class T>
inline T max_of(T a, T b) { return a < b ? b : a; }
}  // namespace detail

// Examples of SIMD-group functions on top of the exchange. Reductions combine
// the active lanes in ascending lane order (same result on every lane).
template <class T>
inline T simd_sum(T x) {
  return simd_collective<T>(x, [](const SimdView& v) {
    uint32_t m = v.mask;
    T acc = v.get<T>(unsigned(__builtin_ctz(m)));
    for (m &= m - 1; m; m &= m - 1) acc = acc + v.get<T>(unsigned(__builtin_ctz(m)));
    return acc;
  });
}

template <class T>
inline T simd_max(T x) {
  return simd_collective<T>(x, [](const SimdView& v) {
    uint32_t m = v.mask;
    T acc = v.get<T>(unsigned(__builtin_ctz(m)));
    for (m &= m - 1; m; m &= m - 1) acc = detail::max_of(acc, v.get<T>(unsigned(__builtin_ctz(m))));
    return acc;
  });
}

// Sum over the active lanes below the caller (0 on the first active lane).
template <class T>
inline T simd_prefix_exclusive_sum(T x) {
  const SimdView v = simd_exchange(x);
  T acc = T(0);
  for (uint32_t m = v.mask & ((1u << v.lane) - 1u); m; m &= m - 1) acc = acc + v.get<T>(unsigned(__builtin_ctz(m)));
  return acc;
}

inline int simd_prefix_exclusive_sum(int x) {  // wraps on overflow, like the GPU
  return int(simd_prefix_exclusive_sum<unsigned>(unsigned(x)));
}

// Value of lane (lane + delta); no wrap: past the end (or at an inactive lane)
// the caller keeps its own value.
template <class T>
inline T simd_shuffle_down(T x, unsigned short delta) {
  const SimdView v = simd_exchange(x);
  const unsigned src = v.lane + delta;
  return v.active(src) ? v.get<T>(src) : x;
}

// Value of lane `lane` (the caller's own value if that lane is not active).
template <class T>
inline T simd_broadcast(T x, unsigned short lane) {
  const SimdView v = simd_exchange(x);
  return v.active(lane) ? v.get<T>(lane) : x;
}

// Bit l set when lane l is active and its expr is true.
inline uint64_t simd_ballot(bool expr) {
  const unsigned char b = expr ? 1 : 0;
  return simd_collective<uint64_t>(b, [](const SimdView& v) {
    uint64_t r = 0;
    for (uint32_t m = v.mask; m; m &= m - 1) {
      const unsigned l = unsigned(__builtin_ctz(m));
      if (v.get<unsigned char>(l)) r |= uint64_t(1) << l;
    }
    return r;
  });
}

}  // namespace fibers
}  // namespace mps_host

#pragma GCC visibility pop

#endif  // MPS_HOST_FIBERS_SUPPORTED
#endif  // MPS_HOST_FIBERS_H
