// The permutohedral lattice of Adams, Baek and Davis (2010), "Fast High-Dimensional Filtering Using
// the Permutohedral Lattice": the math shared by the CPU and CUDA kernels and the launch arguments.
//
// A feature f in R^d (already divided by the kernel's standard deviations) is scaled and lifted
// onto the hyperplane sum(x) = 0 of R^(d+1) (their "elevation", E f). The lattice points there are
// the integer vectors whose coordinates are all congruent modulo d+1 and sum to zero; their
// Delaunay cells are simplices, and the one that encloses x has d+1 vertices, each of some
// "remainder" r = 0..d, found by rounding to the nearest remainder-0 point and sorting the
// differences. A value is splatted onto those vertices with its barycentric weights, blurred by
// [1/2, 1, 1/2] along each of the d+1 lattice directions (a Gaussian in all, to a good
// approximation) and sliced back with the same weights. The scaling constants make the result
// approximate sum_j exp(-|f_i - f_j|^2 / 2) v_j, the dense Gaussian filter.
//
// Lattice points are keyed by their first d coordinates (the last is minus their sum) and by the
// index of their image in the batch, in 16-bit fields packed into 64-bit words.
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace fastadv {

constexpr int kLatticeMaxDim = 8;
// Lattice coordinates are 16-bit fields; this bound leaves room for a neighbour's step of d+1.
constexpr int32_t kLatticeMaxCoord = 30000;
constexpr int64_t kLatticeMaxImages = 65536;

// The packed key of a lattice point of dimension D: field 0 is the image index, field 1 + k the
// k-th coordinate offset by 2^15.
template <int D>
struct LatticeKey {
  static constexpr int kWords = (D + 1 + 3) / 4;
  uint64_t word[kWords];

  FASTADV_HD void set_field(int f, uint32_t v) {
    const int shift = 16 * (f % 4);
    word[f / 4] = (word[f / 4] & ~(uint64_t{0xffff} << shift)) | (uint64_t{v & 0xffffu} << shift);
  }
  FASTADV_HD uint32_t field(int f) const {
    return static_cast<uint32_t>(word[f / 4] >> (16 * (f % 4))) & 0xffffu;
  }
  FASTADV_HD int32_t coord(int k) const { return static_cast<int32_t>(field(k + 1)) - 32768; }
  FASTADV_HD void set_coord(int k, int32_t v) {
    set_field(k + 1, static_cast<uint32_t>(v + 32768));
  }

  FASTADV_HD bool operator==(const LatticeKey& o) const {
    bool same = true;
    for (int w = 0; w < kWords; ++w) same &= word[w] == o.word[w];
    return same;
  }
  // Lexicographic by word (the order the CUDA build sorts by, as signed 64-bit integers).
  FASTADV_HD bool operator<(const LatticeKey& o) const {
    for (int w = 0; w < kWords; ++w) {
      const int64_t a = static_cast<int64_t>(word[w]), b = static_cast<int64_t>(o.word[w]);
      if (a != b) return a < b;
    }
    return false;
  }
  // Every bit of the key reaches the low bits that index a table (murmur3's finaliser a word).
  FASTADV_HD uint64_t hash() const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int w = 0; w < kWords; ++w) {
      h ^= word[w];
      h ^= h >> 33;
      h *= 0xff51afd7ed558ccdull;
      h ^= h >> 33;
      h *= 0xc4ceb9fe1a85ec53ull;
      h ^= h >> 33;
    }
    return h;
  }
};

// The enclosing simplex of one feature: the remainder-0 point rem0 and each coordinate's rank,
// which give the d+1 vertices, and the barycentric weight of each vertex.
template <int D, typename T>
struct Simplex {
  int32_t rem0[D + 1];
  int32_t rank[D + 1];
  T weight[D + 1];
  bool in_range;  // false when a coordinate does not fit the keys (or the feature is not finite)

  FASTADV_HD bool same_cell(const Simplex& o) const {
    bool same = true;
    for (int i = 0; i <= D; ++i) same &= rem0[i] == o.rem0[i] && rank[i] == o.rank[i];
    return same;
  }

  // The key of vertex r (0..D) in image `image`.
  FASTADV_HD LatticeKey<D> vertex(int r, uint32_t image) const {
    LatticeKey<D> key{};
    key.set_field(0, image);
    for (int k = 0; k < D; ++k) key.set_coord(k, rem0[k] + (rank[k] <= D - r ? r : r - (D + 1)));
    return key;
  }
};

// The scale of feature k before elevation (their p. 5-6): the lattice's blur then has the
// standard deviation the features are expressed in.
template <int D, typename T>
FASTADV_HD T lattice_scale(int k) {
  return static_cast<T>(sqrt(2.0 / 3.0) * (D + 1) / sqrt(static_cast<double>((k + 1) * (k + 2))));
}

// The constant that makes a lattice point's blurred weight onto itself 1, as exp(0) is: each
// direction's [1/2, 1, 1/2] keeps the centre, and the only other way back is one step along every
// direction (they sum to zero), taken forwards or backwards, 2 * 2^-(d+1).
template <typename T>
FASTADV_HD T lattice_alpha(int dim) {
  return static_cast<T>(1.0 / (1.0 + 1.0 / static_cast<double>(1 << dim)));
}

template <int D, typename T>
FASTADV_HD void locate_simplex(const T* f, Simplex<D, T>& s) {
  const T down = static_cast<T>(1.0 / (D + 1));
  T x[D + 1];
  T tail = 0;  // sum of the scaled features k >= j
  for (int j = D; j > 0; --j) {
    const T c = f[j - 1] * lattice_scale<D, T>(j - 1);
    x[j] = tail - static_cast<T>(j) * c;
    tail += c;
  }
  x[0] = tail;

  // The nearest remainder-0 point, coordinate by coordinate; `sum` says how far off the plane.
  int32_t sum = 0;
  s.in_range = true;
  const T limit = static_cast<T>(kLatticeMaxCoord / (D + 1) - 1);
  for (int i = 0; i <= D; ++i) {
    const T v = round_half_even(x[i] * down);
    const bool fits = v > -limit && v < limit;  // false for NaN
    s.in_range &= fits;
    const int32_t q = fits ? static_cast<int32_t>(v) : 0;
    s.rem0[i] = q * (D + 1);
    sum += q;
  }
  if (!s.in_range) {  // a harmless cell (vertex 0 at the origin, weight 0); the caller reports it
    for (int i = 0; i <= D; ++i) {
      s.rem0[i] = 0;
      s.rank[i] = i;
      s.weight[i] = 0;
    }
    return;
  }

  // Rank of each coordinate's remainder, largest first (ties: the lower index first).
  for (int i = 0; i <= D; ++i) s.rank[i] = 0;
  for (int i = 0; i < D; ++i) {
    const T di = x[i] - static_cast<T>(s.rem0[i]);
    for (int j = i + 1; j <= D; ++j) {
      if (di < x[j] - static_cast<T>(s.rem0[j])) {
        ++s.rank[i];
      } else {
        ++s.rank[j];
      }
    }
  }
  // Back onto the plane: the `sum` largest (or smallest) remainders move by d+1.
  for (int i = 0; i <= D; ++i) {
    s.rank[i] += sum;
    if (s.rank[i] < 0) {
      s.rank[i] += D + 1;
      s.rem0[i] += D + 1;
    } else if (s.rank[i] > D) {
      s.rank[i] -= D + 1;
      s.rem0[i] -= D + 1;
    }
  }

  T b[D + 2];
  for (int i = 0; i <= D + 1; ++i) b[i] = 0;
  for (int i = 0; i <= D; ++i) {
    const T v = (x[i] - static_cast<T>(s.rem0[i])) * down;
    b[D - s.rank[i]] += v;
    b[D - s.rank[i] + 1] -= v;
  }
  b[0] += static_cast<T>(1) + b[D + 1];
  for (int r = 0; r <= D; ++r) s.weight[r] = b[r];
}

// The neighbour of `key` one step along lattice direction j (0..D), backwards (step -1) or
// forwards (+1): every coordinate moves by -step except j, which moves by step * d.
template <int D>
FASTADV_HD LatticeKey<D> lattice_neighbour(const LatticeKey<D>& key, int j, int step) {
  LatticeKey<D> n = key;
  for (int k = 0; k < D; ++k) n.set_coord(k, key.coord(k) + (k == j ? step * D : -step));
  return n;
}

// Calls f with std::integral_constant-like tag carrying D = dim (1..kLatticeMaxDim); returns what
// f returns. The kernels are compiled for each dimension so that their loops unroll.
template <int D>
struct DimTag {
  static constexpr int value = D;
};

template <typename F>
auto dispatch_lattice_dim(int dim, F&& f) {
  switch (dim) {
    case 1: return f(DimTag<1>{});
    case 2: return f(DimTag<2>{});
    case 3: return f(DimTag<3>{});
    case 4: return f(DimTag<4>{});
    case 5: return f(DimTag<5>{});
    case 6: return f(DimTag<6>{});
    case 7: return f(DimTag<7>{});
    default: return f(DimTag<8>{});
  }
}

// ---- launch arguments of the CUDA kernels -----------------------------------------------------

// One pair is (pixel, vertex r of its simplex), p = pixel * (d+1) + r, pixels of all images in a
// row: pixel = image * pixels + i.
struct LatticeKeysArgs {
  const void* features;   // [B, N, d], float32 or float64 (is_double)
  uint64_t* keys;         // [P, words]: each pair's vertex key
  void* weights;          // [P]: each pair's barycentric weight, of the features' dtype
  int32_t* out_of_range;  // set to 1 when a feature does not fit the keys
  int64_t batch, pixels;
  int32_t dim;
  bool is_double;
};

// The blur neighbours of every vertex: vertex v's key is keys[v], the vertices' keys in sorted
// order are sorted_keys with their vertex ids sorted_vertex (for a binary search).
struct LatticeNeighbourArgs {
  const uint64_t* keys;          // [M, words], by vertex id
  const uint64_t* sorted_keys;   // [M, words], in LatticeKey order
  const int32_t* sorted_vertex;  // [M]
  int32_t* neighbours;           // [d+1, M, 2]: backward and forward neighbour, M where absent
  int64_t vertices;
  int32_t dim;
};

struct LatticeFilterArgs {
  const void* values;         // [P / (d+1), C]
  const void* add;            // [P / (d+1), C] added to the output, or null
  void* out;                  // [P / (d+1), C]
  const int32_t* offsets;     // [P]: each pair's vertex
  const void* weights;        // [P]
  const int32_t* neighbours;  // [d+1, M, 2]
  const int32_t* order;       // [P]: the pairs sorted by vertex
  void* lattice;              // [M + 1, C] zeros: row M stays zero (the absent neighbour)
  void* lattice_swap;         // [M + 1, C] zeros, the blur's other buffer
  int64_t pixels;             // all images' pixels
  int64_t vertices;
  int32_t dim, channels;
  bool transpose, is_double;
};

}  // namespace fastadv
