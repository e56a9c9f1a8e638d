// Wraps a device and limits its bandwidth to emulate a slower one. Every
// batch reserves the device for bytes / bandwidth seconds on a shared
// timeline and the worker sleeps until its reservation ends, so concurrent
// workers together never exceed the limit.
#pragma once

#include "tier/device.h"

namespace kvpool {

// REQUIRES: gibps > 0.
std::unique_ptr<Device> NewThrottledDevice(std::unique_ptr<Device> inner, double gibps);

}  // namespace kvpool
