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
// into the vertices of every lattice at once (a private lattice a thread, summed after: the
// bilateral lattice is small and stays in cache, where gathering pixels vertex by vertex would read
// the image in no order); the blur and the slice gather, in parallel over vertices and pixels.
// Chunks go to threads as they come free, so with several threads the splat's sums are added in
// an order that varies from run to run (the results, to rounding).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <vector>

#include "csrc/cpu_clones.h"
#include "csrc/permutohedral.h"
#include "kernels/color_math.h"  // m_exp

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
void sort_pairs_by_vertex(const int32_t* offsets, int64_t pairs, int64_t vertices, int32_t* order) {
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
  alignas(64) T local_[kGroups > 0 ? kGroups* kGroup : 1];
  std::vector<T> heap_;
};

// The lattice rows of pixel i + kAhead are fetched while pixel i is processed: neighbouring
// pixels often share vertices, but when the features jump (a colour edge, the next image row) the
// rows come from all over a lattice larger than the L2 cache, and the loop would wait for them.
constexpr int64_t kAhead = 8;

template <typename T>
void prefetch_rows(const LatticeFilterArgs& a, int64_t i, int64_t stride, const T* lattice) {
  const int corners = a.dim + 1;
  for (int r = 0; r < corners; ++r) {
    const auto o = static_cast<uint32_t>(a.offsets[i * corners + r]);
    if (o >= static_cast<uint64_t>(a.vertices)) continue;
    const char* row = reinterpret_cast<const char*>(lattice + int64_t{o} * stride);
    for (int64_t byte = 0; byte < stride * static_cast<int64_t>(sizeof(T)); byte += 64) {
      __builtin_prefetch(row + byte);
    }
  }
}

// softmax over the first n values of row, in place (m_exp: a polynomial the loop vectorises).
template <typename T>
FASTADV_HD void softmax_row(T* row, int64_t n) {
  T top = row[0];
  for (int64_t c = 1; c < n; ++c) top = row[c] > top ? row[c] : top;
  T sum = 0;
  for (int64_t c = 0; c < n; ++c) {
    row[c] = m_exp(row[c] - top);
    sum += row[c];
  }
  const T scale = T(1) / sum;
  for (int64_t c = 0; c < n; ++c) row[c] *= scale;
}

// A filter call's lattices on the CPU: each one's arguments, and its rows for the splat (one copy
// a thread, summed into the first) and for the blur's other buffer.
template <typename T>
struct CpuLattice {
  const LatticeFilterArgs* args;
  T* rows;  // [threads, M + 1, stride]
  T* swap;  // [M + 1, stride]
};

// Splats pixels [begin, end) into copy `copy` of every lattice's rows, the values' softmax if
// `softmax`: each pixel's row is read (and normalised) once for all the lattices.
template <typename T, int kGroups>
FASTADV_WIDE_CLONES void splat_range(const CpuLattice<T>* lattices, int count, int64_t copy,
                                     int64_t begin, int64_t end, int64_t stride, bool softmax) {
  const LatticeFilterArgs& first = *lattices[0].args;
  const T* values = static_cast<const T*>(first.values);
  const int64_t channels = first.channels;
  const auto width = row_width<kGroups>(stride);
  RowBuffer<T, kGroups> buffer(width);
  T* __restrict__ row = buffer.data();
  for (int64_t k = 0; k < width; ++k) row[k] = T(0);
  for (int64_t i = begin; i < end; ++i) {
    for (int64_t c = 0; c < channels; ++c) row[c] = values[i * channels + c];
    if (softmax) softmax_row(row, channels);
    for (int l = 0; l < count; ++l) {
      const LatticeFilterArgs& a = *lattices[l].args;
      T* __restrict__ rows = lattices[l].rows + copy * (a.vertices + 1) * stride;
      if (i + kAhead < end) prefetch_rows(a, i + kAhead, stride, rows);
      const int corners = a.dim + 1;
      const T* weights = static_cast<const T*>(a.weights);
      for (int r = 0; r < corners; ++r) {
        const int32_t o = a.offsets[i * corners + r];
        if (static_cast<uint64_t>(o) >= static_cast<uint64_t>(a.vertices)) continue;
        const T w = weights[i * corners + r];  // (an out-of-range id: a hand-made lattice)
        T* __restrict__ dst = rows + o * stride;
        for (int64_t k = 0; k < width; ++k) dst[k] += w * row[k];
      }
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

// Slices pixels [begin, end) out of every lattice's blurred rows (`blurred[l]`), summed, plus
// `add`.
template <typename T, int kGroups>
FASTADV_WIDE_CLONES void slice_range(const CpuLattice<T>* lattices, const T* const* blurred,
                                     int count, int64_t begin, int64_t end, int64_t stride) {
  const LatticeFilterArgs& first = *lattices[0].args;
  const T* add = static_cast<const T*>(first.add);
  T* out = static_cast<T*>(first.out);
  const int64_t channels = first.channels;
  const auto width = row_width<kGroups>(stride);
  RowBuffer<T, kGroups> buffer(width);
  T* __restrict__ row = buffer.data();
  for (int64_t i = begin; i < end; ++i) {
    for (int64_t k = 0; k < width; ++k) row[k] = T(0);
    for (int l = 0; l < count; ++l) {
      const LatticeFilterArgs& a = *lattices[l].args;
      if (i + kAhead < end) prefetch_rows(a, i + kAhead, stride, blurred[l]);
      const int corners = a.dim + 1;
      const T* weights = static_cast<const T*>(a.weights);
      const T alpha = lattice_alpha<T>(a.dim);
      for (int r = 0; r < corners; ++r) {
        const int32_t o = a.offsets[i * corners + r];
        if (static_cast<uint64_t>(o) >= static_cast<uint64_t>(a.vertices)) continue;
        const T w = alpha * weights[i * corners + r];
        const T* __restrict__ src = blurred[l] + o * stride;
        for (int64_t k = 0; k < width; ++k) row[k] += w * src[k];
      }
    }
    T* dst = out + i * channels;
    if (add) {
      for (int64_t c = 0; c < channels; ++c) dst[c] = add[i * channels + c] + row[c];
    } else {
      for (int64_t c = 0; c < channels; ++c) dst[c] = row[c];
    }
  }
}

// Pixels a splat or slice task takes, and vertices a blur task takes.
constexpr int64_t kGrainPixels = 8192;
constexpr int64_t kGrainVertices = 2048;

// Runs work(begin, end, worker) over [0, n) in chunks of `grain` that `workers` threads take as
// they are free, rather than in one fixed share each: on a shared machine a thread the OS
// deschedules then holds up only the chunk it is on. `worker` (0..workers-1) indexes per-thread
// buffers.
template <typename Work>
void dynamic_for(int64_t n, int64_t grain, int64_t workers, const Work& work) {
  const int64_t chunks = (n + grain - 1) / grain;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(workers, chunks), 1, [&](int64_t first, int64_t last) {
    for (int64_t worker = first; worker < last; ++worker) {
      for (int64_t c = next++; c < chunks; c = next++) {
        work(c * grain, std::min(n, (c + 1) * grain), worker);
      }
    }
  });
}

// Zeroed scratch of n values, reused from call to call: a fresh allocation of this size would be
// mapped anew, and its first touch of every page fault, each time.
template <typename T>
T* scratch(std::vector<T>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  std::fill_n(buffer.data(), n, T(0));
  return buffer.data();
}

template <typename T, int kGroups>
void filter_cpu(const std::vector<LatticeFilterArgs>& args, bool softmax) {
  const LatticeFilterArgs& first = args[0];
  const int64_t stride = padded(first.channels), pixels = first.pixels;
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), pixels / kGrainPixels));
  int64_t total = 0;
  for (const auto& a : args) total += (threads + 1) * (a.vertices + 1) * stride;
  static thread_local std::vector<T> buffer;
  T* next = scratch(buffer, total);
  std::vector<CpuLattice<T>> lattices;
  for (const auto& a : args) {
    lattices.push_back({&a, next, next + threads * (a.vertices + 1) * stride});
    next += (threads + 1) * (a.vertices + 1) * stride;
  }
  const int count = static_cast<int>(lattices.size());
  dynamic_for(pixels, kGrainPixels, threads, [&](int64_t begin, int64_t end, int64_t worker) {
    splat_range<T, kGroups>(lattices.data(), count, worker, begin, end, stride, softmax);
  });
  std::vector<const T*> blurred;
  for (const auto& lattice : lattices) {
    const LatticeFilterArgs& a = *lattice.args;
    const int64_t size = (a.vertices + 1) * stride;
    if (threads > 1) {
      const auto sum_copies = [&](int64_t begin, int64_t end, int64_t) {
        for (int64_t t = 1; t < threads; ++t) {
          const T* part = lattice.rows + t * size;
          for (int64_t k = begin * stride; k < end * stride; ++k) lattice.rows[k] += part[k];
        }
      };
      dynamic_for(a.vertices, kGrainVertices, threads, sum_copies);
    }
    T* from = lattice.rows;
    T* to = lattice.swap;
    for (int step = 0; step <= a.dim; ++step) {
      const int j = a.transpose ? a.dim - step : step;
      const int32_t* neighbours = a.neighbours + int64_t{j} * a.vertices * 2;
      dynamic_for(a.vertices, kGrainVertices, threads, [&](int64_t begin, int64_t end, int64_t) {
        blur_range<T>(neighbours, a.vertices, begin, end, stride, from, to);
      });
      std::swap(from, to);
    }
    blurred.push_back(from);
  }
  dynamic_for(pixels, kGrainPixels, threads, [&](int64_t begin, int64_t end, int64_t) {
    slice_range<T, kGroups>(lattices.data(), blurred.data(), count, begin, end, stride);
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

at::Tensor permutohedral_filter_cpu(const at::Tensor& values, at::TensorList offsets,
                                    at::TensorList weights, at::TensorList neighbours,
                                    at::TensorList order, bool transpose,
                                    const std::optional<at::Tensor>& add, bool softmax) {
  at::Tensor out;
  const std::vector<LatticeFilterArgs> args =
      make_lattice_filter_args(values, offsets, weights, neighbours, order, transpose, add, out);
  if (out.numel() == 0) return out;
  advise_huge_pages(out);
  const auto by_width = [&](auto zero) {
    using T = decltype(zero);
    switch (padded(values.size(2)) / kGroup) {
      case 1: return filter_cpu<T, 1>(args, softmax);
      case 2: return filter_cpu<T, 2>(args, softmax);
      case 3: return filter_cpu<T, 3>(args, softmax);
      case 4: return filter_cpu<T, 4>(args, softmax);
      default: return filter_cpu<T, 0>(args, softmax);
    }
  };
  if (values.scalar_type() == at::kDouble) {
    by_width(double{});
  } else {
    by_width(float{});
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CPU, m) {
  m.impl("permutohedral_lattice", &permutohedral_lattice_cpu);
  m.impl("permutohedral_filter", &permutohedral_filter_cpu);
}

}  // namespace fastadv
