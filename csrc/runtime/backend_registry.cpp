#include "runtime/backend_registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "util/error.h"
#include "util/json.h"

namespace mps_shim {

namespace {

// Function-local: backends register from static initializers in other files.
std::vector<BackendEntry>& entries() {
  static std::vector<BackendEntry> list;
  return list;
}

std::string names() {
  std::string s;
  for (const BackendEntry& e : entries()) s += (s.empty() ? "" : ", ") + e.name;
  return s;
}

Backend* select_backend() {
  const char* env = std::getenv("MPS_SHIM_BACKEND");
  const std::string wanted = env && *env ? env : "host";
  for (const BackendEntry& e : entries()) {
    if (e.name != wanted) continue;
    const std::string why = e.unavailable();
    MPS_SHIM_CHECK_AS(EngineError, why.empty(), "backend '", wanted, "' (MPS_SHIM_BACKEND) cannot run here: ", why);
    return e.create().release();  // process lifetime: handles may outlive statics
  }
  fail<EngineError>("MPS_SHIM_BACKEND=", wanted, ": no such backend (registered: ", names(), ")");
}

}  // namespace

void register_backend(BackendEntry entry) { entries().push_back(std::move(entry)); }

const std::vector<BackendEntry>& registered_backends() { return entries(); }

std::string backends_json() {
  std::string s;
  for (const BackendEntry& e : entries()) {
    const std::string why = e.unavailable();
    s += concat(s.empty() ? "" : ", ", json_string(e.name), ": ", json_string(why.empty() ? "available" : why));
  }
  return concat("\"backends\": {", s, "}");
}

CompileOptions resolve_compile_options(const std::vector<std::string>& include_dirs, CompileMode mode) {
  std::vector<std::pair<std::string, const char*>> wanted;  // folder, where it came from
  for (const std::string& d : include_dirs) wanted.emplace_back(d, "include folder");
  // MPS_SHIM_INCLUDE_PATH applies to every library, so a folder of it that is missing is skipped.
  if (const char* env = std::getenv("MPS_SHIM_INCLUDE_PATH"); env && *env) {
    const std::string path = env;
    for (size_t pos = 0; pos <= path.size();) {
      size_t colon = path.find(':', pos);
      if (colon == std::string::npos) colon = path.size();
      if (colon > pos) wanted.emplace_back(path.substr(pos, colon - pos), "MPS_SHIM_INCLUDE_PATH folder");
      pos = colon + 1;
    }
  }
  CompileOptions out;
  for (const auto& [dir, origin] : wanted) {
    struct stat st;
    const bool is_dir = !dir.empty() && stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (!is_dir && origin[0] == 'M') continue;  // as compilers skip CPATH's missing folders
    MPS_SHIM_CHECK(is_dir, origin, " '", dir, "' is not a folder");
    std::string absolute = dir;
    if (dir[0] != '/') {  // the compiler runs in a folder of its own
      char cwd[PATH_MAX];
      MPS_SHIM_CHECK(getcwd(cwd, sizeof cwd) != nullptr, "cannot resolve the relative ", origin, " '", dir, "'");
      absolute = concat(cwd, "/", dir);
    }
    out.include_dirs.push_back(absolute);
  }
  out.mode = mode;
  if (const char* eager = std::getenv("MPS_SHIM_EAGER"); mode == CompileMode::Auto && eager && *eager)
    out.mode = std::string(eager) == "0" ? CompileMode::Lazy : CompileMode::Eager;
  return out;
}

// Selected once; a failed selection (unknown name) is retried at the next call,
// so every call reports it.
Backend& backend() {
  static Backend* instance = select_backend();
  return *instance;
}

}  // namespace mps_shim
