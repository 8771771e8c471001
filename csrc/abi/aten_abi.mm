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
using mps_shim::abi::tensor;

namespace {

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

}  // extern "C"
