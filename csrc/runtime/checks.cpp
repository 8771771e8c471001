#include "runtime/checks.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/json.h"
#include "util/process.h"

namespace mps_shim::kernel_checks {

namespace {

// Distinct (kind, place) reports a dispatch keeps before resolving lines; the rest are counted.
constexpr size_t kMaxRaw = 256;
// Reports kept as data between two take_reports_json calls.
constexpr size_t kMaxKept = 1000;

Mode env_mode() {
  const char* v = std::getenv("MPS_SHIM_CHECKED");
  if (!v || !*v || std::strcmp(v, "0") == 0) return Mode::Off;
  if (std::strcmp(v, "warn") == 0) return Mode::WarnOnly;
  return Mode::On;
}

std::atomic<int32_t>& mode_slot() {
  static std::atomic<int32_t> m{int32_t(env_mode())};
  return m;
}

size_t max_reports() {
  const char* v = std::getenv("MPS_SHIM_CHECKED_MAX_REPORTS");
  const long n = v && *v ? std::atol(v) : 10;
  return n > 0 ? size_t(n) : 10;
}

const char* kind_of(CheckKind k) {
  switch (k) {
    case CheckKind::Barrier: case CheckKind::SimdBarrier: return "synccheck";
    case CheckKind::InactiveLane: case CheckKind::Uninitialized: return "initcheck";
    case CheckKind::OutOfBounds: case CheckKind::Misaligned: case CheckKind::ThreadgroupBounds: return "memcheck";
    case CheckKind::Race: return "racecheck";
  }
  return "check";
}

const char* check_of(CheckKind k) {
  switch (k) {
    case CheckKind::Barrier: return "barrier";
    case CheckKind::SimdBarrier: return "simdgroup_barrier";
    case CheckKind::InactiveLane: return "inactive_lane";
    case CheckKind::OutOfBounds: return "out_of_bounds";
    case CheckKind::Misaligned: return "misaligned";
    case CheckKind::ThreadgroupBounds: return "threadgroup_bounds";
    case CheckKind::Race: return "race";
    case CheckKind::Uninitialized: return "uninitialized";
  }
  return "unknown";
}

// Reports about memory: offset and access size apply.
bool about_memory(CheckKind k) { return int(k) >= int(CheckKind::OutOfBounds); }

struct Place {
  std::string file;
  int line = 0;
  bool operator==(const Place& o) const { return file == o.file && line == o.line; }
  bool operator<(const Place& o) const { return file != o.file ? file < o.file : line < o.line; }
};

// The translation was compiled in a private build folder: name its files as the user did.
std::string tidy_file(std::string file) {
  // The lane-loop copy of a function is marked as its file "(lane loops)": the same lines.
  const std::string copy = " (lane loops)";
  if (file.size() > copy.size() && file.compare(file.size() - copy.size(), copy.size(), copy) == 0)
    file.resize(file.size() - copy.size());
  size_t build = file.find("/.build-");
  if (build == std::string::npos) build = file.find("/mps_shim-build-");
  if (build != std::string::npos) {
    const size_t slash = file.find('/', build + 1);
    if (slash != std::string::npos) file = file.substr(slash + 1);
  }
  return file;
}

// The engine's own code: its headers (mps_*.h) and the generated entry points.
bool engine_file(const std::string& file) {
  if (file.empty() || file == "??" || file[0] == '<') return true;
  const size_t slash = file.rfind('/');
  const std::string base = slash == std::string::npos ? file : file.substr(slash + 1);
  return base.rfind("mps_", 0) == 0 && base.size() > 2 && base.compare(base.size() - 2, 2, ".h") == 0;
}

// Return addresses -> inline chains of source places (innermost first), by
// one addr2line run per module over the line tables checked modules carry.
class Resolver {
 public:
  void want(void* pc) {
    if (pc) pcs_.insert(pc);
  }
  void run() {
    std::map<std::string, std::vector<std::pair<void*, uintptr_t>>> by_module;
    for (void* pc : pcs_) {
      Dl_info info;
      if (!dladdr(static_cast<char*>(pc) - 1, &info) || !info.dli_fname) continue;
      by_module[info.dli_fname].push_back({pc, uintptr_t(pc) - 1 - uintptr_t(info.dli_fbase)});
    }
    for (const auto& [module, list] : by_module) {
      std::vector<std::string> argv = {"addr2line", "-i", "-a", "-e", module};
      char buf[32];
      for (const auto& [pc, rel] : list) {
        std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(rel));
        argv.push_back(buf);
      }
      const ProcessResult r = run_process(argv, "", 60);
      if (std::getenv("MPS_SHIM_CHECKED_DEBUG")) std::fprintf(stderr, "%s\n", r.out.c_str());
      if (r.exit_code != 0) continue;
      std::istringstream in(r.out);
      std::string text;
      size_t index = 0;
      std::vector<Place>* chain = nullptr;
      while (std::getline(in, text)) {
        if (text.rfind("0x", 0) == 0) {
          chain = index < list.size() ? &chains_[list[index++].first] : nullptr;
          continue;
        }
        if (!chain) continue;
        const size_t paren = text.find(" (discriminator");
        if (paren != std::string::npos) text.resize(paren);
        const size_t colon = text.rfind(':');
        if (colon == std::string::npos) continue;
        chain->push_back({tidy_file(text.substr(0, colon)), std::atoi(text.c_str() + colon + 1)});
      }
    }
  }
  // The Metal source places of a stack of return addresses, innermost first.
  std::vector<Place> user_places(const std::vector<void*>& pcs) const {
    std::vector<Place> out;
    for (void* pc : pcs) {
      auto it = chains_.find(pc);
      if (it == chains_.end()) continue;
      for (const Place& p : it->second)
        if (!engine_file(p.file) && p.line > 0) out.push_back(p);
    }
    return out;
  }

 private:
  std::set<void*> pcs_;
  std::map<void*, std::vector<Place>> chains_;
};

std::string xyz(const uint32_t v[3]) { return concat("(", v[0], ", ", v[1], ", ", v[2], ")"); }

std::string where(const std::string& file, int line) {
  return line > 0 ? concat(file, ":", line) : std::string("<unknown line>");
}

std::string access_word(int is_write) { return is_write == 1 ? "write" : is_write == 0 ? "read" : "access"; }

std::string describe(const Report& r) {
  const RawReport& x = r.raw;
  std::string what;
  const std::string buffer = x.buffer >= 0 ? concat("buffer ", x.buffer, r.param.empty() ? "" : concat(" (", r.param, ")"))
                                           : std::string("");
  switch (x.kind) {
    case CheckKind::Barrier:
      what = concat("threadgroup_barrier reached here while thread ", x.other_thread,
                    " of the threadgroup waited at a different barrier (", where(r.other_file, r.other_line),
                    "); every thread that has not returned must reach the same barrier");
      break;
    case CheckKind::SimdBarrier:
      what = concat("simdgroup_barrier reached here but not by lane ", x.other_thread % 32,
                    " (thread ", x.other_thread, "), which has not returned",
                    r.other_line > 0 ? concat(" and waits at ", where(r.other_file, r.other_line)) : std::string(""));
      break;
    case CheckKind::InactiveLane:
      what = concat("a SIMD-group function read lane ", x.lane,
                    ", which is inactive (past the end of a partial SIMD-group, returned, or off this path): "
                    "Metal leaves the value undefined");
      break;
    case CheckKind::OutOfBounds:
      what = concat(access_word(x.is_write), " of ", x.access_size, " bytes at byte offset ", x.offset, " of ", buffer,
                    ", outside its ", x.extent, " bytes",
                    x.before ? concat(" (and the ", x.before, " of its storage before the bound offset)") : std::string());
      break;
    case CheckKind::Misaligned:
      what = concat(access_word(x.is_write), " of ", x.access_size, " bytes at byte offset ", x.offset, " of ",
                    buffer.empty() ? std::string(x.what.empty() ? "memory" : x.what) : buffer,
                    ", not aligned to ", x.alignment, " bytes");
      break;
    case CheckKind::ThreadgroupBounds:
      what = concat(access_word(x.is_write), " of ", x.access_size, " bytes at byte offset ", x.offset,
                    " of threadgroup memory ", x.what.empty() ? std::string("") : concat("'", x.what, "' "),
                    x.buffer >= 0 ? concat("[[threadgroup(", x.buffer, ")]] ") : std::string(""), "outside its ",
                    x.extent, " bytes");
      break;
    case CheckKind::Race:
      what = concat(access_word(x.is_write), " of threadgroup memory ",
                    x.what.empty() ? std::string("") : concat("'", x.what, "' "), "at byte offset ", x.offset,
                    " races with a ", access_word(x.other_is_write), " by thread ", x.other_thread,
                    r.other_line > 0 ? concat(" at ", where(r.other_file, r.other_line)) : std::string(""),
                    " with no barrier between them");
      break;
    case CheckKind::Uninitialized:
      what = concat("read of threadgroup memory ", x.what.empty() ? std::string("") : concat("'", x.what, "' "),
                    "at byte offset ", x.offset, " that no thread of the threadgroup wrote in this dispatch");
      break;
  }
  std::string out = concat(where(r.file, r.line), ": ", r.kind, ": kernel '", r.kernel, "': ", what,
                           "; thread_position_in_grid ", xyz(x.in_grid), ", threadgroup_position_in_grid ",
                           xyz(x.group), ", thread_position_in_threadgroup ", xyz(x.in_group), ", SIMD lane ",
                           x.simd_lane, " of SIMD-group ", x.simd_group);
  if (r.count > 1) out += concat(" (", r.count, " times)");
  return out;
}

std::string json_ints(const uint32_t v[3]) { return concat("[", v[0], ", ", v[1], ", ", v[2], "]"); }

std::string to_json(const Report& r) {
  const RawReport& x = r.raw;
  auto opt = [](bool present, const std::string& v) { return present ? v : std::string("null"); };
  return concat("{\"kernel\": ", json_string(r.kernel), ", \"kind\": ", json_string(r.kind), ", \"check\": ",
                json_string(r.check), ", \"file\": ", json_string(r.file), ", \"line\": ", r.line,
                ", \"thread_position_in_grid\": ", json_ints(x.in_grid), ", \"threadgroup_position_in_grid\": ",
                json_ints(x.group), ", \"thread_position_in_threadgroup\": ", json_ints(x.in_group),
                ", \"simd_group\": ", x.simd_group, ", \"simd_lane\": ", x.simd_lane,
                ", \"buffer\": ", opt(x.buffer >= 0, std::to_string(x.buffer)),
                ", \"param\": ", opt(!r.param.empty(), json_string(r.param)),
                ", \"offset\": ", opt(about_memory(x.kind), std::to_string(x.offset)),
                ", \"extent\": ", opt(x.kind == CheckKind::OutOfBounds || x.kind == CheckKind::ThreadgroupBounds, std::to_string(x.extent)),
                ", \"access_size\": ", opt(about_memory(x.kind), std::to_string(x.access_size)),
                ", \"is_write\": ", opt(x.is_write >= 0, x.is_write ? "true" : "false"),
                ", \"alignment\": ", opt(x.kind == CheckKind::Misaligned, std::to_string(x.alignment)),
                ", \"lane\": ", opt(x.lane >= 0, std::to_string(x.lane)),
                ", \"other_thread\": ", opt(x.other_thread >= 0, std::to_string(x.other_thread)),
                ", \"other_file\": ", opt(!r.other_file.empty(), json_string(r.other_file)),
                ", \"other_line\": ", opt(r.other_line > 0, std::to_string(r.other_line)),
                ", \"what\": ", opt(!x.what.empty(), json_string(x.what)), ", \"count\": ", r.count,
                ", \"message\": ", json_string(r.message), "}");
}

std::mutex& kept_mutex() {
  static auto* m = new std::mutex();
  return *m;
}
std::vector<std::string>& kept() {
  static auto* v = new std::vector<std::string>();
  return *v;
}

}  // namespace

Mode mode() { return Mode(mode_slot().load()); }

Mode set_mode(Mode m) { return Mode(mode_slot().exchange(int32_t(m))); }

void Sink::add(RawReport r) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < raw_.size(); ++i) {
    const RawReport& o = raw_[i];
    if (o.kind == r.kind && o.pcs == r.pcs && o.other_pcs == r.other_pcs && o.line == r.line &&
        o.other_line == r.other_line && o.file == r.file) {
      ++counts_[i];
      return;
    }
  }
  if (raw_.size() >= kMaxRaw) {
    ++dropped_;
    return;
  }
  raw_.push_back(std::move(r));
  counts_.push_back(1);
}

bool Sink::empty() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return raw_.empty();
}

std::vector<Report> Sink::finish(const std::string& kernel, const std::function<std::string(int)>& param_name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Resolver resolver;
  for (const RawReport& r : raw_) {
    for (void* pc : r.pcs) resolver.want(pc);
    for (void* pc : r.other_pcs) resolver.want(pc);
  }
  resolver.run();
  std::vector<Report> out;
  const size_t limit = max_reports();
  for (size_t i = 0; i < raw_.size(); ++i) {
    const RawReport& x = raw_[i];
    const std::vector<Place> mine = resolver.user_places(x.pcs), other = resolver.user_places(x.other_pcs);
    // Two threads at the same source barrier reached through copies of its code: not a mismatch.
    if (x.kind == CheckKind::Barrier && mine == other && !mine.empty() && x.line == x.other_line && x.file == x.other_file) continue;
    Report r;
    r.kernel = kernel;
    r.kind = kind_of(x.kind);
    r.check = check_of(x.kind);
    if (!mine.empty()) r.file = mine.front().file, r.line = mine.front().line;
    if (!other.empty()) r.other_file = other.front().file, r.other_line = other.front().line;
    if (x.line > 0) r.file = tidy_file(x.file), r.line = x.line;  // the engine's own knowledge comes first
    if (x.other_line > 0) r.other_file = tidy_file(x.other_file), r.other_line = x.other_line;
    r.raw = x;
    r.count = counts_[i];
    if (x.buffer >= 0 && about_memory(x.kind) && x.kind != CheckKind::ThreadgroupBounds) r.param = param_name(x.buffer);
    bool merged = false;
    for (Report& o : out)
      if (o.kind == r.kind && o.check == r.check && o.file == r.file && o.line == r.line) {
        o.count += r.count;
        merged = true;
        break;
      }
    if (merged) continue;
    if (out.size() >= limit) continue;
    out.push_back(std::move(r));
  }
  for (Report& r : out) r.message = describe(r);
  return out;
}

void conclude(const std::string& kernel, const std::vector<Report>& reports, const std::string& also) {
  if (reports.empty()) {
    if (!also.empty()) throw DispatchError(also);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(kept_mutex());
    for (const Report& r : reports)
      if (kept().size() < kMaxKept) kept().push_back(to_json(r));
  }
  std::string text = concat("kernel '", kernel, "': checked mode found ", reports.size(),
                            reports.size() == 1 ? " problem" : " problems", ":");
  for (const Report& r : reports) text += "\n  " + r.message;
  if (!also.empty()) text += "\nand the dispatch failed: " + also;
  if (mode() == Mode::WarnOnly && also.empty()) {
    std::fprintf(stderr, "mps_shim: warning: %s\n", text.c_str());
    std::fflush(stderr);
    return;
  }
  throw KernelCheckError(text);
}

std::string take_reports_json() {
  std::lock_guard<std::mutex> lock(kept_mutex());
  std::string out = "[";
  for (size_t i = 0; i < kept().size(); ++i) out += (i ? ", " : "") + kept()[i];
  kept().clear();
  return out + "]";
}

}  // namespace mps_shim::kernel_checks
