/* Python-side trampoline for aoti_torch_mps_run_command_block (see mps_shim/_callbacks.py). */
extern "Python" void _mps_shim_command_block_trampoline(AOTIMetalKernelFunctionHandle func, void* user_data);
