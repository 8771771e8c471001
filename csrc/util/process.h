// Runs a helper program (the system compiler) and captures its output.
#pragma once

#include <string>
#include <vector>

namespace mps_shim {

struct ProcessResult {
  int exit_code;  // -1 when it could not start or was killed by a signal
  std::string out, err;
};

// argv[0] is looked up on PATH; it runs in `cwd` when given. A run longer than
// timeout_seconds is killed.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd = "",
                          int timeout_seconds = 600);

// Starts `sh -c script` in the background, detached from this process: it
// keeps running if this process exits. Returns false if it could not start.
bool spawn_detached_shell(const std::string& script);

// `s` quoted for sh.
std::string shell_quote(const std::string& s);

}  // namespace mps_shim
