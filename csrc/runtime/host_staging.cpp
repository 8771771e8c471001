#include "runtime/host_staging.h"

#include <algorithm>

#include "runtime/backend.h"

namespace mps_shim {

bool needs_staging(const Tensor& t) {
  return t.numel() != 0 && t.device() == DeviceType::MPS && !backend().host_addressable();
}

namespace {

constexpr size_t kMirrorAlign = 64;  // a multiple of every element size, so views keep whole-element offsets

size_t view_begin(const Tensor& t) { return size_t(t.data() - static_cast<char*>(t.storage()->data)); }
size_t view_end(const Tensor& t) { return view_begin(t) + span_bytes(t.sizes(), t.strides(), t.element_size()); }

}  // namespace

HostStaging::HostStaging(const std::vector<Use>& uses) {
  std::vector<size_t> mirror_of(uses.size(), size_t(-1));
  for (size_t i = 0; i < uses.size(); ++i) {
    const Tensor* t = uses[i].tensor;
    if (!t || !needs_staging(*t)) continue;
    Storage* s = t->storage().get();
    auto m = std::find_if(mirrors_.begin(), mirrors_.end(), [&](const Mirror& x) { return x.device == s; });
    if (m == mirrors_.end()) m = mirrors_.insert(mirrors_.end(), Mirror{s, view_begin(*t), view_end(*t), nullptr});
    m->lo = std::min(m->lo, view_begin(*t) / kMirrorAlign * kMirrorAlign);
    m->hi = std::max(m->hi, view_end(*t));
    m->written = m->written || uses[i].access == Write;
    mirror_of[i] = size_t(m - mirrors_.begin());
  }
  for (Mirror& m : mirrors_) {
    m.host = allocate_storage(m.hi - m.lo, DeviceType::CPU);
    backend().copy(m.host->data, static_cast<char*>(m.device->data) + m.lo, m.hi - m.lo, CopyKind::DeviceToHost);
  }
  host_.resize(uses.size());
  for (size_t i = 0; i < uses.size(); ++i) {
    const Tensor* t = uses[i].tensor;
    if (!t) continue;
    if (mirror_of[i] == size_t(-1)) {
      host_[i] = std::make_unique<Tensor>(*t);
      continue;
    }
    const Mirror& m = mirrors_[mirror_of[i]];
    const int64_t offset = int64_t((view_begin(*t) - m.lo) / t->element_size());
    host_[i] = std::make_unique<Tensor>(m.host, t->sizes(), t->strides(), offset, t->dtype(), t->device_index());
  }
}

void HostStaging::write_back() {
  for (const Mirror& m : mirrors_)
    if (m.written)
      backend().copy(static_cast<char*>(m.device->data) + m.lo, m.host->data, m.hi - m.lo, CopyKind::HostToDevice);
}

}  // namespace mps_shim
