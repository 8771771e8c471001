/* The AOTInductor model container C API that a model.so exports (torch 2.13,
 * torch/csrc/inductor/aoti_runtime/interface.h), as far as mps_shim.aoti uses it.
 * Read by cffi in ABI mode (mps_shim/aoti/_container.py). Every function returns
 * AOTIRuntimeError: 0 success, 1 failure. Tensor handles are opaque pointers
 * into libmps_shim's runtime; Run steals the input handles (the array itself is
 * borrowed) and hands new output handles to the caller, who deletes them.
 * Constants: ExtractConstantsMapEntries lends the container's own constant
 * tensors, keyed by original FQN (valid until the constants change);
 * UpdateConstantBufferPairs keys on the constant's name (GetConstantName), checks
 * only each tensor's device type (mps, 13), and copies the data into the
 * container's constant blob with aoti_torch_mps_copy_buffer (whose return code it
 * ignores): the caller keeps its tensors. */
typedef int32_t AOTIRuntimeError;
typedef struct AOTInductorModelContainerOpaque* AOTInductorModelContainerHandle;
typedef void* AtenTensorHandleRaw;
typedef struct AOTInductorConstantMapEntry {
  const char* name;
  AtenTensorHandleRaw handle;
} AOTInductorConstantMapEntry;

AOTIRuntimeError AOTInductorModelContainerCreateWithDevice(AOTInductorModelContainerHandle* container_handle,
                                                           size_t num_models, const char* device_str,
                                                           const char* cubin_dir);
AOTIRuntimeError AOTInductorModelContainerDelete(AOTInductorModelContainerHandle container_handle);
AOTIRuntimeError AOTInductorModelContainerRun(AOTInductorModelContainerHandle container_handle,
                                              AtenTensorHandleRaw* input_handles, size_t num_inputs,
                                              AtenTensorHandleRaw* output_handles, size_t num_outputs,
                                              void* stream_handle, void* proxy_executor_handle);
AOTIRuntimeError AOTInductorModelContainerGetNumInputs(AOTInductorModelContainerHandle container_handle,
                                                       size_t* ret_num_inputs);
AOTIRuntimeError AOTInductorModelContainerGetInputName(AOTInductorModelContainerHandle container_handle,
                                                       size_t input_idx, const char** ret_input_names);
AOTIRuntimeError AOTInductorModelContainerGetNumOutputs(AOTInductorModelContainerHandle container_handle,
                                                        size_t* ret_num_outputs);
AOTIRuntimeError AOTInductorModelContainerGetOutputName(AOTInductorModelContainerHandle container_handle,
                                                        size_t output_idx, const char** ret_output_names);
AOTIRuntimeError AOTInductorModelContainerGetCallSpec(AOTInductorModelContainerHandle container_handle,
                                                      const char** in_spec, const char** out_spec);
AOTIRuntimeError AOTInductorModelContainerGetNumConstants(AOTInductorModelContainerHandle container_handle,
                                                          size_t* num_constants);
AOTIRuntimeError AOTInductorModelContainerGetConstantName(AOTInductorModelContainerHandle container_handle,
                                                          size_t idx, const char** name);
AOTIRuntimeError AOTInductorModelContainerGetConstantOriginalFQN(AOTInductorModelContainerHandle container_handle,
                                                                 size_t idx, const char** original_fqn);
AOTIRuntimeError AOTInductorModelContainerGetConstantFromFolded(AOTInductorModelContainerHandle container_handle,
                                                                size_t idx, bool* from_folded);
AOTIRuntimeError AOTInductorModelContainerGetConstantType(AOTInductorModelContainerHandle container_handle,
                                                          size_t idx, int32_t* type);
AOTIRuntimeError AOTInductorModelContainerGetConstantDtype(AOTInductorModelContainerHandle container_handle,
                                                           size_t idx, int32_t* dtype);
AOTIRuntimeError AOTInductorModelContainerGetConstantDataSize(AOTInductorModelContainerHandle container_handle,
                                                              size_t idx, size_t* data_size);
AOTIRuntimeError AOTInductorGetLastError(const char** error_msg);
AOTIRuntimeError AOTInductorModelContainerExtractConstantsMapEntries(AOTInductorModelContainerHandle container_handle,
                                                                  const AOTInductorConstantMapEntry** entries,
                                                                  size_t* num_entries, bool use_inactive);
AOTIRuntimeError AOTInductorModelContainerUpdateConstantBufferPairs(AOTInductorModelContainerHandle container_handle,
                                                                   const AOTInductorConstantMapEntry* pairs,
                                                                   size_t num_pairs, bool use_inactive,
                                                                   bool validate_full_update);
