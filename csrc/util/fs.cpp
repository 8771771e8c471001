#include "util/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace mps_shim {

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

bool read_file(const std::string& path, std::string& out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  close(fd);
  return n == 0;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  const int fd = mkostemp(name.data(), O_CLOEXEC);
  MPS_SHIM_CHECK(fd >= 0, "cannot create a file next to ", path, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n <= 0 && errno != EINTR) {
      const int err = errno;
      close(fd);
      unlink(name.data());
      fail("cannot write ", path, ": ", std::strerror(err));
    }
    if (n > 0) done += size_t(n);
  }
  close(fd);
  if (rename(name.data(), path.c_str()) != 0) {
    const int err = errno;
    unlink(name.data());
    fail("cannot rename into ", path, ": ", std::strerror(err));
  }
}

std::string prepare_private_dir(const std::string& path) {
  if (path.empty()) return "no folder given";
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string part = path.substr(0, i);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return concat("cannot create ", part, ": ", std::strerror(errno));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return concat("cannot inspect ", path, ": ", std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return concat(path, " is not a folder");
  if (st.st_uid != geteuid()) return concat(path, " belongs to another user");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) return concat(path, " is writable by other users");
  if (access(path.c_str(), W_OK | X_OK) != 0) return concat(path, " is not writable: ", std::strerror(errno));
  return "";
}

std::string make_temp_dir(const std::string& parent, const std::string& prefix) {
  std::string templ = join_path(parent, prefix + "XXXXXX");
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  MPS_SHIM_CHECK(mkdtemp(name.data()) != nullptr, "cannot create a temporary folder in ", parent, ": ",
                 std::strerror(errno));
  return std::string(name.data());
}

void remove_tree(const std::string& path) {
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = join_path(path, name);
      struct stat st;
      if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(child);
      else unlink(child.c_str());
    }
    closedir(d);
  }
  rmdir(path.c_str());
}

}  // namespace mps_shim
