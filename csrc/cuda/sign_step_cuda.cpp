// fastadv::sign_step_ on CUDA tensors: checks and packs the operands, launches
// kernels/sign_step.cu.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "csrc/sign_step.h"
#include "kernels/sign_step_launch.h"

namespace fastadv {
namespace {

void sign_step_cuda(at::Tensor& x, const at::Tensor& x0, const at::Tensor& grad, double step,
                    const std::optional<at::Tensor>& step_map, double eps,
                    const std::optional<at::Tensor>& eps_map, double lo, double hi,
                    const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& active,
                    std::optional<double> quantum) {
  const SignStepArgs a =
      make_sign_step_args(x, x0, grad, step, step_map, eps, eps_map, lo, hi, mask, active, quantum);
  const c10::cuda::CUDAGuard guard(x.device());
  C10_CUDA_CHECK(launch_sign_step(a, c10::cuda::getCurrentCUDAStream()));
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CUDA, m) { m.impl("sign_step_", &sign_step_cuda); }

}  // namespace fastadv
