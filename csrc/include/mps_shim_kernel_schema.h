/* The kernel record, defined once: what the runtime knows about each kernel of
 * a compiled library. C-clean and self-contained (it is also written into the
 * host backend's include folder, for generated modules). Each list is an
 * X-macro, X(type, field, json_key), where type is one of
 *   string, int, uint  (C: const char*, int32_t, uint32_t; C++: std::string, int, uint32_t),
 *   param_kind         (MPS_SHIM_PARAM_KINDS), execution (MPS_SHIM_EXECUTIONS).
 * It generates:
 * - the records in a host kernel module (metal_include/host/mps_host_launch.h),
 *   written by backends/host/cxx_emitter.cpp and read by host_module.cpp;
 * - the runtime's KernelParam / KernelInfo (runtime/backend.h);
 * - the JSON of mps_shim_library_describe (runtime/library.cpp), which Python
 *   reads as KernelFunction.info (its keys are the json_key column).
 * A host module records the values: bump MPS_SHIM_MODULE_ABI on any change. */
#ifndef MPS_SHIM_KERNEL_SCHEMA_H
#define MPS_SHIM_KERNEL_SCHEMA_H

/* A kernel parameter. binding: the buffer index for buffers and scalars, the
 * threadgroup index for [[threadgroup(n)]] parameters, -1 otherwise; attribute as written ("buffer(2)", "thread_position_in_grid");
 * space: "device", "constant" or "" (thread positions); value_size: the
 * bytes of the referenced or pointed-to type (0 for void; a 3-vector counts
 * its 3 lanes, not its padding); reference: 1 for `T&`,
 * 0 for `T*`; writable: 1 when the kernel may write through it (device,
 * not const); line: in the user's source. */
#define MPS_SHIM_PARAM_FIELDS(X)    \
  X(string, name, "name")           \
  X(string, type, "type")           \
  X(param_kind, kind, "kind")       \
  X(int, binding, "binding")        \
  X(string, attribute, "attribute") \
  X(string, space, "space")         \
  X(uint, value_size, "size")       \
  X(int, reference, "reference")    \
  X(int, writable, "writable")      \
  X(int, line, "line")

/* A kernel. name: the host name get_kernel_function looks up; max_threads:
 * [[max_total_threads_per_threadgroup]] or 1024; threadgroup_memory: bytes of
 * the threadgroup arrays it and the functions it calls declare (Metal's
 * staticThreadgroupMemoryLength; arrays of a size the front end cannot work
 * out count 0); execution_note: why a fibers kernel could not run as lane
 * loops, or "". Its parameters follow, in order. */
#define MPS_SHIM_KERNEL_FIELDS(X)                \
  X(string, name, "name")                        \
  X(uint, max_threads, "max_threads")            \
  X(uint, threadgroup_memory, "threadgroup_memory") \
  X(int, line, "line")                           \
  X(execution, execution, "execution")           \
  X(string, execution_note, "execution_note")

/* X(NAME, value, json name) */
#define MPS_SHIM_PARAM_KINDS(X)         \
  X(BUFFER, 0, "buffer")                 \
  X(SCALAR, 1, "scalar")                 \
  X(THREAD_POSITION, 2, "thread_position") \
  X(THREADGROUP, 3, "threadgroup") /* [[threadgroup(n)]]: binding is n */

/* How a threadgroup's threads run. A kernel not compiled yet whose threads
 * may wait for each other is "undecided" (modules never record that value). */
#define MPS_SHIM_EXECUTIONS(X)                                                    \
  X(INDEPENDENT, 0, "independent") /* no thread waits for another */              \
  X(FIBERS, 1, "fibers")           /* one fiber per thread */                     \
  X(LANE_LOOPS, 2, "lane_loops")   /* loops over the threads between barriers */  \
  X(UNDECIDED, 3, "undecided")     /* lane loops or fibers, decided when it compiles */

#define MPS_SHIM_PARAM_KIND_CONSTANT_(NAME, value, json) MPS_SHIM_PARAM_##NAME = value,
enum mps_shim_param_kind { MPS_SHIM_PARAM_KINDS(MPS_SHIM_PARAM_KIND_CONSTANT_) };
#define MPS_SHIM_EXECUTION_CONSTANT_(NAME, value, json) MPS_SHIM_EXECUTION_##NAME = value,
enum mps_shim_execution { MPS_SHIM_EXECUTIONS(MPS_SHIM_EXECUTION_CONSTANT_) };

#endif
