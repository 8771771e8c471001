// A template kernel instantiated for several types by a macro, as ATen's
// Metal kernels do; each instantiation is found under its host name.
#include <metal_stdlib>
using namespace metal;

template <typename T>
kernel void clamp_scale(device T* out [[buffer(0)]], constant T* in [[buffer(1)]],
                        constant T& lo [[buffer(2)]], constant T& hi [[buffer(3)]],
                        uint i [[thread_position_in_grid]]) {
    out[i] = clamp(in[i], lo, hi) * T(2);
}

#define INSTANTIATE(T) \
    template [[host_name("clamp_scale_" #T)]] kernel void clamp_scale<T>( \
        device T*, constant T*, constant T&, constant T&, uint);

INSTANTIATE(float)
INSTANTIATE(int)
