/*
 * mps_shim_aten.h - the ATen fallback ops of libmps_shim.
 *
 * AOTInductor compiles what it does not write as Metal (matrix products,
 * convolutions, attention, scans, sorting, ...) into calls to PyTorch's
 * generated c_shim_mps.h. These are the ones libmps_shim implements, with
 * torch 2.13's exact names and signatures. Semantics are ATen's.
 *
 * Conventions of the generated header: an optional tensor is passed as a
 * pointer to a handle (NULL for None), an optional scalar as a pointer to it;
 * results are new handles in ret0, ret1, ... that the caller deletes with
 * aoti_torch_delete_tensor_object; `_out` ops write (and if needed resize)
 * `out`. On failure the call returns AOTI_TORCH_FAILURE and
 * mps_shim_last_error() names the op and what was wrong.
 *
 * Compiles as C99 and C++17; build_ffi.py feeds the CDEF part to cffi.
 */
#ifndef MPS_SHIM_ATEN_H
#define MPS_SHIM_ATEN_H

#include "mps_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF-BEGIN */
typedef struct AtenGeneratorOpaque AtenGeneratorOpaque;
typedef AtenGeneratorOpaque* AtenGeneratorHandle;

/* ---- matrix products ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_mm_out(AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle mat2);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_addmm_out(
    AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle mat1, AtenTensorHandle mat2, double beta,
    double alpha);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_bmm_out(AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle mat2);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_baddbmm_out(
    AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle batch1, AtenTensorHandle batch2, double beta,
    double alpha);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_addmv(
    AtenTensorHandle self, AtenTensorHandle mat, AtenTensorHandle vec, double beta, double alpha,
    AtenTensorHandle* ret0);

/* ---- convolution ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_convolution(
    AtenTensorHandle input, AtenTensorHandle weight, AtenTensorHandle* bias, const int64_t* stride,
    int64_t stride_len_, const int64_t* padding, int64_t padding_len_, const int64_t* dilation,
    int64_t dilation_len_, int32_t transposed, const int64_t* output_padding, int64_t output_padding_len_,
    int64_t groups, AtenTensorHandle* ret0);

/* ---- attention ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps__scaled_dot_product_attention_math_for_mps(
    AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value, AtenTensorHandle* attn_mask,
    double dropout_p, int32_t is_causal, AtenTensorHandle* dropout_mask, double* scale, AtenTensorHandle* ret0,
    AtenTensorHandle* ret1);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps__scaled_dot_product_attention_math_for_mps_v2(
    AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value, AtenTensorHandle* attn_mask,
    double dropout_p, int32_t is_causal, AtenTensorHandle* dropout_mask, double* scale, int32_t enable_gqa,
    AtenTensorHandle* ret0, AtenTensorHandle* ret1);

/* ---- normalization ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps__fused_rms_norm(
    AtenTensorHandle input, const int64_t* normalized_shape, int64_t normalized_shape_len_, AtenTensorHandle* weight,
    double* eps, AtenTensorHandle* ret0, AtenTensorHandle* ret1);

/* ---- quantized products ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps__weight_int4pack_mm(
    AtenTensorHandle self, AtenTensorHandle mat2, int64_t qGroupSize, AtenTensorHandle qScaleAndZeros,
    AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps__weight_int8pack_mm(
    AtenTensorHandle self, AtenTensorHandle mat2, AtenTensorHandle scales, AtenTensorHandle* ret0);
/* ---- scans ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_cumsum(AtenTensorHandle self, int64_t dim, int32_t* dtype, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_cumprod(AtenTensorHandle self, int64_t dim, int32_t* dtype, AtenTensorHandle* ret0);

/* ---- random numbers ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_randint_low_out(AtenTensorHandle out, int64_t low, int64_t high, const int64_t* size, int64_t size_len_);
/* Extension: seeds the process stream that randint_low_out draws from and restarts it. Every process
 * starts from the fixed seed 67280421310721 (torch's default seed value), so runs repeat unless seeded
 * differently. Counter-based: numbers depend only on the seed and on how many were drawn since; they
 * are not torch's own stream. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_manual_seed(uint64_t seed);

/* ---- sorting ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_sort(AtenTensorHandle self, int64_t dim, int32_t descending, AtenTensorHandle* ret0, AtenTensorHandle* ret1);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_sort_stable(AtenTensorHandle self, int32_t* stable, int64_t dim, int32_t descending, AtenTensorHandle* ret0, AtenTensorHandle* ret1);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_topk(AtenTensorHandle self, int64_t k, int64_t dim, int32_t largest, int32_t sorted, AtenTensorHandle* ret0, AtenTensorHandle* ret1);

/* ---- indexing ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_index_Tensor(AtenTensorHandle self, const AtenTensorHandle** indices, int64_t indices_len_, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_index_put(AtenTensorHandle self, const AtenTensorHandle** indices, int64_t indices_len_, AtenTensorHandle values, int32_t accumulate, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_nonzero(AtenTensorHandle self, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_nonzero_static(AtenTensorHandle self, int64_t size, int64_t fill_value, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_masked_select(AtenTensorHandle self, AtenTensorHandle mask, AtenTensorHandle* ret0);

/* ---- searching ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_searchsorted_Tensor(AtenTensorHandle sorted_sequence, AtenTensorHandle self, int32_t out_int32, int32_t right, const char** side, AtenTensorHandle* sorter, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_bucketize_Tensor(AtenTensorHandle self, AtenTensorHandle boundaries, int32_t out_int32, int32_t right, AtenTensorHandle* ret0);

/* ---- pooling ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_avg_pool2d(AtenTensorHandle self, const int64_t* kernel_size, int64_t kernel_size_len_, const int64_t* stride, int64_t stride_len_, const int64_t* padding, int64_t padding_len_, int32_t ceil_mode, int32_t count_include_pad, int64_t* divisor_override, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_max_pool2d_with_indices(AtenTensorHandle self, const int64_t* kernel_size, int64_t kernel_size_len_, const int64_t* stride, int64_t stride_len_, const int64_t* padding, int64_t padding_len_, const int64_t* dilation, int64_t dilation_len_, int32_t ceil_mode, AtenTensorHandle* ret0, AtenTensorHandle* ret1);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps__adaptive_avg_pool2d(AtenTensorHandle self, const int64_t* output_size, int64_t output_size_len_, AtenTensorHandle* ret0);

/* ---- copies ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_cat(const AtenTensorHandle* tensors, int64_t tensors_len_, int64_t dim, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_fill__Scalar(AtenTensorHandle self, double value);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_repeat_interleave_Tensor(AtenTensorHandle repeats, int64_t* output_size, AtenTensorHandle* ret0);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_pad(AtenTensorHandle self, const int64_t* pad, int64_t pad_len_, const char* mode, double* value, AtenTensorHandle* ret0);
/* CDEF-END */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MPS_SHIM_ATEN_H */
