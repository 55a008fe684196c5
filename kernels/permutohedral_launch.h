// Host entry points of the CUDA kernels of the permutohedral lattice (permutohedral.cu), callable
// from plain C++ (the torch wrapper csrc/cuda/permutohedral_cuda.cpp). Each launches on the given
// stream and returns the launch's error code.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/permutohedral_math.h"

namespace fastadv {

// Every pair's vertex key and barycentric weight (one thread a pixel).
cudaError_t launch_lattice_keys(const LatticeKeysArgs& args, cudaStream_t stream);

// Every vertex's blur neighbours, by binary search among the sorted keys.
cudaError_t launch_lattice_neighbours(const LatticeNeighbourArgs& args, cudaStream_t stream);

// Splat, blur and slice; args.lattice and args.lattice_swap must hold zeros.
cudaError_t launch_lattice_filter(const LatticeFilterArgs& args, cudaStream_t stream);

}  // namespace fastadv
