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
/* CDEF-END */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MPS_SHIM_ATEN_H */
