// Device memory handed out by aoti_torch_mps_malloc and by mps tensors. Every
// live allocation is registered, so free/memcpy/copy_buffer can reject a
// pointer this runtime never handed out, and bounds are checked.
#pragma once

#include <cstddef>

namespace mps_shim {

struct Allocation {
  char* base;
  size_t size;
};

void* device_malloc(size_t nbytes);  // nbytes == 0 gives nullptr
void device_free(void* ptr);         // throws for a pointer not from device_malloc
// The allocation that starts at `base`; throws naming `what` when there is none.
Allocation find_allocation(const void* base, const char* what);
// The live allocation holding `ptr`, or {nullptr, 0}: a blob tensor over
// memory aoti_torch_mps_malloc gave is bound as that whole buffer in Metal.
Allocation containing_allocation(const void* ptr);
// Largest request accepted: the machine's physical memory.
size_t max_allocation_size();

}  // namespace mps_shim
