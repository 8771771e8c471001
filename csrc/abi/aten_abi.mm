// aoti_torch_mps_<op>: the ATen fallback ops of torch's c_shim_mps.h, as
// one-line forwarders to csrc/ops/ (which checks and computes).
#include "abi/guard.h"
#include "abi/tensor_handles.h"
#include "mps_shim_aten.h"
#include "ops/ops.h"

using namespace mps_shim;
using mps_shim::abi::guard;
using mps_shim::abi::publish;
using mps_shim::abi::tensor;

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

}  // extern "C"
