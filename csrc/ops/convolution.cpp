// convolution: 1-D, 2-D and 3-D, grouped, dilated, transposed. ATen's checks
// and output shape (aten/src/ATen/native/Convolution.cpp), then one backend call.
#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

constexpr const char* kOp = "convolution";

// torch's expand_param_if_needed: one value for every spatial dimension.
std::vector<int64_t> expand_param(const std::vector<int64_t>& v, const char* name, int64_t k) {
  if (v.size() == 1) return std::vector<int64_t>(size_t(k), v[0]);
  MPS_SHIM_OP_CHECK(int64_t(v.size()) == k, kOp, "expected ", name, " to be a single integer value or a list of ", k,
                    " values to match the convolution dimensions, but got ", name, "=", shape_str(v));
  return v;
}

std::string sizes_x(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += concat(i ? " x " : "", v[i]);
  return s + ")";
}

// Strides of a channels-last (NHWC / NDHWC) tensor of these sizes.
std::vector<int64_t> channels_last_strides(const std::vector<int64_t>& sizes) {
  const size_t nd = sizes.size();
  std::vector<int64_t> st(nd);
  int64_t acc = 1;
  st[1] = acc;
  acc *= std::max<int64_t>(sizes[1], 1);
  for (size_t d = nd - 1; d >= 2; --d) {
    st[d] = acc;
    acc *= std::max<int64_t>(sizes[d], 1);
  }
  st[0] = acc;
  return st;
}

// ATen's suggest_memory_format, simplified: channels-last strides that are not also plain contiguous ones.
bool is_channels_last(const Tensor& t) {
  if (t.dim() != 4 && t.dim() != 5) return false;
  if (t.is_contiguous()) return false;
  const auto want = channels_last_strides(t.sizes());
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.sizes()[size_t(d)] != 1 && t.strides()[size_t(d)] != want[size_t(d)]) return false;
  return true;
}

Tensor empty_like_format(const std::vector<int64_t>& sizes, DType dtype, bool channels_last) {
  if (!channels_last) return empty_tensor(sizes, dtype);
  std::vector<int64_t> nhwc{sizes[0]};
  for (size_t d = 2; d < sizes.size(); ++d) nhwc.push_back(sizes[d]);
  nhwc.push_back(sizes[1]);
  Tensor base = empty_tensor(nhwc, dtype);
  return base.view(sizes, channels_last_strides(sizes), 0);
}

void check_conv_dtype(const Tensor& t, const char* name) {
  const DType d = t.dtype();
  MPS_SHIM_OP_CHECK(d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16, kOp, name,
                    " must be float32, float16 or bfloat16, got ", dtype_name(int32_t(d)));
}

}  // namespace

Tensor convolution(const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias,
                   const std::vector<int64_t>& stride_, const std::vector<int64_t>& padding_,
                   const std::vector<int64_t>& dilation_, bool transposed, const std::vector<int64_t>& output_padding_,
                   int64_t groups) {
  check_device(kOp, input, "input");
  check_device(kOp, weight, "weight");
  MPS_SHIM_OP_CHECK(weight.dim() >= 3 && weight.dim() <= 5, kOp,
                    "expected weight to have 3, 4 or 5 dimensions (1-D, 2-D or 3-D convolution), got shape ",
                    shape_str(weight.sizes()));
  MPS_SHIM_OP_CHECK(input.dim() == weight.dim(), kOp, "expected ", weight.dim(), "-dimensional input for ",
                    weight.dim(), "-dimensional weight ", shape_str(weight.sizes()), ", but got ", input.dim(),
                    "-dimensional input of size ", shape_str(input.sizes()), " instead");
  const int64_t k = weight.dim() - 2;
  ConvParams p;
  p.stride = expand_param(stride_, "stride", k);
  p.padding = expand_param(padding_, "padding", k);
  p.dilation = expand_param(dilation_, "dilation", k);
  p.output_padding = expand_param(output_padding_, "output_padding", k);
  p.transposed = transposed;
  p.groups = groups;
  for (int64_t i = 0; i < k; ++i) {
    MPS_SHIM_OP_CHECK(p.stride[size_t(i)] > 0, kOp, "non-positive stride is not supported, got stride=",
                      shape_str(p.stride));
    MPS_SHIM_OP_CHECK(p.padding[size_t(i)] >= 0, kOp, "negative padding is not supported, got padding=",
                      shape_str(p.padding));
    MPS_SHIM_OP_CHECK(p.dilation[size_t(i)] > 0, kOp, "dilation should be greater than zero, got dilation=",
                      shape_str(p.dilation));
    MPS_SHIM_OP_CHECK(p.output_padding[size_t(i)] >= 0, kOp,
                      "negative output_padding is not supported, got output_padding=", shape_str(p.output_padding));
  }
  MPS_SHIM_OP_CHECK(groups > 0, kOp, "non-positive groups is not supported, got groups=", groups);

  check_conv_dtype(input, "input");
  check_same_dtype(kOp, input, "input", weight, "weight");
  if (bias) {
    check_device(kOp, *bias, "bias");
    check_same_dtype(kOp, input, "input", *bias, "bias");
  }

  const auto& in = input.sizes();
  const auto& w = weight.sizes();
  int64_t c_out;
  if (!transposed) {
    MPS_SHIM_OP_CHECK(w[0] % groups == 0, kOp, "given groups=", groups, ", expected weight to be divisible by ",
                      groups, " at dimension 0, but got weight of size ", shape_str(w), " instead");
    MPS_SHIM_OP_CHECK(in[1] == w[1] * groups, kOp, "given groups=", groups, ", weight of size ", shape_str(w),
                      ", expected input", shape_str(in), " to have ", w[1] * groups, " channels, but got ", in[1],
                      " channels instead");
    c_out = w[0];
  } else {
    MPS_SHIM_OP_CHECK(in[1] == w[0], kOp, "given transposed=1, weight of size ", shape_str(w), ", expected input",
                      shape_str(in), " to have ", w[0], " channels, but got ", in[1], " channels instead");
    MPS_SHIM_OP_CHECK(w[0] % groups == 0, kOp, "given groups=", groups, ", expected weight to be divisible by ",
                      groups, " at dimension 0, but got weight of size ", shape_str(w), " instead");
    c_out = w[1] * groups;
  }
  if (bias) {
    MPS_SHIM_OP_CHECK(bias->dim() == 1 && bias->sizes()[0] == c_out, kOp, "given weight of size ", shape_str(w),
                      ", expected bias to be 1-dimensional with ", c_out, " elements, but got bias of size ",
                      shape_str(bias->sizes()), " instead");
  }

  std::vector<int64_t> out_sizes{in[0], c_out};
  if (!transposed) {
    std::vector<int64_t> padded, kernel;
    bool fits = true;
    for (int64_t i = 0; i < k; ++i) {
      padded.push_back(in[size_t(i + 2)] + 2 * p.padding[size_t(i)]);
      kernel.push_back(p.dilation[size_t(i)] * (w[size_t(i + 2)] - 1) + 1);
      fits = fits && padded.back() >= kernel.back();
    }
    MPS_SHIM_OP_CHECK(fits, kOp, "calculated padded input size per channel: ", sizes_x(padded),
                      ". Kernel size: ", sizes_x(kernel), ". Kernel size can't be greater than actual input size");
    for (int64_t i = 0; i < k; ++i)
      out_sizes.push_back((padded[size_t(i)] - kernel[size_t(i)]) / p.stride[size_t(i)] + 1);
  } else {
    for (int64_t i = 0; i < k; ++i) {
      const size_t s = size_t(i);
      MPS_SHIM_OP_CHECK(p.output_padding[s] < p.stride[s] || p.output_padding[s] < p.dilation[s], kOp,
                        "output padding must be smaller than either stride or dilation, but got output_padding=",
                        shape_str(p.output_padding), ", stride=", shape_str(p.stride), ", dilation=",
                        shape_str(p.dilation));
      out_sizes.push_back((in[s + 2] - 1) * p.stride[s] - 2 * p.padding[s] + p.dilation[s] * (w[s + 2] - 1) +
                          p.output_padding[s] + 1);
    }
    std::vector<int64_t> spatial(out_sizes.begin() + 2, out_sizes.end());
    bool positive = true;
    for (int64_t v : spatial) positive = positive && v >= 0;
    MPS_SHIM_OP_CHECK(positive, kOp, "given input size per channel ",
                      sizes_x(std::vector<int64_t>(in.begin() + 2, in.end())),
                      ", calculated output size per channel ", sizes_x(spatial), " is too small");
  }

  Tensor out = empty_like_format(out_sizes, input.dtype(), is_channels_last(input) || is_channels_last(weight));
  if (out.numel() == 0) return out;
  op_backend().convolution(input, weight, bias ? &*bias : nullptr, out, p);
  return out;
}

}  // namespace mps_shim::ops
