// Small file-system helpers for the kernel cache.
#pragma once

#include <string>

namespace mps_shim {

bool read_file(const std::string& path, std::string& out);
// Writes to a temporary name in the same folder, then renames: readers see the
// old file or the whole new one, never a partial write.
void write_file_atomic(const std::string& path, const std::string& data);
// Creates `path` (and parents) with mode 0700 if missing. Returns "" when the
// folder belongs to this user, is not writable by others and can be written;
// otherwise why not.
std::string prepare_private_dir(const std::string& path);
std::string make_temp_dir(const std::string& parent, const std::string& prefix);
void remove_tree(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);

}  // namespace mps_shim
