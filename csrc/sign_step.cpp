// fastadv::sign_step_: the schema, and the operand checks and packing of every device's kernel.
#include "csrc/sign_step.h"

#include <torch/library.h>

#include "csrc/layout.h"

namespace fastadv {

TORCH_LIBRARY_FRAGMENT(fastadv, m) {
  m.def(
      "sign_step_(Tensor(a!) x, Tensor x0, Tensor grad, float step, Tensor? step_map, float eps, "
      "Tensor? eps_map, float lo, float hi, Tensor? mask, Tensor? active, float? quantum) -> ()");
}

namespace {

void check_same(const at::Tensor& x, const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device() == x.device(), what, " is on ", t.device(), " but x is on ", x.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), what, " has dtype ", t.scalar_type(),
              " but x has ", x.scalar_type());
  TORCH_CHECK(t.sizes() == x.sizes(), what, " has shape ", t.sizes(), " but x has ", x.sizes());
  TORCH_CHECK(t.strides() == x.strides(), what, " has strides ", t.strides(), " but x has ",
              x.strides(), " (give all three the same memory format)");
}

// Broadcast operand: its device and dtype are checked, its strides taken in x's memory order.
const void* broadcast_operand(const std::optional<at::Tensor>& t, const at::Tensor& x,
                              const MemoryOrder& order, at::ScalarType dtype, const char* what,
                              Strides4& strides) {
  strides = Strides4{};
  if (!t.has_value()) return nullptr;
  TORCH_CHECK(t->device() == x.device(), what, " is on ", t->device(), " but x is on ", x.device());
  TORCH_CHECK(t->scalar_type() == dtype, what, " must have dtype ", dtype, ", got ",
              t->scalar_type());
  strides = order.broadcast_strides(*t, x.sizes(), what);
  return t->data_ptr();
}

}  // namespace

SignStepArgs make_sign_step_args(const at::Tensor& x, const at::Tensor& x0, const at::Tensor& grad,
                                 double step, const std::optional<at::Tensor>& step_map, double eps,
                                 const std::optional<at::Tensor>& eps_map, double lo, double hi,
                                 const std::optional<at::Tensor>& mask,
                                 const std::optional<at::Tensor>& active,
                                 std::optional<double> quantum) {
  check_same(x, x0, "x0");
  check_same(x, grad, "grad");
  // Only what memory safety needs is checked here; the values (eps >= 0, lo <= hi, ...) are
  // checked once, by fastadv.ops.sign_step_ / SignStep.prepare.
  const MemoryOrder order = MemoryOrder::of(x, "x");
  const at::ScalarType acc = compute_scalar_type(x.scalar_type(), "x");

  SignStepArgs a{};
  a.x = x.data_ptr();
  a.x0 = x0.data_ptr();
  a.grad = grad.data_ptr();
  a.dtype = to_kernel_dtype(x.scalar_type(), "x");
  a.numel = x.numel();
  a.shape = order.shape;
  a.step = step;
  a.eps = eps;
  a.lo = lo;
  a.hi = hi;
  a.quantum = quantum.value_or(0.0);
  a.step_map = broadcast_operand(step_map, x, order, acc, "step", a.step_strides);
  a.eps_map = broadcast_operand(eps_map, x, order, acc, "eps", a.eps_strides);
  a.mask = broadcast_operand(mask, x, order, acc, "mask", a.mask_strides);
  a.active = static_cast<const bool*>(
      broadcast_operand(active, x, order, at::kBool, "active", a.active_strides));
  return a;
}

}  // namespace fastadv
