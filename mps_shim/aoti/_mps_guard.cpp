// A do-nothing DeviceGuard for DeviceType::MPS, loaded into a CPU-only torch
// while exporting. torch's Python bindings open a DeviceGuard for any tensor
// argument, FakeTensors included; without an implementation registered for
// MPS they fail with "PyTorch is not linked with support for mps devices".
// There is one MPS device, index 0, and one default stream.
//
// Installed only for the length of an export, and only where no MPS guard is
// registered (a Mac build of torch has a real one): exporting leaves torch's
// global state as it found it.
#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace {

using c10::Device;
using c10::DeviceIndex;
using c10::DeviceType;
using c10::Stream;

struct NoOpMpsGuard final : c10::impl::DeviceGuardImplInterface {
  DeviceType type() const override { return DeviceType::MPS; }
  Device exchangeDevice(Device) const override { return Device(DeviceType::MPS, 0); }
  Device getDevice() const override { return Device(DeviceType::MPS, 0); }
  void setDevice(Device) const override {}
  void uncheckedSetDevice(Device) const noexcept override {}
  Stream getStream(Device) const override { return Stream(Stream::DEFAULT, Device(DeviceType::MPS, 0)); }
  Stream exchangeStream(Stream) const override { return Stream(Stream::DEFAULT, Device(DeviceType::MPS, 0)); }
  DeviceIndex deviceCount() const noexcept override { return 1; }
};

}  // namespace

extern "C" {

// 1 if this call installed the no-op guard, 0 if an MPS guard was already there.
int mps_shim_install_mps_guard() {
  static const NoOpMpsGuard guard;
  const c10::impl::DeviceGuardImplInterface* expected = nullptr;
  auto& slot = c10::impl::device_guard_impl_registry[static_cast<size_t>(DeviceType::MPS)];
  return slot.compare_exchange_strong(expected, &guard) ? 1 : 0;
}

void mps_shim_uninstall_mps_guard() {
  auto& slot = c10::impl::device_guard_impl_registry[static_cast<size_t>(DeviceType::MPS)];
  slot.store(nullptr);
}

}  // extern "C"
