#include "backends/host/module_builder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "backends/host/cxx_emitter.h"
#include "backends/host/kernel_cache.h"
#include "backends/host/lane_loops.h"
#include "backends/host/toolchain.h"
#include "frontend/parser.h"
#include "frontend/preprocess.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/process.h"

namespace mps_shim::host {

namespace {

// Removes a build folder however compilation ends.
struct ScopedDir {
  std::string path;
  ~ScopedDir() { remove_tree(path); }
};

// Only the lane-loop copies of kernels (lane_loops.h) failed to compile;
// the message is the first error, `lines` where in library.metal they were.
struct LaneLoopCopyError : std::runtime_error {
  LaneLoopCopyError(const std::string& first, std::vector<int> lines)
      : std::runtime_error(first), lines(std::move(lines)) {}
  std::vector<int> lines;
};

bool is_error_line(const std::string& text) {
  return text.find(": error: ") != std::string::npos && !text.empty() && text[0] != ' ';
}

template <typename F>
void for_each_line(const std::string& err, F f) {
  for (size_t pos = 0; pos < err.size();) {
    size_t nl = err.find('\n', pos);
    if (nl == std::string::npos) nl = err.size();
    f(err.substr(pos, nl - pos));
    pos = nl + 1;
  }
}

bool in_copy(const std::string& text) {
  return text.substr(0, text.find(": error: ")).find(kCopySuffix) != std::string::npos;
}

// True when every error is about a lane-loop copy (none about the user's own lines).
bool only_copies_failed(const std::string& err) {
  bool copies = false, originals = false;
  for_each_line(err, [&](const std::string& text) {
    if (!is_error_line(text)) return;
    (in_copy(text) ? copies : originals) = true;
  });
  return copies && !originals;
}

// The library.metal lines of the errors in lane-loop copies.
std::vector<int> copy_lines(const std::string& err) {
  std::vector<int> lines;
  const std::string prefix = concat(frontend::kSourceName, kCopySuffix, ":");
  for_each_line(err, [&](const std::string& text) {
    if (is_error_line(text) && text.rfind(prefix, 0) == 0) lines.push_back(std::atoi(text.c_str() + prefix.size()));
  });
  return lines;
}

std::string first_error(const std::string& err) {
  std::string first;
  for_each_line(err, [&](const std::string& text) {
    if (first.empty() && is_error_line(text)) first = text.substr(text.find(": error: ") + 9);
  });
  return first;
}

// Keeps the compiler's messages about the user's source and drops the
// "In file included from" chatter; the first lines are the useful ones.
// Messages about the lane-loop copies of kernels (lane_loops.h) repeat
// those about the original lines, so they go when the original has errors.
std::string tidy_diagnostics(const std::string& err) {
  struct Line {
    std::string text;
    bool diagnostic, copy;  // starts a `file:line:col: kind:` message; in a lane-loop copy
  };
  std::vector<Line> lines;
  bool original_errors = false;
  for (size_t pos = 0; pos < err.size();) {
    size_t nl = err.find('\n', pos);
    if (nl == std::string::npos) nl = err.size();
    std::string text = err.substr(pos, nl - pos);
    pos = nl + 1;
    if (text.rfind("In file included from", 0) == 0 || text.rfind("                 from", 0) == 0) continue;
    const size_t kind = text.find(": error: ") != std::string::npos ? text.find(": error: ") : text.find(": note: ");
    const bool diagnostic = kind != std::string::npos && text[0] != ' ';
    const bool copy = diagnostic && text.substr(0, kind).find(kCopySuffix) != std::string::npos;
    if (diagnostic && !copy && text.find(": error: ") != std::string::npos) original_errors = true;
    lines.push_back({std::move(text), diagnostic, copy});
  }
  std::string out;
  size_t kept = 0;
  bool dropping = false;
  for (size_t i = 0; i < lines.size() && kept < 80; ++i) {
    const Line& l = lines[i];
    if (l.diagnostic) {
      dropping = original_errors && l.copy;
    } else if (!l.text.empty() && l.text[0] != ' ') {  // "file: In function ...": goes with the next message
      size_t next = i + 1;
      while (next < lines.size() && !lines[next].diagnostic) ++next;
      dropping = original_errors && next < lines.size() && lines[next].copy;
    }
    if (dropping) continue;
    out += l.text + "\n";
    ++kept;
  }
  return out;
}

// One compiler run: the module's bytes. Throws CompileError for the user's
// errors, LaneLoopCopyError when only the lane-loop copies of kernels failed.
// *lane_loops tells whether the translation holds lane-loop code.
std::string compile_once(const ParsedSource& src, const LoweringOptions& options, const std::string& keep_name,
                         bool* lane_loops = nullptr) {
  KernelCache& cache = KernelCache::instance();
  const Toolchain& tc = toolchain();
  ScopedDir work{cache.work_dir()};
  const std::string include_dir = cache.include_dir();
  start_precompiled_header(include_dir);
  const HostLibrary lowered = lower_for_host(src.lexed, src.parsed, options);
  if (lane_loops)
    *lane_loops = std::any_of(lowered.kernels.begin(), lowered.kernels.end(), [](const frontend::KernelDecl& k) {
      return k.execution == frontend::KernelDecl::Execution::LaneLoops;
    });
  const std::string cxx = emit_cxx(src.preprocessed, lowered);
  write_file_atomic(join_path(work.path, "library.cpp"), cxx);
  // For engine developers: the translation of the last module compiled.
  // A folder (ending in '/') keeps every one, named by `keep_name`.
  if (const char* keep = std::getenv("MPS_SHIM_KEEP_CXX"); keep && *keep) {
    std::string path = keep;
    if (path.back() == '/') path += keep_name + ".cpp";
    write_file_atomic(options.lane_loops ? path : path + ".fibers", cxx);  // the fallback build beside it
  }

  std::vector<std::string> argv = tc.compiler;
  argv.insert(argv.end(), tc.flags.begin(), tc.flags.end());
  if (options.checked)  // line tables and frame pointers: reports walk the frames to Metal lines (runtime/checks.cpp)
    argv.insert(argv.end(), {"-O2", "-g1", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls"});
  argv.insert(argv.end(), {"-I" + include_dir, "-include", options.checked ? "mps_host_metal_checked.h" : "mps_host_metal.h",
                           "library.cpp", "-o", "library.so"});
  const ProcessResult r = run_process(argv, work.path);
  if (r.exit_code != 0) {
    if (options.lane_loops && only_copies_failed(r.err)) throw LaneLoopCopyError(first_error(r.err), copy_lines(r.err));
    throw CompileError(concat("Metal compilation failed:\n", tidy_diagnostics(r.err)));
  }
  std::string module;
  MPS_SHIM_CHECK_AS(EngineError, read_file(join_path(work.path, "library.so"), module), "the compiler wrote no module");
  return module;
}

}  // namespace

std::string preprocess_source(const std::string& source, const std::vector<std::string>& include_dirs) {
  KernelCache& cache = KernelCache::instance();
  ScopedDir work{cache.work_dir()};
  write_file_atomic(join_path(work.path, frontend::kSourceName), source);
  return frontend::preprocess(toolchain().compiler, work.path, cache.include_dir(), include_dirs);
}

ParsedSource::ParsedSource(std::string text)
    : preprocessed(std::move(text)),
      lexed(frontend::lex(preprocessed, frontend::kSourceName)),
      parsed(frontend::parse_library(lexed)) {}

std::string build_module(const ParsedSource& src, LoweringOptions options, const std::string& keep_name) {
  bool lane_loops = false;  // whether the last translation had lane-loop code
  try {
    // Lane loops are an optimisation: a kernel whose translation does not
    // compile runs on fibers, and says why (the module is cached under the
    // same key, so the failed translation is not tried again). First only
    // the kernels whose copies failed, then, if that does not settle it, all.
    for (int round = 0;; ++round) {
      try {
        return compile_once(src, options, keep_name, &lane_loops);
      } catch (const LaneLoopCopyError& e) {
        const size_t before = options.lane_loop_error_lines.size();
        if (options.lane_loop_error.empty()) options.lane_loop_error = e.what();
        options.lane_loop_error_lines.insert(options.lane_loop_error_lines.end(), e.lines.begin(), e.lines.end());
        if (round < 3 && !e.lines.empty() && options.lane_loop_error_lines.size() > before) continue;
        options.lane_loops = false;
        options.lane_loops_off_reason = concat("its lane-loop translation did not compile (", e.what(), ")");
        return compile_once(src, options, keep_name);
      }
    }
  } catch (const CompileError& e) {
    // Checked pointers are an addition: a translation with them that does not
    // compile (a template deducing `T*` from one) is rebuilt without them.
    if (options.checked && options.check_buffers) {
      options.check_buffers = false;
      options.buffers_unchecked_reason = concat("its checked-pointer translation did not compile: ", first_error(e.what()));
      return build_module(src, options, keep_name);
    }
    // An error the compiler reports at the user's line may still come from a
    // lane-loop copy (a template instantiated from one): if the module
    // compiles without them, it runs on fibers; if not, the error is the user's.
    if (!options.lane_loops || !lane_loops) throw;
    options.lane_loops = false;
    options.lane_loops_off_reason = "its lane-loop translation did not compile";
    return compile_once(src, options, keep_name);
  }
}

// Precompiles mps_host_metal.h once per include folder, so later kernel
// compiles load it instead of parsing it (~0.3 s instead of ~1.5 s). The
// build takes a few seconds, so it runs in the background, detached (it
// finishes even if this process exits), and compiles meanwhile parse the
// header. A lock file keeps concurrent processes from building it twice.
void start_precompiled_header(const std::string& include_dir) {
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  const std::string pch = join_path(include_dir, "mps_host_metal.h.gch");
  if (access(pch.c_str(), R_OK) == 0) return;
  const std::string lock_file = pch + ".building";
  struct stat st;
  if (stat(lock_file.c_str(), &st) == 0 && time(nullptr) - st.st_mtime < 600) return;  // under way
  const int fd = open(lock_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  close(fd);
  const Toolchain& tc = toolchain();
  const std::string tmp = concat(pch, ".tmp", getpid());
  std::string cmd;
  for (const std::string& w : tc.compiler) cmd += shell_quote(w) + " ";
  for (const std::string& f : tc.flags) cmd += shell_quote(f) + " ";
  // -I as for kernels: the headers include the kernel schema from the include folder's root.
  cmd += concat("-I", shell_quote(include_dir), " -x c++-header ", shell_quote(join_path(include_dir, "mps_host_metal.h")),
                " -o ", shell_quote(tmp),
                " && mv -f ", shell_quote(tmp), " ", shell_quote(pch), "; rm -f ", shell_quote(tmp), " ",
                shell_quote(lock_file));
  if (!spawn_detached_shell(cmd)) unlink(lock_file.c_str());
}

}  // namespace mps_shim::host
