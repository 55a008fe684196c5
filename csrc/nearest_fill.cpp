// fastadv::nearest_fill: the schema, and the operand checks and packing of every device's kernel.
#include "csrc/nearest_fill.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

namespace fastadv {

TORCH_LIBRARY_FRAGMENT(fastadv, m) {
  m.def(
      "nearest_fill(Tensor labels, Tensor hide, bool with_distance) -> (Tensor filled, "
      "Tensor distance, Tensor empty)");
}
namespace {

LabelType to_label_type(at::ScalarType type) {
  switch (type) {
    case at::kByte: return LabelType::UInt8;
    case at::kInt: return LabelType::Int32;
    case at::kLong: return LabelType::Int64;
    default: TORCH_CHECK(false, "labels must be uint8, int32 or int64, got ", type);
  }
}

}  // namespace

NearestFillArgs make_nearest_fill_args(const at::Tensor& labels, const at::Tensor& hide,
                                       bool with_distance, NearestFillTensors& tensors) {
  TORCH_CHECK(labels.dim() == 3, "labels must be 3-d [B, H, W], got shape ", labels.sizes());
  TORCH_CHECK(hide.scalar_type() == at::kBool, "hide must be bool, got ", hide.scalar_type());
  TORCH_CHECK(hide.sizes() == labels.sizes(), "hide has shape ", hide.sizes(), " but labels has ",
              labels.sizes());
  TORCH_CHECK(hide.device() == labels.device(), "hide is on ", hide.device(), " but labels is on ",
              labels.device());
  TORCH_CHECK(labels.is_contiguous() && hide.is_contiguous(), "labels and hide must be contiguous");
  const int64_t batch = labels.size(0), height = labels.size(1), width = labels.size(2);
  TORCH_CHECK(height <= kMaxSide && width <= kMaxSide, "labels must be at most ", kMaxSide, "x",
              kMaxSide, " pixels, got ", height, "x", width);

  const auto on = labels.options();
  tensors.out = at::empty_like(labels);
  tensors.distance =
      at::empty(with_distance ? labels.sizes() : at::IntArrayRef{0}, on.dtype(at::kFloat));
  tensors.empty = at::empty({batch}, on.dtype(at::kBool));
  tensors.site = at::empty(labels.sizes(), on.dtype(at::kInt));

  NearestFillArgs a{};
  a.labels = labels.const_data_ptr();
  a.hide = hide.const_data_ptr<bool>();
  a.out = tensors.out.mutable_data_ptr();
  a.distance = with_distance ? tensors.distance.mutable_data_ptr<float>() : nullptr;
  a.empty = tensors.empty.mutable_data_ptr<bool>();
  a.site = tensors.site.mutable_data_ptr<int32_t>();
  a.label_type = to_label_type(labels.scalar_type());
  a.batch = batch;
  a.height = static_cast<int32_t>(height);
  a.width = static_cast<int32_t>(width);
  return a;
}

}  // namespace fastadv
