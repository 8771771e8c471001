// The CUDA engine's force-included entry header: Metal's standard library
// (the headers the host engine uses, on the CUDA platform layer), then what
// the generated entry points use.
#ifndef MPS_HOST_METAL_H
#define MPS_HOST_METAL_H  // defined first: the sub-headers check it
#define MPS_SHIM_CUDA 1

#include "metal/mps_metal_stdlib.h"
#include "metal/mps_metal_logging.h"
#include "cuda_engine/mps_cuda_simdgroup_matrix.h"
#include "mps_param_facts.h"
#include "cuda_engine/mps_cuda_launch.h"

#endif
