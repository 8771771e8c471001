#include "backends/cuda/cuda_compiler.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_api.h"
#include "backends/host/kernel_cache.h"
#include "util/error.h"
#include "util/fs.h"

namespace mps_shim::cuda {

namespace {

// An error inside the standard-library headers, in a template the user's code
// instantiated: NVRTC names the user's line only at the end ("... at line 3 of
// library.metal"), so that line is put first, where g++ users find it.
std::string name_the_users_line(const std::string& diagnostics) {
  const std::string main_file = "library.metal";
  const size_t first_error = diagnostics.find(": error: ");
  if (first_error == std::string::npos) return diagnostics;
  const size_t line_start = diagnostics.rfind('\n', first_error) + 1;  // npos + 1 == 0
  if (diagnostics.compare(line_start, main_file.size() + 1, main_file + ":") == 0) return diagnostics;
  const std::string marker = " of " + main_file;
  for (size_t at = diagnostics.find("at line ", first_error); at != std::string::npos;
       at = diagnostics.find("at line ", at + 1)) {
    const size_t digits = at + 8, stop = diagnostics.find_first_not_of("0123456789", digits);
    if (stop == digits || stop == std::string::npos || diagnostics.compare(stop, marker.size(), marker) != 0) continue;
    return concat(main_file, ":", diagnostics.substr(digits, stop - digits),
                  ": error: in standard-library code this line uses:\n", diagnostics);
  }
  return diagnostics;
}

// NVRTC writes `library.metal(12): error: ...`; the host compiler's form,
// `library.metal:12: error: ...`, is what users of the host backend see.
std::string host_style_diagnostics(const std::string& log) {
  std::string out;
  for (size_t pos = 0; pos < log.size();) {
    size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(pos, end - pos);
    const size_t open = line.find('('), close = line.find("): ");
    if (open != std::string::npos && close != std::string::npos && open < close &&
        line.find_first_not_of("0123456789", open + 1) == close)
      line = line.substr(0, open) + ":" + line.substr(open + 1, close - open - 1) + ":" + line.substr(close + 2);
    out += line + "\n";
    pos = end + 1;
  }
  return name_the_users_line(out);
}

}  // namespace

std::string nvrtc_version() {
  const NvrtcApi* api = nvrtc_api(nullptr);
  int major = 0, minor = 0;
  if (!api || api->nvrtcVersion(&major, &minor) != 0) return "";
  return concat(major, ".", minor);
}

bool is_ptxas_failure(const std::string& message) { return message.find("ptxas") != std::string::npos; }

std::string compile_cuda(const std::string& source, const std::string& arch, bool unoptimised_ptxas) {
  std::string why;
  const NvrtcApi* api = nvrtc_api(&why);
  MPS_SHIM_CHECK_AS(EngineError, api != nullptr, "the CUDA backend cannot compile: ", why);
  const std::string& cxx_include = libcudacxx_include_dirs(&why);
  MPS_SHIM_CHECK_AS(EngineError, !cxx_include.empty(), "the CUDA backend cannot compile: ", why);
  if (const char* keep = std::getenv("MPS_SHIM_KEEP_CUDA"); keep && *keep) write_file_atomic(keep, source);
  host::KernelCache& cache = host::KernelCache::instance();
  const std::string key = cache.key(source, concat("cuda|", arch, unoptimised_ptxas ? "|ptxas-O0" : "", "|nvrtc ",
                                                    nvrtc_version(), "|", cxx_include));
  if (std::optional<std::string> image = cache.read(key, ".cuda")) return *image;

  const std::string& headers = cache.include_dir();
  std::vector<std::string> options = {
      "--gpu-architecture=" + arch, "--device-as-default-execution-space", "-std=c++20", "--device-int128",
      "-I" + headers, "-I" + headers + "/cuda_engine/std_shim", "-I" + cxx_include,
      "--diag-suppress=186,177,550,128,68,2361,20012,20013,20014,20015"};
  if (unoptimised_ptxas) options.push_back("--ptxas-options=-O0");
  std::vector<const char*> argv;
  for (const std::string& o : options) argv.push_back(o.c_str());
  nvrtcProgram prog = nullptr;
  MPS_SHIM_CHECK_AS(EngineError, api->nvrtcCreateProgram(&prog, source.c_str(), "library.cu", 0, nullptr, nullptr) == 0,
                    "NVRTC could not create a program");
  std::unique_ptr<_nvrtcProgram, void (*)(nvrtcProgram)> guard(prog, [](nvrtcProgram p) {
    nvrtc_api(nullptr)->nvrtcDestroyProgram(&p);
  });
  const nvrtcResult result = api->nvrtcCompileProgram(prog, int(argv.size()), argv.data());
  size_t log_size = 0;
  api->nvrtcGetProgramLogSize(prog, &log_size);
  std::string log(log_size, '\0');
  if (log_size) api->nvrtcGetProgramLog(prog, log.data());
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  if (result != 0) throw CompileError(host_style_diagnostics(log));
  const bool ptx = arch.rfind("compute_", 0) == 0;
  size_t size = 0;
  (ptx ? api->nvrtcGetPTXSize : api->nvrtcGetCUBINSize)(prog, &size);
  std::string image(size, '\0');
  (ptx ? api->nvrtcGetPTX : api->nvrtcGetCUBIN)(prog, image.data());
  cache.store(key, image, ".cuda");
  return image;
}

}  // namespace mps_shim::cuda
