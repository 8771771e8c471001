// Turns a parsed Metal library into one C++ translation unit for the host
// compiler: the user's code with the front end's edits applied (line markers
// kept, so diagnostics name the user's lines), then one entry point per kernel
// and the kernel table described in metal_include/host/mps_host_launch.h.
#pragma once

#include <string>

#include "backends/host/host_lowering.h"

namespace mps_shim::host {

std::string emit_cxx(const std::string& preprocessed, const HostLibrary& library);

// A parameter's address space as kernel records name it: "device", "constant" or "".
const char* address_space_name(const frontend::ParamDecl& p);

}  // namespace mps_shim::host
