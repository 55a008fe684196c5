// fastadv::nearest_fill on CPU tensors (algorithm and tie rule: kernels/nearest_fill_math.h).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "csrc/nearest_fill.h"

namespace fastadv {
namespace {

// Rows a pass-1 task takes: about this many pixels, so small maps are not split across threads.
constexpr int64_t kGrainPixels = 1 << 16;
// Columns a pass-2 task sweeps together: one cache line of int32 sites. Sweeping one column
// straight through a [H, W] array strides by W (often a power of two, so the lines compete for
// the same cache sets); instead a strip of columns is copied to column-major buffers first,
// whose columns lie an odd number of cache lines apart for the same reason.
constexpr int32_t kStrip = 16;

int32_t padded_height(int32_t height) {
  const int32_t lines = (height + kStrip - 1) / kStrip;
  return (lines | 1) * kStrip;
}

// Pass 2 on the CPU, a strip of columns at a time, with the shared sweeps of nearest_fill_math.h.
template <typename label_t>
class CpuColumns {
 public:
  explicit CpuColumns(const NearestFillArgs& a)
      : a_(a),
        h_(a.height),
        ld_(padded_height(a.height)),
        sites_(kStrip * ld_),
        rows_(kStrip * ld_),
        stacks_(2 * h_) {}

  // Columns [c0, c0 + n) of image b.
  void strip(int64_t b, int32_t c0, int32_t n) {
    const int64_t plane = static_cast<int64_t>(h_) * a_.width;
    const int32_t* site = a_.site + b * plane;
    for (int32_t u = 0; u < h_; ++u) {
      for (int32_t k = 0; k < n; ++k) sites_[k * ld_ + u] = site[u * a_.width + c0 + k];
    }
    const Strided<int32_t> s{stacks_.data(), 1}, t{stacks_.data() + h_, 1};
    for (int32_t k = 0; k < n; ++k) {
      const Strided<const int32_t> column{sites_.data() + k * ld_, 1};
      const int32_t q = build_envelope(column, c0 + k, h_, s, t);
      if (c0 == 0) a_.empty[b] = q < 0;
      if (q < 0) return keep(b, c0, n);  // no column of the image has a site
      int32_t* rows = rows_.data() + k * ld_;
      for_each_nearest(column, q, h_, s, t, [rows](int32_t u, int32_t r, int32_t) { rows[u] = r; });
    }
    write(b, c0, n);
  }

 private:
  // Row by row, from the strip's buffers: each hidden pixel's source label and distance.
  void write(int64_t b, int32_t c0, int32_t n) const {
    const int64_t plane = static_cast<int64_t>(h_) * a_.width;
    const label_t* labels = static_cast<const label_t*>(a_.labels) + b * plane;
    label_t* out = static_cast<label_t*>(a_.out) + b * plane;
    float* distance = a_.distance ? a_.distance + b * plane : nullptr;
    for (int32_t u = 0; u < h_; ++u) {
      const int64_t row = static_cast<int64_t>(u) * a_.width + c0;
      for (int32_t k = 0; k < n; ++k) {
        const int32_t r = rows_[k * ld_ + u];
        const int32_t col = sites_[k * ld_ + r];
        out[row + k] = labels[static_cast<int64_t>(r) * a_.width + col];
        if (distance) distance[row + k] = euclidean(u - r, c0 + k - col);
      }
    }
  }

  // An image with every pixel hidden stays as it is, at infinite distance.
  void keep(int64_t b, int32_t c0, int32_t n) const {
    const int64_t plane = static_cast<int64_t>(h_) * a_.width;
    const label_t* labels = static_cast<const label_t*>(a_.labels) + b * plane;
    label_t* out = static_cast<label_t*>(a_.out) + b * plane;
    for (int32_t u = 0; u < h_; ++u) {
      const int64_t row = static_cast<int64_t>(u) * a_.width + c0;
      std::copy(labels + row, labels + row + n, out + row);
      if (a_.distance) std::fill_n(a_.distance + b * plane + row, n, INFINITY);
    }
  }

  const NearestFillArgs& a_;
  const int32_t h_, ld_;
  std::vector<int32_t> sites_, rows_, stacks_;  // [kStrip, ld_] column-major; 2 stacks
};

// Runs work(begin, end) over [0, n) in chunks of `grain`, handed out on demand rather than in a
// fixed share a thread: on a shared machine a thread the OS deschedules holds up only the chunk
// it is on. make_worker() makes each thread's `work` (with its own buffers).
template <typename MakeWorker>
void parallel_chunks(int64_t n, int64_t grain, const MakeWorker& make_worker) {
  const int64_t chunks = (n + grain - 1) / grain;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), chunks), 1, [&](int64_t, int64_t) {
    auto work = make_worker();
    for (int64_t i = next++; i < chunks; i = next++) work(i * grain, std::min(n, (i + 1) * grain));
  });
}

template <typename label_t>
void nearest_fill_cpu_typed(const NearestFillArgs& a) {
  parallel_chunks(a.batch * a.height, std::max<int64_t>(1, kGrainPixels / a.width), [&] {
    return [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) row_sites(a, line);
    };
  });
  const int64_t strips = (a.width + kStrip - 1) / kStrip;
  const int64_t grain = std::max<int64_t>(1, kGrainPixels / (int64_t{kStrip} * a.height));
  parallel_chunks(a.batch * strips, grain, [&] {
    return [&, columns = CpuColumns<label_t>(a)](int64_t begin, int64_t end) mutable {
      for (int64_t i = begin; i < end; ++i) {
        const int32_t c0 = static_cast<int32_t>(i % strips) * kStrip;
        columns.strip(i / strips, c0, std::min(kStrip, a.width - c0));
      }
    };
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> nearest_fill_cpu(const at::Tensor& labels,
                                                                const at::Tensor& hide,
                                                                bool with_distance) {
  NearestFillTensors tensors;
  const NearestFillArgs a = make_nearest_fill_args(labels, hide, with_distance, tensors);
  if (labels.numel() == 0) {
    tensors.empty.zero_();
    return tensors.result();
  }
  switch (a.label_type) {
    case LabelType::UInt8: nearest_fill_cpu_typed<uint8_t>(a); break;
    case LabelType::Int32: nearest_fill_cpu_typed<int32_t>(a); break;
    case LabelType::Int64: nearest_fill_cpu_typed<int64_t>(a); break;
  }
  return tensors.result();
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CPU, m) { m.impl("nearest_fill", &nearest_fill_cpu); }

}  // namespace fastadv
