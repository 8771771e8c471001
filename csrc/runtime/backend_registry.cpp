#include "runtime/backend_registry.h"

#include <cstdlib>
#include <map>

#include "util/error.h"
#include "util/json.h"

namespace mps_shim {

namespace {

// Function-local: backends register from static initializers in other files.
std::vector<BackendEntry>& entries() {
  static std::vector<BackendEntry> list;
  return list;
}

std::map<std::string, CompileCheck>& checks() {
  static std::map<std::string, CompileCheck> map;
  return map;
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

void register_compile_check(const std::string& backend, CompileCheck check) { checks()[backend] = check; }

void compile_check(const std::string& backend, const std::string& source, const CompileOptions& options) {
  auto it = checks().find(backend);
  MPS_SHIM_CHECK_AS(EngineError, it != checks().end(), "backend '", backend,
                    "' has no compile check (backends with one: cuda)");
  it->second(source, options);
}

void run_requested_compile_checks(const std::string& source, const CompileOptions& options) {
  const char* env = std::getenv("MPS_SHIM_COMPILE_CHECK");
  if (!env || !*env) return;
  const std::string list = env;
  for (size_t pos = 0; pos <= list.size();) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string name = list.substr(pos, end - pos);
    if (!name.empty()) {
      try {
        compile_check(name, source, options);
      } catch (const CompileError& e) {
        throw CompileError(concat("the library does not compile for the ", name, " backend (MPS_SHIM_COMPILE_CHECK):\n",
                                  e.what()));
      }
    }
    pos = end + 1;
  }
}

std::string backends_json() {
  std::string s;
  for (const BackendEntry& e : entries()) {
    const std::string why = e.unavailable();
    s += concat(s.empty() ? "" : ", ", json_string(e.name), ": ", json_string(why.empty() ? "available" : why));
  }
  return concat("\"backends\": {", s, "}");
}

// Selected once; a failed selection (unknown name) is retried at the next call,
// so every call reports it.
Backend& backend() {
  static Backend* instance = select_backend();
  return *instance;
}

}  // namespace mps_shim
