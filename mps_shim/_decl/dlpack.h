/* The DLPack structures (https://dmlc.github.io/dlpack/latest/c_api.html), declared for cffi
 * and compiled into the extension so cffi checks the layout: the legacy DLManagedTensor (capsule
 * "dltensor") and DLManagedTensorVersioned of DLPack 1.x (capsule "dltensor_versioned").
 * Plain C declarations only: build_ffi.py feeds this file to cffi's cdef as it is. */
typedef struct {
  uint32_t major;
  uint32_t minor;
} DLPackVersion;

typedef struct {
  int32_t device_type; /* kDLCPU = 1 */
  int32_t device_id;
} DLDevice;

typedef struct {
  uint8_t code; /* kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBfloat 4, kDLBool 6 */
  uint8_t bits;
  uint16_t lanes;
} DLDataType;

typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides; /* in elements; NULL means compact row-major */
  uint64_t byte_offset;
} DLTensor;

typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensor* self);
} DLManagedTensor;

typedef struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensorVersioned* self);
  uint64_t flags; /* bit 0: read only, bit 1: is copied */
  DLTensor dl_tensor;
} DLManagedTensorVersioned;
