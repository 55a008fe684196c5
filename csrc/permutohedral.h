// Host side of fastadv::permutohedral_lattice and fastadv::permutohedral_filter, shared by the CPU
// and CUDA wrappers.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <vector>

#include "kernels/permutohedral_math.h"

namespace fastadv {

// A lattice as the ops pass it around (see fastadv/reference/permutohedral.py): per pair (pixel,
// vertex r) its vertex id and barycentric weight, the blur neighbours of every vertex, and the
// pairs sorted by vertex.
struct LatticeTensors {
  at::Tensor offsets, weights, neighbours, order;

  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> result() const {
    return {offsets, weights, neighbours, order};
  }
};

// Checks the features of fastadv::permutohedral_lattice ([B, N, d], float32 or float64,
// contiguous, 1 <= d <= kLatticeMaxDim) and returns d.
int check_lattice_features(const at::Tensor& features);

// Allocates offsets [B, N, d+1] int32, weights [B, N, d+1] (the features' dtype) and order [P]
// int32 on the features' device; neighbours stay undefined (their size is known at the end).
LatticeTensors allocate_lattice(const at::Tensor& features, int dim);

// Checks the operands of fastadv::permutohedral_filter (values and a list of lattices), allocates
// its output and packs one LatticeFilterArgs a lattice, all but the lattice buffers, which each
// device lays out its own way.
std::vector<LatticeFilterArgs> make_lattice_filter_args(
    const at::Tensor& values, at::TensorList offsets, at::TensorList weights,
    at::TensorList neighbours, at::TensorList order, bool transpose,
    const std::optional<at::Tensor>& add, at::Tensor& out);

}  // namespace fastadv
