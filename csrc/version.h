// The engine's version; part of every kernel cache key.
#pragma once

#define MPS_SHIM_VERSION "0.1.0"
// A content hash of csrc/, set by build_native.py: kernels compiled by one
// build of the engine are never loaded by another.
#ifndef MPS_SHIM_BUILD_ID
#define MPS_SHIM_BUILD_ID "unversioned"
#endif
