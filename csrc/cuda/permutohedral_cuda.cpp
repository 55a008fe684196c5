// fastadv::permutohedral_lattice and fastadv::permutohedral_filter on CUDA tensors: the operand
// checks, the sorts that number the vertices (ATen's), and the kernels of
// kernels/permutohedral.cu.
//
// The lattice: every pair's vertex key (a kernel), the pairs sorted by key, one vertex a run of
// equal keys, numbered by the first pair of its run (stable sorts keep pairs in order within a
// run) so that the numbering is the CPU's; then the neighbours by binary search among the keys.
#include <ATen/ops/arange.h>
#include <ATen/ops/argsort.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "csrc/permutohedral.h"
#include "kernels/permutohedral_launch.h"

namespace fastadv {
namespace {

// The permutation that sorts the rows of keys [P, words] lexicographically, stably: a stable sort
// by each word, the last first.
at::Tensor lexicographic_order(const at::Tensor& keys) {
  at::Tensor order = at::arange(keys.size(0), keys.options());
  for (int64_t w = keys.size(1) - 1; w >= 0; --w) {
    const at::Tensor word = keys.select(1, w).index_select(0, order);
    order = order.index_select(0, std::get<1>(at::sort(word, /*stable=*/true, 0, false)));
  }
  return order;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> permutohedral_lattice_cuda(
    const at::Tensor& features) {
  const c10::cuda::CUDAGuard guard(features.device());
  const int dim = check_lattice_features(features);
  LatticeTensors t = allocate_lattice(features, dim);
  const int64_t pairs = t.offsets.numel(), words = (dim + 4) / 4;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const auto longs = features.options().dtype(at::kLong);

  const at::Tensor keys = at::empty({pairs, words}, longs);
  const at::Tensor out_of_range = at::zeros({1}, features.options().dtype(at::kInt));
  LatticeKeysArgs k{};
  k.features = features.const_data_ptr();
  k.keys = reinterpret_cast<uint64_t*>(keys.mutable_data_ptr<int64_t>());
  k.weights = t.weights.mutable_data_ptr();
  k.out_of_range = out_of_range.mutable_data_ptr<int32_t>();
  k.batch = features.size(0);
  k.pixels = features.size(1);
  k.dim = dim;
  k.is_double = features.scalar_type() == at::kDouble;
  C10_CUDA_CHECK(launch_lattice_keys(k, stream));
  TORCH_CHECK(out_of_range.item<int32_t>() == 0,
              "features are too large or not finite: the lattice's coordinates must fit 16 bits "
              "(|feature| up to about ",
              kLatticeMaxCoord / (dim + 1) / 2, ")");

  // Runs of equal keys among the sorted pairs: one vertex each.
  const at::Tensor by_key = lexicographic_order(keys);
  const at::Tensor sorted_keys = keys.index_select(0, by_key);
  const at::Tensor starts_run = at::ones({pairs}, features.options().dtype(at::kBool));
  if (pairs > 1) {
    starts_run.slice(0, 1).copy_(
        sorted_keys.slice(0, 1).ne(sorted_keys.slice(0, 0, pairs - 1)).any(1));
  }
  const at::Tensor run_of_pair = at::cumsum(starts_run, 0).sub_(1);
  const at::Tensor run_starts = at::nonzero(starts_run).squeeze(1);
  const int64_t vertices = run_starts.size(0);
  // A run's vertex id: its rank by first pair.
  const at::Tensor by_touch = at::argsort(by_key.index_select(0, run_starts));
  const at::Tensor vertex_of_run = at::empty({vertices}, longs);
  vertex_of_run.index_put_({by_touch}, at::arange(vertices, longs));
  t.offsets.view(-1).index_put_({by_key}, vertex_of_run.index_select(0, run_of_pair).to(at::kInt));

  const at::Tensor run_keys = sorted_keys.index_select(0, run_starts).contiguous();
  const at::Tensor vertex_keys = run_keys.index_select(0, by_touch).contiguous();
  const at::Tensor run_vertex = vertex_of_run.to(at::kInt);
  t.neighbours = at::empty({dim + 1, vertices, 2}, t.offsets.options());
  LatticeNeighbourArgs n{};
  n.keys = reinterpret_cast<const uint64_t*>(vertex_keys.const_data_ptr<int64_t>());
  n.sorted_keys = reinterpret_cast<const uint64_t*>(run_keys.const_data_ptr<int64_t>());
  n.sorted_vertex = run_vertex.const_data_ptr<int32_t>();
  n.neighbours = t.neighbours.mutable_data_ptr<int32_t>();
  n.vertices = vertices;
  n.dim = dim;
  C10_CUDA_CHECK(launch_lattice_neighbours(n, stream));
  t.order.copy_(at::argsort(t.offsets.view(-1), /*stable=*/true));
  return t.result();
}

// The lattices one after the other, each slice adding to the output the previous one wrote.
at::Tensor permutohedral_filter_cuda(const at::Tensor& values, at::TensorList offsets,
                                     at::TensorList weights, at::TensorList neighbours,
                                     at::TensorList order, bool transpose,
                                     const std::optional<at::Tensor>& add, bool softmax) {
  const c10::cuda::CUDAGuard guard(values.device());
  at::Tensor out;
  std::vector<LatticeFilterArgs> args =
      make_lattice_filter_args(values, offsets, weights, neighbours, order, transpose, add, out);
  if (out.numel() == 0) return out;
  const at::Tensor input = softmax ? at::softmax(values, -1) : values;
  for (size_t l = 0; l < args.size(); ++l) {
    LatticeFilterArgs& a = args[l];
    const at::Tensor lattice = at::zeros({2, a.vertices + 1, a.channels}, values.options());
    a.values = input.const_data_ptr();
    a.add = l > 0 ? out.const_data_ptr() : a.add;  // each thread reads, then writes, its element
    a.lattice = lattice[0].mutable_data_ptr();
    a.lattice_swap = lattice[1].mutable_data_ptr();
    C10_CUDA_CHECK(launch_lattice_filter(a, c10::cuda::getCurrentCUDAStream()));
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CUDA, m) {
  m.impl("permutohedral_lattice", &permutohedral_lattice_cuda);
  m.impl("permutohedral_filter", &permutohedral_filter_cuda);
}

}  // namespace fastadv
