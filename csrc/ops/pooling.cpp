// avg_pool2d, max_pool2d_with_indices, _adaptive_avg_pool2d: ATen's argument
// checks and output sizes, results in self's memory format (channels-last
// input gives channels-last output, as ATen), then one backend pool.
#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

// (h, w) from a list of one or two values; `fallback` when empty and allowed.
std::pair<int64_t, int64_t> pair_arg(const char* op, const std::vector<int64_t>& v, const char* name,
                                     const std::pair<int64_t, int64_t>* fallback) {
  if (v.empty() && fallback) return *fallback;
  MPS_SHIM_OP_CHECK(v.size() == 1 || v.size() == 2, op, name, " must either be a single int, or a tuple of two ints",
                    fallback ? " (or empty)" : "", ", got ", v.size(), " values");
  return {v[0], v.size() == 2 ? v[1] : v[0]};
}

// ATen's pooling_output_shape.
int64_t output_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// self as [N, C, H, W]: a 3-D input gains N = 1.
Tensor as_4d(const Tensor& t) {
  if (t.dim() == 4) return t;
  return t.view({1, t.sizes()[0], t.sizes()[1], t.sizes()[2]}, {0, t.strides()[0], t.strides()[1], t.strides()[2]},
                t.storage_offset());
}

bool channels_last(const Tensor& t) {
  if (t.dim() != 4) return false;
  const auto& s = t.strides();
  const auto& n = t.sizes();
  return s[1] == 1 && s[3] == n[1] && s[2] == n[1] * n[3] && n[1] > 1;
}

Tensor pool_output(const Tensor& self, int64_t oh, int64_t ow, DType dtype) {
  if (self.dim() == 3) return empty_tensor({self.sizes()[0], oh, ow}, dtype);
  const int64_t n = self.sizes()[0], c = self.sizes()[1];
  if (!channels_last(self)) return empty_tensor({n, c, oh, ow}, dtype);
  return empty_tensor({n * c * oh * ow}, dtype).view({n, c, oh, ow}, {c * oh * ow, 1, ow * c, c}, 0);
}

void check_input(const char* op, const Tensor& self) {
  check_device(op, self, "self");
  MPS_SHIM_OP_CHECK(self.dim() == 3 || self.dim() == 4, op, "expected 3D or 4D (batch mode) tensor for input, got shape ",
                    shape_str(self.sizes()));
  for (int64_t d = self.dim() - 3; d < self.dim(); ++d)
    MPS_SHIM_OP_CHECK(self.sizes()[size_t(d)] > 0 || d == self.dim() - 3, op,
                      "expected input to have non-zero size for non-batch dimensions, but got shape ",
                      shape_str(self.sizes()));
  MPS_SHIM_OP_CHECK(is_floating(self.dtype()) || self.dtype() == DType::Int64, op,
                    "self must be a floating tensor (or int64), got ", dtype_name(int32_t(self.dtype())));
}

struct Window {
  Pool2dParams p;
  int64_t oh = 0, ow = 0;
};

Window window(const char* op, const Tensor& self, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode) {
  Window w;
  const auto [kh, kw] = pair_arg(op, kernel, "kernel_size", nullptr);
  const std::pair<int64_t, int64_t> k{kh, kw}, one{1, 1}, zero{0, 0};
  const auto [sh, sw] = pair_arg(op, stride, "stride", &k);
  const auto [ph, pw] = pair_arg(op, padding, "padding", &zero);
  const auto [dh, dw] = pair_arg(op, dilation, "dilation", &one);
  MPS_SHIM_OP_CHECK(kh > 0 && kw > 0, op, "kernel size should be greater than zero, but got kH: ", kh, " kW: ", kw);
  MPS_SHIM_OP_CHECK(sh > 0 && sw > 0, op, "stride should be greater than zero, but got dH: ", sh, " dW: ", sw);
  MPS_SHIM_OP_CHECK(dh > 0 && dw > 0, op, "dilation should be greater than zero, but got dilationH: ", dh,
                    " dilationW: ", dw);
  MPS_SHIM_OP_CHECK(ph >= 0 && pw >= 0 && ph <= kh / 2 && pw <= kw / 2, op,
                    "pad should be at most half of effective kernel size, but got pad=(", ph, ", ", pw,
                    "), kernel_size=(", kh, ", ", kw, ")");
  const int64_t H = self.sizes()[size_t(self.dim() - 2)], W = self.sizes()[size_t(self.dim() - 1)];
  w.oh = output_size(H, kh, ph, sh, dh, ceil_mode);
  w.ow = output_size(W, kw, pw, sw, dw, ceil_mode);
  MPS_SHIM_OP_CHECK(w.oh > 0 && w.ow > 0, op, "given input size ", shape_str(self.sizes()),
                    ", the calculated output size (", w.oh, "x", w.ow, ") is too small");
  w.p.kh = kh; w.p.kw = kw; w.p.sh = sh; w.p.sw = sw; w.p.ph = ph; w.p.pw = pw; w.p.dh = dh; w.p.dw = dw;
  return w;
}

}  // namespace

Tensor avg_pool2d(const Tensor& self, const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
                  const std::vector<int64_t>& padding, bool ceil_mode, bool count_include_pad,
                  const int64_t* divisor_override) {
  const char* op = "avg_pool2d";
  check_input(op, self);
  MPS_SHIM_OP_CHECK(!divisor_override || *divisor_override != 0, op, "divisor must be not zero");
  Window w = window(op, self, kernel_size, stride, padding, {}, ceil_mode);
  w.p.kind = Pool2dParams::Avg;
  w.p.count_include_pad = count_include_pad;
  w.p.divisor_override = divisor_override ? *divisor_override : 0;
  Tensor out = pool_output(self, w.oh, w.ow, self.dtype());
  if (out.numel() != 0) op_backend().pool2d(as_4d(self), as_4d(out), nullptr, w.p);
  return out;
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& self, const std::vector<int64_t>& kernel_size,
                                                  const std::vector<int64_t>& stride,
                                                  const std::vector<int64_t>& padding,
                                                  const std::vector<int64_t>& dilation, bool ceil_mode) {
  const char* op = "max_pool2d_with_indices";
  check_input(op, self);
  Window w = window(op, self, kernel_size, stride, padding, dilation, ceil_mode);
  w.p.kind = Pool2dParams::Max;
  Tensor out = pool_output(self, w.oh, w.ow, self.dtype());
  Tensor indices = pool_output(self, w.oh, w.ow, DType::Int64);
  if (out.numel() != 0) {
    const Tensor idx4 = as_4d(indices);
    op_backend().pool2d(as_4d(self), as_4d(out), &idx4, w.p);
  }
  return {out, indices};
}

Tensor adaptive_avg_pool2d(const Tensor& self, const std::vector<int64_t>& output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_input(op, self);
  MPS_SHIM_OP_CHECK(output_size.size() == 2, op, "output_size must be 2, got ", output_size.size(), " values");
  MPS_SHIM_OP_CHECK(output_size[0] >= 0 && output_size[1] >= 0, op,
                    "elements of output_size must be greater than or equal to 0 but received {", output_size[0], ", ",
                    output_size[1], "}");
  Pool2dParams p;
  p.kind = Pool2dParams::AdaptiveAvg;
  Tensor out = pool_output(self, output_size[0], output_size[1], self.dtype());
  if (out.numel() != 0) op_backend().pool2d(as_4d(self), as_4d(out), nullptr, p);
  return out;
}

}  // namespace mps_shim::ops
