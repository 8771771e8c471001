// The files of metal_include/ and include/mps_shim_kernel_schema.h, compiled
// into libmps_shim.so by build_native.py
// so the library needs nothing beside itself at run time.
#pragma once

namespace mps_shim::host {

struct EmbeddedFile {
  const char* name;  // path relative to metal_include/, e.g. "metal/mps_metal_math.h"
  const char* text;
};

extern const EmbeddedFile kEmbeddedHeaders[];
extern const unsigned kEmbeddedHeaderCount;

}  // namespace mps_shim::host
