#include "backends/host/toolchain.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <sstream>

#include "util/error.h"
#include "util/fs.h"
#include "util/process.h"

namespace mps_shim::host {

namespace {

std::string which(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = join_path(dir.empty() ? "." : dir, name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

// The first CPU's model and feature flags: kernels built with -march=native
// must not be reused on a different processor sharing the cache folder.
std::string cpu_identity() {
  std::string text, id;
  if (!read_file("/proc/cpuinfo", text)) return "unknown-cpu";
  std::stringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) break;
    if (line.rfind("model name", 0) == 0 || line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0 ||
        line.rfind("CPU part", 0) == 0)
      id += line + "\n";
  }
  return id;
}

Toolchain make_toolchain() {
  Toolchain tc;
  std::stringstream words(std::getenv("CXX") && *std::getenv("CXX") ? std::getenv("CXX") : "g++");
  std::string w;
  while (words >> w) tc.compiler.push_back(w);
  const std::string path = which(tc.compiler[0]);
  char resolved[PATH_MAX];
  const std::string real = realpath(path.c_str(), resolved) ? resolved : path;
  struct stat st {};
  stat(real.c_str(), &st);
  tc.identity = concat(real, " ", st.st_size, " ", st.st_mtime, "\n", cpu_identity());
  // Metal allows contraction into fma (-ffp-contract=fast is g++'s default) but
  // no other fast-math; errno and FP traps do not exist on the GPU.
  tc.flags = {"-std=gnu++17", "-O3", "-march=native", "-fPIC", "-shared", "-fno-math-errno",
              "-fno-trapping-math", "-fsigned-char", "-fvisibility=hidden", "-w"};
#if defined(__x86_64__)
  // Kernels are dlopen'ed, so their thread_locals (the lane-loop SIMD
  // exchange, the fiber scheduler, threadgroup memory) are dynamic TLS. With
  // TLS descriptors a lookup is a register-preserving call whose result the
  // compiler hoists out of loops; __tls_get_addr is a call per access.
  // AArch64 uses descriptors already; clang before 19 lacks the option.
  if (real.find("clang") == std::string::npos) tc.flags.push_back("-mtls-dialect=gnu2");
#endif
  return tc;
}

}  // namespace

std::string Toolchain::version() const {
  std::vector<std::string> argv = compiler;
  argv.push_back("--version");
  const ProcessResult r = run_process(argv);
  if (r.exit_code != 0) return "unavailable (" + compiler[0] + " --version failed)";
  return r.out.substr(0, r.out.find('\n'));
}

const Toolchain& toolchain() {
  static const Toolchain tc = make_toolchain();
  return tc;
}

}  // namespace mps_shim::host
