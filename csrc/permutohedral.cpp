// fastadv::permutohedral_lattice and fastadv::permutohedral_filter: the schemas, and the operand
// checks and packing of every device's kernels.
#include "csrc/permutohedral.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <array>
#include <vector>

namespace fastadv {

TORCH_LIBRARY_FRAGMENT(fastadv, m) {
  m.def(
      "permutohedral_lattice(Tensor features) -> (Tensor offsets, Tensor weights, "
      "Tensor neighbours, Tensor order)");
  m.def(
      "permutohedral_filter(Tensor values, Tensor[] offsets, Tensor[] weights, Tensor[] "
      "neighbours, "
      "Tensor[] order, bool transpose, Tensor? add=None, bool softmax=False) -> Tensor");
}

int check_lattice_features(const at::Tensor& features) {
  TORCH_CHECK(features.dim() == 3, "features must be 3-d [B, N, d], got shape ", features.sizes());
  TORCH_CHECK(features.scalar_type() == at::kFloat || features.scalar_type() == at::kDouble,
              "features must be float32 or float64, got ", features.scalar_type());
  TORCH_CHECK(features.is_contiguous(), "features must be contiguous");
  const int64_t dim = features.size(2);
  TORCH_CHECK(dim >= 1 && dim <= kLatticeMaxDim, "features must have 1 to ", kLatticeMaxDim,
              " dimensions, got ", dim);
  TORCH_CHECK(features.size(0) <= kLatticeMaxImages, "at most ", kLatticeMaxImages,
              " images a lattice, got ", features.size(0));
  TORCH_CHECK(features.size(0) * features.size(1) * (dim + 1) < (int64_t{1} << 31),
              "features: too many pixels for a lattice (pixels x (d + 1) must stay below 2^31)");
  return static_cast<int>(dim);
}

LatticeTensors allocate_lattice(const at::Tensor& features, int dim) {
  const int64_t batch = features.size(0), pixels = features.size(1);
  const auto on = features.options();
  LatticeTensors t;
  t.offsets = at::empty({batch, pixels, dim + 1}, on.dtype(at::kInt));
  t.weights = at::empty({batch, pixels, dim + 1}, on);
  t.order = at::empty({batch * pixels * (dim + 1)}, on.dtype(at::kInt));
  return t;
}

namespace {

LatticeFilterArgs check_lattice(const at::Tensor& values, const at::Tensor& offsets,
                                const at::Tensor& weights, const at::Tensor& neighbours,
                                const at::Tensor& order) {
  TORCH_CHECK(neighbours.dim() == 3 && neighbours.size(2) == 2 && neighbours.size(0) >= 2 &&
                  neighbours.size(0) <= kLatticeMaxDim + 1,
              "neighbours must be [d + 1, M, 2] with 1 <= d <= ", kLatticeMaxDim, ", got shape ",
              neighbours.sizes());
  const int64_t batch = values.size(0), pixels = values.size(1), vertices = neighbours.size(1);
  const int64_t corners = neighbours.size(0);
  const std::array<int64_t, 3> pair_dims{batch, pixels, corners};
  const at::IntArrayRef pairs_shape(pair_dims);
  TORCH_CHECK(offsets.sizes() == pairs_shape, "offsets must be ", pairs_shape, " for values ",
              values.sizes(), " and neighbours ", neighbours.sizes(), ", got ", offsets.sizes());
  TORCH_CHECK(weights.sizes() == pairs_shape, "weights must be ", pairs_shape, ", got ",
              weights.sizes());
  TORCH_CHECK(order.dim() == 1 && order.size(0) == offsets.numel(), "order must be [",
              offsets.numel(), "], got ", order.sizes());
  TORCH_CHECK(weights.scalar_type() == values.scalar_type(), "weights have dtype ",
              weights.scalar_type(), " but values have ", values.scalar_type());
  for (const at::Tensor* t : {&offsets, &neighbours, &order}) {
    TORCH_CHECK(t->scalar_type() == at::kInt, "offsets, neighbours and order must be int32");
  }
  for (const at::Tensor* t : {&offsets, &weights, &neighbours, &order}) {
    TORCH_CHECK(t->device() == values.device(), "the lattice is on ", t->device(),
                " but values are on ", values.device());
    TORCH_CHECK(t->is_contiguous(), "the lattice's tensors must be contiguous");
  }
  TORCH_CHECK(vertices < (int64_t{1} << 31) - 1, "neighbours: too many vertices");
  LatticeFilterArgs a{};
  a.offsets = offsets.const_data_ptr<int32_t>();
  a.weights = weights.const_data_ptr();
  a.neighbours = neighbours.const_data_ptr<int32_t>();
  a.order = order.const_data_ptr<int32_t>();
  a.vertices = vertices;
  a.dim = static_cast<int32_t>(corners - 1);
  return a;
}

}  // namespace

std::vector<LatticeFilterArgs> make_lattice_filter_args(
    const at::Tensor& values, at::TensorList offsets, at::TensorList weights,
    at::TensorList neighbours, at::TensorList order, bool transpose,
    const std::optional<at::Tensor>& add, at::Tensor& out) {
  TORCH_CHECK(values.dim() == 3, "values must be 3-d [B, N, C], got shape ", values.sizes());
  TORCH_CHECK(values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble,
              "values must be float32 or float64, got ", values.scalar_type());
  TORCH_CHECK(values.is_contiguous(), "values must be contiguous");
  TORCH_CHECK(!offsets.empty() && weights.size() == offsets.size() &&
                  neighbours.size() == offsets.size() && order.size() == offsets.size(),
              "offsets, weights, neighbours and order must list the same lattices, at least one");
  if (add.has_value()) {
    TORCH_CHECK(add->sizes() == values.sizes() && add->scalar_type() == values.scalar_type() &&
                    add->device() == values.device() && add->is_contiguous(),
                "add must be a contiguous tensor of the values' shape, dtype and device");
  }
  out = at::empty_like(values);
  std::vector<LatticeFilterArgs> lattices;
  for (size_t l = 0; l < offsets.size(); ++l) {
    LatticeFilterArgs a = check_lattice(values, offsets[l], weights[l], neighbours[l], order[l]);
    a.values = values.const_data_ptr();
    a.add = add.has_value() ? add->const_data_ptr() : nullptr;
    a.out = out.mutable_data_ptr();
    a.pixels = values.size(0) * values.size(1);
    a.channels = static_cast<int32_t>(values.size(2));
    a.transpose = transpose;
    a.is_double = values.scalar_type() == at::kDouble;
    lattices.push_back(a);
  }
  return lattices;
}

}  // namespace fastadv
