// Host side of fastadv::sign_step_, shared by the CPU and CUDA wrappers.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "kernels/sign_step_math.h"

namespace fastadv {

// Checks the operands of fastadv::sign_step_ and packs them for a kernel. The tensors must stay
// alive while the kernel runs (the args hold raw pointers).
SignStepArgs make_sign_step_args(const at::Tensor& x, const at::Tensor& x0, const at::Tensor& grad,
                                 double step, const std::optional<at::Tensor>& step_map, double eps,
                                 const std::optional<at::Tensor>& eps_map, double lo, double hi,
                                 const std::optional<at::Tensor>& mask,
                                 const std::optional<at::Tensor>& active,
                                 std::optional<double> quantum);

}  // namespace fastadv
