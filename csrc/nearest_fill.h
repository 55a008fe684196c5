// Host side of fastadv::nearest_fill, shared by the CPU and CUDA wrappers.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "kernels/nearest_fill_math.h"

namespace fastadv {

// fastadv::nearest_fill's outputs: the filled labels, the distance (shape [0] when not asked
// for) and empty [B]; `site` is pass 1's scratch.
struct NearestFillTensors {
  at::Tensor out, distance, empty, site;

  std::tuple<at::Tensor, at::Tensor, at::Tensor> result() const { return {out, distance, empty}; }
};

// Checks the operands of fastadv::nearest_fill, allocates the outputs on their device and packs
// everything for a kernel. The tensors must stay alive while the kernel runs.
NearestFillArgs make_nearest_fill_args(const at::Tensor& labels, const at::Tensor& hide,
                                       bool with_distance, NearestFillTensors& tensors);

}  // namespace fastadv
