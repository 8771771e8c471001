// The force-included entry header of checked modules (MPS_SHIM_CHECKED,
// runtime/checks.h): the same standard library and engine, with the
// sanitizers' hooks (host/mps_host_checked.h) compiled in.
#ifndef MPS_HOST_METAL_CHECKED_H
#define MPS_HOST_METAL_CHECKED_H
#define MPS_SHIM_CHECKED 1
#include "mps_host_metal.h"
#endif
