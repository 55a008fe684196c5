// fastadv::nearest_fill on CUDA tensors: checks the operands, launches kernels/nearest_fill.cu.
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "csrc/nearest_fill.h"
#include "kernels/nearest_fill_launch.h"

namespace fastadv {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> nearest_fill_cuda(const at::Tensor& labels,
                                                                 const at::Tensor& hide,
                                                                 bool with_distance) {
  const c10::cuda::CUDAGuard guard(labels.device());
  NearestFillTensors tensors;
  const NearestFillArgs a = make_nearest_fill_args(labels, hide, with_distance, tensors);
  if (labels.numel() == 0) {
    tensors.empty.zero_();
    return tensors.result();
  }
  // The envelope stacks of every column: [2, B, H, W] int32.
  const at::Tensor stacks = at::empty({2 * labels.numel()}, labels.options().dtype(at::kInt));
  C10_CUDA_CHECK(launch_nearest_fill(a, stacks.mutable_data_ptr<int32_t>(),
                                     c10::cuda::getCurrentCUDAStream()));
  return tensors.result();
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CUDA, m) { m.impl("nearest_fill", &nearest_fill_cuda); }

}  // namespace fastadv
