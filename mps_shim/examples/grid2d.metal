// A 2-D grid whose edge threadgroups are partial: each thread records where it
// is, so the demo can check dispatchThreads semantics element by element.
#include <metal_stdlib>
using namespace metal;

kernel void transpose(device float* out, constant float* in, constant long& rows, constant long& cols,
                      uint2 pos [[thread_position_in_grid]]) {
    out[pos.x * rows + pos.y] = in[pos.y * cols + pos.x];
}

kernel void where_am_i(device uint* group_size_x, device uint* group_id_y,
                       uint2 pos [[thread_position_in_grid]],
                       uint2 grid [[threads_per_grid]],
                       uint2 tg_size [[threads_per_threadgroup]],
                       uint2 tg_pos [[threadgroup_position_in_grid]]) {
    const uint index = pos.y * grid.x + pos.x;
    group_size_x[index] = tg_size.x;
    group_id_y[index] = tg_pos.y;
}
