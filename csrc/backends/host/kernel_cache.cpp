#include "backends/host/kernel_cache.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "backends/host/embedded_headers.h"
#include "backends/host/toolchain.h"
#include "frontend/preprocess.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sha256.h"
#include "version.h"

namespace mps_shim::host {

namespace {

constexpr char kTrailerMagic[8] = {'M', 'P', 'S', 'S', 'H', 'I', 'M', '1'};
constexpr size_t kTrailerSize = 8 + 32 + 8;

std::string trailer_for(const std::string& module) {
  unsigned char digest[32];
  Sha256().update(module).digest(digest);
  const uint64_t size = module.size();
  std::string t(kTrailerMagic, 8);
  t.append(reinterpret_cast<const char*>(digest), 32);
  t.append(reinterpret_cast<const char*>(&size), 8);
  return t;
}

// A module file is the shared object followed by its trailer; the dynamic
// loader ignores bytes past the ELF image.
bool verified(const std::string& file) {
  if (file.size() < kTrailerSize) return false;
  const std::string module = file.substr(0, file.size() - kTrailerSize);
  return file.compare(module.size(), kTrailerSize, trailer_for(module)) == 0;
}

std::string scratch_root;  // removed at exit: only used when the cache is off
void remove_scratch() { remove_tree(scratch_root); }

std::string temp_root() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("MPS_SHIM_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return join_path(x, "mps_shim");
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    const passwd* pw = getpwuid(geteuid());
    home = pw ? pw->pw_dir : nullptr;
  }
  return home ? join_path(join_path(home, ".cache"), "mps_shim") : "";
}

KernelCache::KernelCache() {
  const std::string dir = default_cache_dir();
  const std::string why = prepare_private_dir(dir);
  if (why.empty()) dir_ = dir;
  else disabled_reason_ = why;
  Sha256 h;
  for (unsigned i = 0; i < kEmbeddedHeaderCount; ++i) h.update(kEmbeddedHeaders[i].name).update(kEmbeddedHeaders[i].text);
  headers_hash_ = h.hex_digest();
}

KernelCache& KernelCache::instance() {
  static KernelCache* cache = new KernelCache();
  return *cache;
}

const std::string& KernelCache::include_dir() {
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  if (!include_dir_.empty()) return include_dir_;
  if (dir_.empty()) {  // private headers for this process only
    scratch_root = make_temp_dir(temp_root(), "mps_shim-include-");
    std::atexit(remove_scratch);
  }
  const std::string parent = dir_.empty() ? scratch_root : dir_;
  // Named for the headers and the toolchain: the folder also holds a
  // precompiled header, valid only for one compiler and set of flags.
  Sha256 h;
  h.update(headers_hash_).update(toolchain().identity);
  for (const std::string& f : toolchain().flags) h.update(f).update(" ", 1);
  const std::string final_dir = join_path(parent, "include-" + h.hex_digest().substr(0, 16));
  if (access(join_path(final_dir, "mps_host_metal.h").c_str(), R_OK) == 0 && !dir_.empty()) {
    include_dir_ = final_dir;
    return include_dir_;
  }
  // Build it under a temporary name, then rename: another process may race us.
  const std::string tmp = make_temp_dir(parent, ".include-");
  for (unsigned i = 0; i < kEmbeddedHeaderCount; ++i) {
    const std::string name = kEmbeddedHeaders[i].name;  // metal/..., host/... or the entry header
    for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
      mkdir(join_path(tmp, name.substr(0, slash)).c_str(), 0700);
    write_file_atomic(join_path(tmp, name), kEmbeddedHeaders[i].text);
  }
  for (const std::string& stub : frontend::metal_header_names())
    write_file_atomic(join_path(tmp, stub), "// mps_shim: the library lives in mps_host_metal.h\n"
                                            "#include <metal/mps_metal_constants.h>\n");
  if (rename(tmp.c_str(), final_dir.c_str()) != 0) remove_tree(tmp);  // someone else won
  include_dir_ = final_dir;
  return include_dir_;
}

std::string KernelCache::key(const std::string& source, const std::string& options) {
  const Toolchain& tc = toolchain();
  Sha256 h;
  h.update(std::string(MPS_SHIM_VERSION)).update("\0", 1).update(std::string(MPS_SHIM_BUILD_ID));
  h.update("\0", 1).update(source).update("\0", 1).update(tc.identity).update("\0", 1);
  for (const std::string& f : tc.compiler) h.update(f).update(" ", 1);
  for (const std::string& f : tc.flags) h.update(f).update(" ", 1);
  h.update("\0", 1).update(headers_hash_).update("\0", 1).update(options);
  return h.hex_digest();
}

std::string KernelCache::lookup(const std::string& key, const char* ext) {
  if (dir_.empty()) return "";
  const std::string path = join_path(dir_, key + ext);
  std::string file;
  if (!read_file(path, file)) return "";
  if (verified(file)) return path;
  unlink(path.c_str());  // corrupt: never load it; the caller rebuilds
  return "";
}

std::optional<std::string> KernelCache::read(const std::string& key, const char* ext) {
  const std::string path = lookup(key, ext);
  std::string file;
  if (path.empty() || !read_file(path, file) || file.size() < kTrailerSize) return std::nullopt;
  file.resize(file.size() - kTrailerSize);
  return file;
}

std::string KernelCache::store(const std::string& key, const std::string& module, const char* ext) {
  const std::string data = module + trailer_for(module);
  if (!dir_.empty()) {
    const std::string path = join_path(dir_, key + ext);
    try {
      write_file_atomic(path, data);
      return path;
    } catch (const Error&) {
      // A full or read-only disk: fall through to a private scratch copy.
    }
  }
  const std::string scratch = make_temp_dir(temp_root(), "mps_shim-module-");
  const std::string path = join_path(scratch, key + ext);
  write_file_atomic(path, data);
  return path;
}

std::string KernelCache::work_dir() {
  const std::string parent = dir_.empty() ? temp_root() : dir_;
  return make_temp_dir(parent, dir_.empty() ? "mps_shim-build-" : ".build-");
}

}  // namespace mps_shim::host
