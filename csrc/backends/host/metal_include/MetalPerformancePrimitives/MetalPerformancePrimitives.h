// Metal 4's tensor operations (MetalPerformancePrimitives: matmul2d and
// friends on `tensor` types) have no host-engine equivalent yet.
#error "MetalPerformancePrimitives (Metal 4 tensor operations) is not supported by mps_shim's host engine"
