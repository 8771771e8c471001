// Element-wise kernels in the shape AOTInductor emits them: outputs first,
// sizes as `constant long&`, one thread per element.
#include <metal_stdlib>
using namespace metal;

kernel void add(device float* out, constant float* a, constant float* b,
                uint i [[thread_position_in_grid]]) {
    out[i] = a[i] + b[i];
}

kernel void fma_kernel(device float* out, constant float* a, constant float* b,
                       constant float* c, uint i [[thread_position_in_grid]]) {
    out[i] = a[i] * b[i] + c[i];
}

kernel void exp_kernel(device float* out, constant float* a, uint i [[thread_position_in_grid]]) {
    out[i] = metal::precise::exp(a[i]);
}

kernel void saxpy(device float* y, constant float* x, constant float& alpha, constant long& n,
                  uint i [[thread_position_in_grid]]) {
    if (i < n) {
        y[i] = alpha * x[i] + y[i];
    }
}
