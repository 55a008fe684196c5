// fastadv::permutohedral_lattice and fastadv::permutohedral_filter on CPU tensors (the lattice's
// math: kernels/permutohedral_math.h).
//
// Building: the pixels are split into one contiguous range a thread; each thread finds every
// pixel's simplex and numbers the vertices in a hash table of its own, in the order it first
// meets them, skipping the table when a pixel lies in the same simplex as the one before (most
// pixels do: neighbouring pixels have nearby features). The tables are then merged in range order,
// which numbers every vertex by the first pixel that touches it, whatever the number of threads.
//
// Filtering: lattice rows are padded to whole vector registers; the splat scatters pixel by pixel
// into the vertices (a private lattice a thread, summed after: the bilateral lattice is small and
// stays in cache, where gathering pixels vertex by vertex would read the image in no order); the
// blur and the slice gather, in parallel over vertices and pixels.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <sys/mman.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "csrc/cpu_clones.h"
#include "csrc/permutohedral.h"

namespace fastadv {
namespace {

// ---- building -------------------------------------------------------------------------------

// Lattice keys to vertex ids: open addressing with linear probing, at most half full. The slots
// hold only ids (the keys are in `keys_`, by id), so that the table of a bilateral lattice's tens
// of thousands of vertices stays in the L2 cache.
template <int D>
class VertexTable {
 public:
  explicit VertexTable(int64_t expected) {
    size_t capacity = 1024;
    while (capacity < 2 * static_cast<size_t>(expected)) capacity *= 2;
    slots_.assign(capacity, -1);
  }

  // The id of `key`, numbered next if it is new.
  int32_t insert(const LatticeKey<D>& key) {
    const size_t mask = slots_.size() - 1;
    for (size_t h = key.hash() & mask;; h = (h + 1) & mask) {
      const int32_t id = slots_[h];
      if (id < 0) {
        const auto fresh = static_cast<int32_t>(keys_.size());
        slots_[h] = fresh;
        keys_.push_back(key);
        if (2 * keys_.size() > slots_.size()) grow();
        return fresh;
      }
      if (keys_[id] == key) return id;
    }
  }

  // The id of `key`, or -1.
  int32_t find(const LatticeKey<D>& key) const {
    const size_t mask = slots_.size() - 1;
    for (size_t h = key.hash() & mask;; h = (h + 1) & mask) {
      const int32_t id = slots_[h];
      if (id < 0 || keys_[id] == key) return id;
    }
  }

  const std::vector<LatticeKey<D>>& keys() const { return keys_; }

 private:
  void grow() {
    std::vector<int32_t> slots(2 * slots_.size(), -1);
    const size_t mask = slots.size() - 1;
    for (size_t id = 0; id < keys_.size(); ++id) {
      size_t h = keys_[id].hash() & mask;
      while (slots[h] >= 0) h = (h + 1) & mask;
      slots[h] = static_cast<int32_t>(id);
    }
    slots_.swap(slots);
  }

  std::vector<int32_t> slots_;
  std::vector<LatticeKey<D>> keys_;
};

// One thread's share of the pixels: its vertices, numbered in its own table.
template <int D>
struct PixelRange {
  int64_t begin, end;
  VertexTable<D> table;
  bool out_of_range = false;
};

// The simplex of every pixel in the range: its vertices' ids in the range's table, and its
// barycentric weights. Neighbouring pixels mostly lie in the same simplex or in one next to it,
// which shares all its vertices but one: the previous pixel's vertices are tried before the table.
template <int D, typename T>
void locate_range(const T* features, int64_t pixels_per_image, PixelRange<D>& range,
                  int32_t* offsets, T* weights) {
  Simplex<D, T> cell{}, previous{};
  LatticeKey<D> keys[D + 1] = {};
  int32_t ids[D + 1] = {};
  int64_t image = range.begin / pixels_per_image;
  int64_t image_end = (image + 1) * pixels_per_image;
  bool reuse = false;  // whether `previous`, `keys` and `ids` hold a cell of this image
  for (int64_t i = range.begin; i < range.end; ++i) {
    if (i == image_end) {
      ++image;
      image_end += pixels_per_image;
      reuse = false;
    }
    locate_simplex<D, T>(features + i * D, cell);
    range.out_of_range |= !cell.in_range;
    if (!reuse || !cell.same_cell(previous)) {
      LatticeKey<D> fresh[D + 1];
      int32_t fresh_ids[D + 1];
      for (int r = 0; r <= D; ++r) {
        fresh[r] = cell.vertex(r, static_cast<uint32_t>(image));
        fresh_ids[r] = -1;
        for (int s = 0; reuse && s <= D && fresh_ids[r] < 0; ++s) {
          if (keys[s] == fresh[r]) fresh_ids[r] = ids[s];
        }
        if (fresh_ids[r] < 0) fresh_ids[r] = range.table.insert(fresh[r]);
      }
      for (int r = 0; r <= D; ++r) {
        keys[r] = fresh[r];
        ids[r] = fresh_ids[r];
      }
      previous = cell;
      reuse = true;
    }
    for (int r = 0; r <= D; ++r) {
      offsets[i * (D + 1) + r] = ids[r];
      weights[i * (D + 1) + r] = cell.weight[r];
    }
  }
}

// The ranges' vertices numbered in one table, range by range; each range's ids renumbered.
template <int D>
VertexTable<D> merge_ranges(std::vector<PixelRange<D>>& ranges, int32_t* offsets) {
  int64_t expected = 0;
  for (const auto& range : ranges) expected += static_cast<int64_t>(range.table.keys().size());
  VertexTable<D> merged(expected);
  std::vector<std::vector<int32_t>> renumber(ranges.size());
  for (size_t c = 0; c < ranges.size(); ++c) {
    for (const auto& key : ranges[c].table.keys()) renumber[c].push_back(merged.insert(key));
  }
  at::parallel_for(0, static_cast<int64_t>(ranges.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int32_t* ids = renumber[c].data();
      for (int64_t p = ranges[c].begin * (D + 1); p < ranges[c].end * (D + 1); ++p) {
        offsets[p] = ids[offsets[p]];
      }
    }
  });
  return merged;
}

// neighbours[j, v] = (backward, forward) neighbour of vertex v along direction j, M if absent.
template <int D>
void find_neighbours(const VertexTable<D>& table, int32_t* neighbours) {
  const auto& keys = table.keys();
  const auto vertices = static_cast<int64_t>(keys.size());
  at::parallel_for(0, vertices, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      for (int j = 0; j <= D; ++j) {
        for (int side = 0; side < 2; ++side) {
          const int32_t n = table.find(lattice_neighbour(keys[v], j, 2 * side - 1));
          neighbours[(j * vertices + v) * 2 + side] = n < 0 ? static_cast<int32_t>(vertices) : n;
        }
      }
    }
  });
}

// The pairs sorted by vertex, stably (a counting sort).
void sort_pairs_by_vertex(const int32_t* offsets, int64_t pairs, int64_t vertices,
                          int32_t* order) {
  std::vector<int64_t> start(vertices + 1, 0);
  for (int64_t p = 0; p < pairs; ++p) ++start[offsets[p] + 1];
  for (int64_t v = 0; v < vertices; ++v) start[v + 1] += start[v];
  for (int64_t p = 0; p < pairs; ++p) order[start[offsets[p]]++] = static_cast<int32_t>(p);
}

template <int D, typename T>
void build_lattice(const at::Tensor& features, LatticeTensors& t) {
  const int64_t batch = features.size(0), pixels_per_image = features.size(1);
  const int64_t pixels = batch * pixels_per_image;
  if (pixels == 0) {
    t.neighbours = at::empty({D + 1, 0, 2}, t.offsets.options());
    return;
  }
  int32_t* offsets = t.offsets.mutable_data_ptr<int32_t>();
  // Ranges of at least kMinPixels: a table of its own costs a merge of all its keys.
  constexpr int64_t kMinPixels = 1 << 14;
  const int64_t count =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), pixels / kMinPixels));
  std::vector<PixelRange<D>> ranges;
  ranges.reserve(count);
  for (int64_t c = 0; c < count; ++c) {
    const int64_t begin = pixels * c / count, end = pixels * (c + 1) / count;
    ranges.push_back({begin, end, VertexTable<D>(0)});  // grown as vertices come
  }
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      locate_range<D, T>(features.const_data_ptr<T>(), pixels_per_image, ranges[c], offsets,
                         t.weights.mutable_data_ptr<T>());
    }
  });
  for (const auto& range : ranges) {
    TORCH_CHECK(!range.out_of_range,
                "features are too large or not finite: the lattice's coordinates must fit 16 "
                "bits (|feature| up to about ",
                kLatticeMaxCoord / (D + 1) / 2, ")");
  }
  const VertexTable<D> table =
      count == 1 ? std::move(ranges[0].table) : merge_ranges<D>(ranges, offsets);
  const auto vertices = static_cast<int64_t>(table.keys().size());
  t.neighbours = at::empty({D + 1, vertices, 2}, t.offsets.options());
  find_neighbours<D>(table, t.neighbours.mutable_data_ptr<int32_t>());
  sort_pairs_by_vertex(offsets, pixels * (D + 1), vertices, t.order.mutable_data_ptr<int32_t>());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> permutohedral_lattice_cpu(
    const at::Tensor& features) {
  const int dim = check_lattice_features(features);
  LatticeTensors t = allocate_lattice(features, dim);
  dispatch_lattice_dim(dim, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    if (features.scalar_type() == at::kDouble) {
      build_lattice<D, double>(features, t);
    } else {
      build_lattice<D, float>(features, t);
    }
  });
  return t.result();
}

// ---- filtering ------------------------------------------------------------------------------

// Lattice rows are padded to whole groups of kGroup values (a 32-byte vector of float, 64 of
// double), so that the row loops vectorise without remainders.
constexpr int64_t kGroup = 8;

int64_t padded(int64_t channels) { return (channels + kGroup - 1) / kGroup * kGroup; }

// The row loops below run over `width` values: a compile-time constant (std::integral_constant)
// for the common channel counts, so that they unroll and the row stays in registers, or an
// int64_t. Copies into and out of the row are plain loops: library calls a pixel would cost more
// than the few values they move.
template <int kGroups>
auto row_width(int64_t stride) {
  if constexpr (kGroups > 0) {
    return std::integral_constant<int64_t, kGroups * kGroup>{};
  } else {
    return stride;
  }
}

// One row of `width` values: on the stack when the width is a compile-time constant.
template <typename T, int kGroups>
class RowBuffer {
 public:
  explicit RowBuffer(int64_t width) : heap_(kGroups > 0 ? 0 : width) {}
  T* data() { return kGroups > 0 ? local_ : heap_.data(); }

 private:
  alignas(64) T local_[kGroups > 0 ? kGroups * kGroup : 1];
  std::vector<T> heap_;
};

// The lattice rows of pixel i + kAhead are fetched while pixel i is processed: neighbouring
// pixels often share vertices, but when the features jump (a colour edge, the next image row) the
// rows come from all over a lattice larger than the L2 cache, and the loop would wait for them.
constexpr int64_t kAhead = 8;

template <int D, typename T>
void prefetch_rows(const LatticeFilterArgs& a, int64_t i, int64_t end, int64_t stride,
                   const T* lattice) {
  if (i >= end) return;
  for (int r = 0; r <= D; ++r) {
    const auto o = static_cast<uint32_t>(a.offsets[i * (D + 1) + r]);
    if (o >= static_cast<uint64_t>(a.vertices)) continue;
    const char* row = reinterpret_cast<const char*>(lattice + int64_t{o} * stride);
    for (int64_t byte = 0; byte < stride * static_cast<int64_t>(sizeof(T)); byte += 64) {
      __builtin_prefetch(row + byte);
    }
  }
}

// Splats pixels [begin, end) into `lattice` (rows of `stride`).
template <int D, typename T, int kGroups>
FASTADV_WIDE_CLONES void splat_range(const LatticeFilterArgs& a, int64_t begin, int64_t end,
                                     int64_t stride, T* __restrict__ lattice) {
  const T* values = static_cast<const T*>(a.values);
  const T* weights = static_cast<const T*>(a.weights);
  const auto vertices = static_cast<uint64_t>(a.vertices);
  const auto width = row_width<kGroups>(stride);
  RowBuffer<T, kGroups> buffer(width);
  T* __restrict__ row = buffer.data();
  for (int64_t k = 0; k < width; ++k) row[k] = T(0);
  for (int64_t i = begin; i < end; ++i) {
    prefetch_rows<D, T>(a, i + kAhead, end, stride, lattice);
    for (int64_t c = 0; c < a.channels; ++c) row[c] = values[i * a.channels + c];
    for (int r = 0; r <= D; ++r) {
      const int32_t o = a.offsets[i * (D + 1) + r];
      if (static_cast<uint64_t>(o) >= vertices) continue;  // only a hand-made lattice has these
      const T w = weights[i * (D + 1) + r];
      T* __restrict__ dst = lattice + o * stride;
      for (int64_t k = 0; k < width; ++k) dst[k] += w * row[k];
    }
  }
}

// One blur step along direction j for vertices [begin, end): to = from + (from[n-] + from[n+])/2.
template <typename T>
FASTADV_WIDE_CLONES void blur_range(const int32_t* neighbours, int64_t vertices, int64_t begin,
                                    int64_t end, int64_t stride, const T* __restrict__ from,
                                    T* __restrict__ to) {
  for (int64_t v = begin; v < end; ++v) {
    const auto n0 = std::min<uint64_t>(static_cast<uint32_t>(neighbours[2 * v]), vertices);
    const auto n1 = std::min<uint64_t>(static_cast<uint32_t>(neighbours[2 * v + 1]), vertices);
    const T* c = from + v * stride;
    const T* p = from + n0 * stride;
    const T* q = from + n1 * stride;
    T* o = to + v * stride;
    for (int64_t g = 0; g < stride; g += kGroup) {
      for (int64_t k = 0; k < kGroup; ++k) o[g + k] = c[g + k] + T(0.5) * (p[g + k] + q[g + k]);
    }
  }
}

// Slices pixels [begin, end) out of `lattice`, plus `add`.
template <int D, typename T, int kGroups>
FASTADV_WIDE_CLONES void slice_range(const LatticeFilterArgs& a, int64_t begin, int64_t end,
                                     int64_t stride, const T* __restrict__ lattice) {
  const T* weights = static_cast<const T*>(a.weights);
  const T* add = static_cast<const T*>(a.add);
  T* out = static_cast<T*>(a.out);
  const auto vertices = static_cast<uint64_t>(a.vertices);
  const T alpha = lattice_alpha<D, T>();
  const auto width = row_width<kGroups>(stride);
  RowBuffer<T, kGroups> buffer(width);
  T* __restrict__ row = buffer.data();
  for (int64_t i = begin; i < end; ++i) {
    prefetch_rows<D, T>(a, i + kAhead, end, stride, lattice);
    for (int64_t k = 0; k < width; ++k) row[k] = T(0);
    for (int r = 0; r <= D; ++r) {
      const int32_t o = a.offsets[i * (D + 1) + r];
      if (static_cast<uint64_t>(o) >= vertices) continue;
      const T w = alpha * weights[i * (D + 1) + r];
      const T* __restrict__ src = lattice + o * stride;
      for (int64_t k = 0; k < width; ++k) row[k] += w * src[k];
    }
    T* dst = out + i * a.channels;
    if (add) {
      for (int64_t c = 0; c < a.channels; ++c) dst[c] = add[i * a.channels + c] + row[c];
    } else {
      for (int64_t c = 0; c < a.channels; ++c) dst[c] = row[c];
    }
  }
}

// Pixels a splat or slice task takes, and vertices a blur task takes.
constexpr int64_t kGrainPixels = 4096;
constexpr int64_t kGrainVertices = 2048;

// Zeroed scratch of n values, reused from call to call: a fresh allocation of this size would be
// mapped anew, and its first touch of every page fault, each time.
template <typename T>
T* scratch(std::vector<T>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  std::fill_n(buffer.data(), n, T(0));
  return buffer.data();
}

template <int D, typename T, int kGroups>
void filter_cpu(const LatticeFilterArgs& a) {
  const int64_t stride = padded(a.channels), rows = a.vertices + 1;
  // One private lattice a thread for the splat; the first is the one the blur starts from.
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), a.pixels / kGrainPixels));
  static thread_local std::vector<T> lattice_buffer, swap_buffer;
  T* lattice = scratch(lattice_buffer, threads * rows * stride);
  T* swap = scratch(swap_buffer, rows * stride);
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      splat_range<D, T, kGroups>(a, a.pixels * t / threads, a.pixels * (t + 1) / threads, stride,
                        lattice + t * rows * stride);
    }
  });
  if (threads > 1) {
    at::parallel_for(0, a.vertices * stride, kGrainVertices * stride, [&](int64_t b, int64_t e) {
      for (int64_t t = 1; t < threads; ++t) {
        const T* part = lattice + t * rows * stride;
        for (int64_t k = b; k < e; ++k) lattice[k] += part[k];
      }
    });
  }
  T* from = lattice;
  T* to = swap;
  for (int step = 0; step <= D; ++step) {
    const int j = a.transpose ? D - step : step;
    const int32_t* neighbours = a.neighbours + int64_t{j} * a.vertices * 2;
    at::parallel_for(0, a.vertices, kGrainVertices, [&](int64_t begin, int64_t end) {
      blur_range<T>(neighbours, a.vertices, begin, end, stride, from, to);
    });
    std::swap(from, to);
  }
  at::parallel_for(0, a.pixels, kGrainPixels, [&](int64_t begin, int64_t end) {
    slice_range<D, T, kGroups>(a, begin, end, stride, from);
  });
}

// Asks for transparent huge pages under a large output before its first touch: where the kernel
// maps them on request only (THP "madvise"), a fresh tensor of tens of MB otherwise costs a page
// fault every 4 kB, a good part of the filter's time.
void advise_huge_pages(const at::Tensor& t) {
#if defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + t.nbytes()) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

at::Tensor permutohedral_filter_cpu(const at::Tensor& values, const at::Tensor& offsets,
                                    const at::Tensor& weights, const at::Tensor& neighbours,
                                    const at::Tensor& order, bool transpose,
                                    const std::optional<at::Tensor>& add) {
  at::Tensor out;
  const LatticeFilterArgs a =
      make_lattice_filter_args(values, offsets, weights, neighbours, order, transpose, add, out);
  if (a.pixels == 0 || a.channels == 0) return add.has_value() ? out.copy_(*add) : out;
  advise_huge_pages(out);
  dispatch_lattice_dim(a.dim, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    const auto by_width = [&](auto zero) {
      using T = decltype(zero);
      switch (padded(a.channels) / kGroup) {
        case 1: return filter_cpu<D, T, 1>(a);
        case 2: return filter_cpu<D, T, 2>(a);
        case 3: return filter_cpu<D, T, 3>(a);
        case 4: return filter_cpu<D, T, 4>(a);
        default: return filter_cpu<D, T, 0>(a);
      }
    };
    return a.is_double ? by_width(double{}) : by_width(float{});
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CPU, m) {
  m.impl("permutohedral_lattice", &permutohedral_lattice_cpu);
  m.impl("permutohedral_filter", &permutohedral_filter_cpu);
}

}  // namespace fastadv
