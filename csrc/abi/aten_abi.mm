// aoti_torch_mps_<op>: the ATen fallback ops of torch's c_shim_mps.h, as
// one-line forwarders to csrc/ops/ (which checks and computes).
#include <optional>
#include <utility>
#include <vector>

#include "abi/guard.h"
#include "abi/tensor_handles.h"
#include "mps_shim_aten.h"
#include "ops/ops.h"

using namespace mps_shim;
using mps_shim::abi::guard;
using mps_shim::abi::publish;
using mps_shim::abi::publish_to;
using mps_shim::abi::publish_pair;
using mps_shim::abi::int_list;
using mps_shim::abi::optional_tensors;
using mps_shim::abi::tensor_list;

namespace {

// The fallback ops compute on real dtypes; complex tensors exist for kernels (float2 / double2).
Tensor& tensor(AtenTensorHandle h) {
  Tensor& t = abi::tensor(h);
  MPS_SHIM_CHECK_AS(OpError, !is_complex(t.dtype()), "ATen fallback ops take no complex tensors, got ",
                    dtype_name(int32_t(t.dtype())));
  return t;
}

std::vector<int64_t> int_list(const int64_t* values, int64_t len) {
  MPS_SHIM_CHECK(len >= 0 && (len == 0 || values != nullptr), "bad int list: ", len, " values at ",
                 static_cast<const void*>(values));
  return len > 0 ? std::vector<int64_t>(values, values + len) : std::vector<int64_t>{};
}

template <typename T>
std::optional<T> optional_value(const T* p) {
  return p ? std::optional<T>(*p) : std::nullopt;
}

void publish_pair(std::pair<Tensor, Tensor> r, AtenTensorHandle* ret0, AtenTensorHandle* ret1) {
  abi::check_out(ret0, "ret0");
  abi::check_out(ret1, "ret1");
  AtenTensorHandle first = publish(std::move(r.first));
  *ret1 = publish(std::move(r.second));
  *ret0 = first;
}

}  // namespace

extern "C" {

AOTITorchError aoti_torch_mps_mm_out(AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle mat2) {
  return guard(__func__, [&] { ops::mm_out(tensor(out), tensor(self), tensor(mat2)); });
}

AOTITorchError aoti_torch_mps_addmm_out(AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle mat1,
                                        AtenTensorHandle mat2, double beta, double alpha) {
  return guard(__func__, [&] { ops::addmm_out(tensor(out), tensor(self), tensor(mat1), tensor(mat2), beta, alpha); });
}

AOTITorchError aoti_torch_mps_bmm_out(AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle mat2) {
  return guard(__func__, [&] { ops::bmm_out(tensor(out), tensor(self), tensor(mat2)); });
}

AOTITorchError aoti_torch_mps_baddbmm_out(AtenTensorHandle out, AtenTensorHandle self, AtenTensorHandle batch1,
                                          AtenTensorHandle batch2, double beta, double alpha) {
  return guard(__func__,
               [&] { ops::baddbmm_out(tensor(out), tensor(self), tensor(batch1), tensor(batch2), beta, alpha); });
}

AOTITorchError aoti_torch_mps_addmv(AtenTensorHandle self, AtenTensorHandle mat, AtenTensorHandle vec, double beta,
                                    double alpha, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    abi::check_out(ret0, "ret0");
    *ret0 = publish(ops::addmv(tensor(self), tensor(mat), tensor(vec), beta, alpha));
  });
}

AOTITorchError aoti_torch_mps_convolution(AtenTensorHandle input, AtenTensorHandle weight, AtenTensorHandle* bias,
                                          const int64_t* stride, int64_t stride_len_, const int64_t* padding,
                                          int64_t padding_len_, const int64_t* dilation, int64_t dilation_len_,
                                          int32_t transposed, const int64_t* output_padding,
                                          int64_t output_padding_len_, int64_t groups, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    abi::check_out(ret0, "ret0");
    *ret0 = publish(ops::convolution(tensor(input), tensor(weight), abi::optional_tensor(bias),
                                     int_list(stride, stride_len_), int_list(padding, padding_len_),
                                     int_list(dilation, dilation_len_), transposed != 0,
                                     int_list(output_padding, output_padding_len_), groups));
  });
}

AOTITorchError aoti_torch_mps__scaled_dot_product_attention_math_for_mps(
    AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value, AtenTensorHandle* attn_mask,
    double dropout_p, int32_t is_causal, AtenTensorHandle* dropout_mask, double* scale, AtenTensorHandle* ret0,
    AtenTensorHandle* ret1) {
  return guard(__func__, [&] {
    publish_pair(ops::sdpa_math_for_mps(tensor(query), tensor(key), tensor(value), abi::optional_tensor(attn_mask),
                                        dropout_p, is_causal != 0, abi::optional_tensor(dropout_mask),
                                        optional_value(scale), false),
                 ret0, ret1);
  });
}

AOTITorchError aoti_torch_mps__scaled_dot_product_attention_math_for_mps_v2(
    AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value, AtenTensorHandle* attn_mask,
    double dropout_p, int32_t is_causal, AtenTensorHandle* dropout_mask, double* scale, int32_t enable_gqa,
    AtenTensorHandle* ret0, AtenTensorHandle* ret1) {
  return guard(__func__, [&] {
    publish_pair(ops::sdpa_math_for_mps(tensor(query), tensor(key), tensor(value), abi::optional_tensor(attn_mask),
                                        dropout_p, is_causal != 0, abi::optional_tensor(dropout_mask),
                                        optional_value(scale), enable_gqa != 0),
                 ret0, ret1);
  });
}

AOTITorchError aoti_torch_mps__fused_rms_norm(AtenTensorHandle input, const int64_t* normalized_shape,
                                              int64_t normalized_shape_len_, AtenTensorHandle* weight, double* eps,
                                              AtenTensorHandle* ret0, AtenTensorHandle* ret1) {
  return guard(__func__, [&] {
    publish_pair(ops::fused_rms_norm(tensor(input), int_list(normalized_shape, normalized_shape_len_),
                                     abi::optional_tensor(weight), optional_value(eps)),
                 ret0, ret1);
  });
}

AOTITorchError aoti_torch_mps__weight_int4pack_mm(AtenTensorHandle self, AtenTensorHandle mat2, int64_t qGroupSize,
                                                  AtenTensorHandle qScaleAndZeros, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    abi::check_out(ret0, "ret0");
    *ret0 = publish(ops::weight_int4pack_mm(tensor(self), tensor(mat2), qGroupSize, tensor(qScaleAndZeros)));
  });
}

AOTITorchError aoti_torch_mps__weight_int8pack_mm(AtenTensorHandle self, AtenTensorHandle mat2,
                                                  AtenTensorHandle scales, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    abi::check_out(ret0, "ret0");
    *ret0 = publish(ops::weight_int8pack_mm(tensor(self), tensor(mat2), tensor(scales)));
  });
}

AOTITorchError aoti_torch_mps_cumsum(AtenTensorHandle self, int64_t dim, int32_t* dtype, AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::cumsum(tensor(self), dim, dtype)); });
}

AOTITorchError aoti_torch_mps_cumprod(AtenTensorHandle self, int64_t dim, int32_t* dtype, AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::cumprod(tensor(self), dim, dtype)); });
}

AOTITorchError aoti_torch_mps_randint_low_out(AtenTensorHandle out, int64_t low, int64_t high, const int64_t* size,
                                              int64_t size_len_) {
  return guard(__func__, [&] { ops::randint_low_out(tensor(out), low, high, int_list(size, size_len_, "size")); });
}

AOTITorchError mps_shim_manual_seed(uint64_t seed) {
  return guard(__func__, [&] { ops::manual_seed(seed); });
}

AOTITorchError aoti_torch_mps_sort(AtenTensorHandle self, int64_t dim, int32_t descending, AtenTensorHandle* ret0,
                                   AtenTensorHandle* ret1) {
  return guard(__func__, [&] { publish_pair(ret0, ret1, ops::sort(tensor(self), nullptr, dim, descending != 0)); });
}

AOTITorchError aoti_torch_mps_sort_stable(AtenTensorHandle self, int32_t* stable, int64_t dim, int32_t descending,
                                          AtenTensorHandle* ret0, AtenTensorHandle* ret1) {
  return guard(__func__, [&] { publish_pair(ret0, ret1, ops::sort(tensor(self), stable, dim, descending != 0)); });
}

AOTITorchError aoti_torch_mps_topk(AtenTensorHandle self, int64_t k, int64_t dim, int32_t largest, int32_t sorted,
                                   AtenTensorHandle* ret0, AtenTensorHandle* ret1) {
  return guard(__func__,
               [&] { publish_pair(ret0, ret1, ops::topk(tensor(self), k, dim, largest != 0, sorted != 0)); });
}

AOTITorchError aoti_torch_mps_index_Tensor(AtenTensorHandle self, const AtenTensorHandle** indices,
                                           int64_t indices_len_, AtenTensorHandle* ret0) {
  return guard(__func__,
               [&] { publish_to(ret0, "ret0", ops::index(tensor(self), optional_tensors(indices, indices_len_))); });
}

AOTITorchError aoti_torch_mps_index_put(AtenTensorHandle self, const AtenTensorHandle** indices, int64_t indices_len_,
                                        AtenTensorHandle values, int32_t accumulate, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    publish_to(ret0, "ret0",
               ops::index_put(tensor(self), optional_tensors(indices, indices_len_), tensor(values), accumulate != 0));
  });
}

AOTITorchError aoti_torch_mps_nonzero(AtenTensorHandle self, AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::nonzero(tensor(self))); });
}

AOTITorchError aoti_torch_mps_nonzero_static(AtenTensorHandle self, int64_t size, int64_t fill_value,
                                             AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::nonzero_static(tensor(self), size, fill_value)); });
}

AOTITorchError aoti_torch_mps_masked_select(AtenTensorHandle self, AtenTensorHandle mask, AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::masked_select(tensor(self), tensor(mask))); });
}

AOTITorchError aoti_torch_mps_searchsorted_Tensor(AtenTensorHandle sorted_sequence, AtenTensorHandle self,
                                                 int32_t out_int32, int32_t right, const char** side,
                                                 AtenTensorHandle* sorter, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    publish_to(ret0, "ret0", ops::searchsorted(tensor(sorted_sequence), tensor(self), out_int32 != 0, right != 0, side,
                                               abi::optional_tensor(sorter)));
  });
}

AOTITorchError aoti_torch_mps_bucketize_Tensor(AtenTensorHandle self, AtenTensorHandle boundaries, int32_t out_int32,
                                               int32_t right, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    publish_to(ret0, "ret0", ops::bucketize(tensor(self), tensor(boundaries), out_int32 != 0, right != 0));
  });
}

AOTITorchError aoti_torch_mps_cat(const AtenTensorHandle* tensors, int64_t tensors_len_, int64_t dim,
                                  AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::cat(tensor_list(tensors, tensors_len_), dim)); });
}

AOTITorchError aoti_torch_mps_fill__Scalar(AtenTensorHandle self, double value) {
  return guard(__func__, [&] { ops::fill_(tensor(self), value); });
}

AOTITorchError aoti_torch_mps_repeat_interleave_Tensor(AtenTensorHandle repeats, int64_t* output_size,
                                                       AtenTensorHandle* ret0) {
  return guard(__func__, [&] { publish_to(ret0, "ret0", ops::repeat_interleave(tensor(repeats), output_size)); });
}

AOTITorchError aoti_torch_mps_pad(AtenTensorHandle self, const int64_t* pad, int64_t pad_len_, const char* mode,
                                  double* value, AtenTensorHandle* ret0) {
  return guard(__func__,
               [&] { publish_to(ret0, "ret0", ops::pad(tensor(self), int_list(pad, pad_len_, "pad"), mode, value)); });
}

AOTITorchError aoti_torch_mps_avg_pool2d(AtenTensorHandle self, const int64_t* kernel_size, int64_t kernel_size_len_,
                                         const int64_t* stride, int64_t stride_len_, const int64_t* padding,
                                         int64_t padding_len_, int32_t ceil_mode, int32_t count_include_pad,
                                         int64_t* divisor_override, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    publish_to(ret0, "ret0",
               ops::avg_pool2d(tensor(self), int_list(kernel_size, kernel_size_len_, "kernel_size"),
                               int_list(stride, stride_len_, "stride"), int_list(padding, padding_len_, "padding"),
                               ceil_mode != 0, count_include_pad != 0, divisor_override));
  });
}

AOTITorchError aoti_torch_mps_max_pool2d_with_indices(AtenTensorHandle self, const int64_t* kernel_size,
                                                      int64_t kernel_size_len_, const int64_t* stride,
                                                      int64_t stride_len_, const int64_t* padding, int64_t padding_len_,
                                                      const int64_t* dilation, int64_t dilation_len_, int32_t ceil_mode,
                                                      AtenTensorHandle* ret0, AtenTensorHandle* ret1) {
  return guard(__func__, [&] {
    publish_pair(ret0, ret1,
                 ops::max_pool2d_with_indices(tensor(self), int_list(kernel_size, kernel_size_len_, "kernel_size"),
                                              int_list(stride, stride_len_, "stride"),
                                              int_list(padding, padding_len_, "padding"),
                                              int_list(dilation, dilation_len_, "dilation"), ceil_mode != 0));
  });
}

AOTITorchError aoti_torch_mps__adaptive_avg_pool2d(AtenTensorHandle self, const int64_t* output_size,
                                                   int64_t output_size_len_, AtenTensorHandle* ret0) {
  return guard(__func__, [&] {
    publish_to(ret0, "ret0",
               ops::adaptive_avg_pool2d(tensor(self), int_list(output_size, output_size_len_, "output_size")));
  });
}

}  // extern "C"
