// The host engine's metal_stdlib: Metal's types and functions as plain C++,
// force-included before every translated library. It includes no C library
// header, so POSIX names such as `select` or the C `exp(double)` never compete
// with Metal's overloads; math goes through GCC builtins.
//
// The force-included entry header (and the precompiled one): Metal's standard
// library, then the execution engine that uses its types.
#ifndef MPS_HOST_METAL_H
#define MPS_HOST_METAL_H  // defined first: the sub-headers check it

#include "metal/mps_metal_stdlib.h"
#include "metal/mps_metal_logging.h"
#include "host/mps_host_engine.h"
#include "host/mps_metal_simdgroup_matrix.h"
#ifdef MPS_SHIM_CHECKED
#include "host/mps_host_checked.h"
#endif

#endif
