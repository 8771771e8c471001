// The on-disk cache of compiled kernel modules. Entries are content-addressed
// (source, engine version, compiler identity, flags, compatibility headers),
// live in a folder only this user can write (loading a module runs its code),
// are written by atomic rename so concurrent processes are safe, and carry a
// SHA-256 trailer so a corrupt entry is rebuilt instead of loaded.
#pragma once

#include <optional>
#include <string>

namespace mps_shim::host {

class KernelCache {
 public:
  static KernelCache& instance();

  // The cache folder, or "" when caching is off; disabled_reason() says why.
  const std::string& dir() const { return dir_; }
  const std::string& disabled_reason() const { return disabled_reason_; }
  // Where compiled headers live for the compiler's -I.
  const std::string& include_dir();

  // `options`: anything else that changes the compiled module.
  std::string key(const std::string& source, const std::string& options = "");
  // The path of a verified module for `key`, or "" when there is none.
  // `ext` names the kind of entry: host modules are ".so", CUDA images ".cuda".
  std::string lookup(const std::string& key, const char* ext = ".so");
  // The verified contents stored under `key` (without the trailer), or none.
  std::optional<std::string> read(const std::string& key, const char* ext);
  // Stores `module` (a shared object) and returns the path to load.
  std::string store(const std::string& key, const std::string& module, const char* ext = ".so");
  // A new private folder for one compilation; the caller removes it.
  std::string work_dir();

 private:
  KernelCache();
  std::string dir_, disabled_reason_, include_dir_, headers_hash_;
};

// The folder the cache uses when it is usable: MPS_SHIM_CACHE_DIR, else
// $XDG_CACHE_HOME/mps_shim, else ~/.cache/mps_shim.
std::string default_cache_dir();

}  // namespace mps_shim::host
