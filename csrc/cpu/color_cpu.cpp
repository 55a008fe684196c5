// fastadv::rgb_to_lab, delta_e2000 and color_variance on CPU tensors (formulas:
// kernels/color_math.h).
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "csrc/color.h"
#include "csrc/cpu_clones.h"

namespace fastadv {
namespace {

constexpr int64_t kGrain = 1 << 12;

// ---- rgb_to_lab and delta_e2000: elementwise over the M * P pixels of [M, 3, P] operands.

// f(m, j, n) for runs of n consecutive pixels j.. of plane m, over the outer * inner pixels in
// parallel: the loops inside see unit-stride planes, with no index arithmetic to stop the
// compiler from vectorising them.
template <typename F>
void parallel_plane_runs(int64_t outer, int64_t inner, F&& f) {
  at::parallel_for(0, outer * inner, kGrain, [&](int64_t begin, int64_t end) {
    while (begin < end) {
      const int64_t m = begin / inner, stop = std::min(end, (m + 1) * inner);
      f(m, begin - m * inner, stop - begin);
      begin = stop;
    }
  });
}

// CIELAB (and chroma) of n pixels from unit-stride r, g, b planes: one loop each way, so that
// neither tests for the chroma plane per pixel.
template <typename T, bool kChroma>
FASTADV_HD_INLINE void lab_loop(const T* __restrict__ r, const T* __restrict__ g,
                                const T* __restrict__ b, T* __restrict__ l, T* __restrict__ a_out,
                                T* __restrict__ b_out, T* __restrict__ c, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const Lab<T> v = rgb_to_lab(r[j], g[j], b[j]);
    l[j] = v.L;
    a_out[j] = v.a;
    b_out[j] = v.b;
    if constexpr (kChroma) c[j] = m_sqrt(v.a * v.a + v.b * v.b);
  }
}

// The chroma plane c is written where it is not null.
template <typename T>
FASTADV_HD_INLINE void lab_run(const T* r, const T* g, const T* b, T* l, T* a_out, T* b_out, T* c,
                               int64_t n) {
  if (c != nullptr) {
    lab_loop<T, true>(r, g, b, l, a_out, b_out, c, n);
  } else {
    lab_loop<T, false>(r, g, b, l, a_out, b_out, nullptr, n);
  }
}

// The float runs, compiled for AVX2 and AVX-512 too.
FASTADV_WIDE_CLONES void lab_run_float(const float* r, const float* g, const float* b, float* l,
                                       float* a_out, float* b_out, float* c, int64_t n) {
  lab_run(r, g, b, l, a_out, b_out, c, n);
}

// Lab planes (out_channels 3) or Lab and chroma planes (4) of `outer` images of `plane` pixels.
template <typename T>
void lab_planes(const T* rgb, T* out, int64_t outer, int64_t plane, int out_channels) {
  constexpr auto run = [] {
    if constexpr (std::is_same_v<T, float>)
      return &lab_run_float;
    else
      return &lab_run<T>;
  }();
  parallel_plane_runs(outer, plane, [&](int64_t m, int64_t j, int64_t n) {
    const T* src = rgb + m * 3 * plane + j;
    T* dst = out + m * out_channels * plane + j;
    run(src, src + plane, src + 2 * plane, dst, dst + plane, dst + 2 * plane,
        out_channels == 4 ? dst + 3 * plane : nullptr, n);
  });
}

template <typename T>
void rgb_to_lab_cpu_typed(const ColorPixelsArgs& a) {
  lab_planes(static_cast<const T*>(a.in1), static_cast<T*>(a.out), a.outer, a.inner, 3);
}

template <typename T>
void delta_e2000_cpu_typed(const ColorPixelsArgs& a) {
  const T* x = static_cast<const T*>(a.in1);
  const T* y = static_cast<const T*>(a.in2);
  T* out = static_cast<T*>(a.out);
  const T inv_kl = T(1 / a.kl), inv_kc = T(1 / a.kc), inv_kh = T(1 / a.kh);
  const int64_t p = a.inner;
  parallel_plane_runs(a.outer, p, [&](int64_t m, int64_t j, int64_t n) {
    const T* u = x + m * 3 * p + j;
    const T* v = y + m * 3 * p + j;
    T* dst = out + m * p + j;
    for (int64_t i = 0; i < n; ++i) {
      dst[i] = delta_e2000(Lab<T>{u[i], u[i + p], u[i + 2 * p]},
                           Lab<T>{v[i], v[i + p], v[i + 2 * p]}, inv_kl, inv_kc, inv_kh);
    }
  });
}

// ---- color_variance

// The L, a, b, chroma planes of one image of the [B, 4, H, W] scratch buffer.
template <typename T>
struct LabPlanes {
  const T* base;
  int64_t plane;
  LabC<T> at(int64_t i) const {
    return {base[i], base[i + plane], base[i + 2 * plane], base[i + 3 * plane]};
  }
};

template <typename T>
struct Offset {
  int dy, dx;
  T weight_sq;
};

template <typename T>
std::vector<Offset<T>> forward_offsets(int radius, double sigma) {
  std::vector<Offset<T>> offsets;
  for (int dy = 0; dy <= radius; ++dy) {
    for (int dx = -radius; dx <= radius; ++dx) {
      if (is_forward_offset(dy, dx)) {
        offsets.push_back({dy, dx, static_cast<T>(gaussian_weight_squared(dy, dx, sigma))});
      }
    }
  }
  return offsets;
}

// The rows of each image are split into bands, one task each. A band computes every forward
// pair of its rows once and adds it to both pixels, in a private accumulator of its rows plus
// the `radius` rows below (where its pairs' second pixels may lie): no two tasks write the same
// memory. A second pass sums, for each row, the accumulators that cover it.
struct Bands {
  int64_t rows, count, stride_rows;  // rows a band, bands an image, rows of an accumulator

  Bands(int64_t batch, int64_t height, int radius) {
    const int64_t tasks = 4 * at::get_num_threads();
    const int64_t per_image = std::max<int64_t>(1, (tasks + batch - 1) / batch);
    rows = std::max<int64_t>(8, (height + per_image - 1) / per_image);
    count = (height + rows - 1) / rows;
    stride_rows = rows + radius;
  }
};

// (g ΔE00)² of the pairs (y, x) - (y + dy, x + dx) of one row, into e. A loop of its own, with
// no stores but e: the compiler vectorises it (the float math of color_math.h is inline for that).
template <typename T>
FASTADV_HD_INLINE void row_energies(const LabPlanes<T>& lab, int64_t row_p, int64_t row_q,
                                    int64_t x_lo, int64_t x_hi, T weight_sq, T* __restrict__ e) {
  for (int64_t x = x_lo; x < x_hi; ++x) {
    e[x] = weight_sq * delta_e2000_squared(lab.at(row_p + x), lab.at(row_q + x), T(1), T(1), T(1));
  }
}

// The float loop, where nearly all the time goes, is also compiled for AVX2 and AVX-512.
FASTADV_WIDE_CLONES void row_energies_float(const LabPlanes<float>& lab, int64_t row_p,
                                            int64_t row_q, int64_t x_lo, int64_t x_hi,
                                            float weight_sq, float* __restrict__ e) {
  row_energies(lab, row_p, row_q, x_lo, x_hi, weight_sq, e);
}

template <typename T>
void pair_energies(const LabPlanes<T>& lab, int64_t row_p, int64_t row_q, int64_t x_lo,
                   int64_t x_hi, T weight_sq, T* e) {
  if constexpr (std::is_same_v<T, float>) {
    row_energies_float(lab, row_p, row_q, x_lo, x_hi, weight_sq, e);
  } else {
    row_energies(lab, row_p, row_q, x_lo, x_hi, weight_sq, e);
  }
}

template <typename T>
void accumulate_band(const ColorVarianceArgs& a, const std::vector<Offset<T>>& offsets,
                     const LabPlanes<T>& lab, int64_t y0, int64_t y1, T* acc) {
  const int64_t h = a.height, w = a.width;
  std::vector<T> e(w);
  for (int64_t y = y0; y < y1; ++y) {
    for (const Offset<T>& o : offsets) {
      const int64_t yq = y + o.dy;
      if (yq >= h) continue;
      const int64_t x_lo = std::max<int64_t>(0, -o.dx), x_hi = std::min<int64_t>(w, w - o.dx);
      pair_energies(lab, y * w, yq * w + o.dx, x_lo, x_hi, o.weight_sq, e.data());
      T* acc_p = acc + (y - y0) * w;
      T* acc_q = acc + (yq - y0) * w + o.dx;  // may overlap acc_p: two loops
      for (int64_t x = x_lo; x < x_hi; ++x) acc_p[x] += e[x];
      for (int64_t x = x_lo; x < x_hi; ++x) acc_q[x] += e[x];
    }
  }
}

template <typename T>
void finish_rows(const ColorVarianceArgs& a, const Bands& bands, const T* acc, T* out) {
  const int64_t h = a.height, w = a.width, r = a.radius;
  at::parallel_for(0, a.batch * h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / h, y = row % h;
      const int64_t first = std::max<int64_t>(0, y - r) / bands.rows;
      const int64_t last = std::min(bands.count - 1, y / bands.rows);
      const int64_t ny = window_extent(y, h, r);
      T* dst = out + row * w;
      for (int64_t x = 0; x < w; ++x) {
        T sum = 0;
        for (int64_t j = first; j <= last; ++j) {
          sum += acc[((b * bands.count + j) * bands.stride_rows + y - j * bands.rows) * w + x];
        }
        dst[x] = color_variance_value(sum, ny * window_extent(x, w, r) - 1);
      }
    }
  });
}

template <typename T>
void color_variance_cpu_typed(const ColorVarianceArgs& a, at::Tensor& scratch) {
  lab_planes(static_cast<const T*>(a.rgb), static_cast<T*>(a.lab), a.batch, a.height * a.width, 4);
  const auto offsets = forward_offsets<T>(a.radius, a.sigma);
  const Bands bands(a.batch, a.height, a.radius);
  scratch.resize_({a.batch * bands.count * bands.stride_rows * a.width}).zero_();
  T* acc = scratch.data_ptr<T>();
  const int64_t plane = a.height * a.width;
  at::parallel_for(0, a.batch * bands.count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / bands.count, y0 = (task % bands.count) * bands.rows;
      const LabPlanes<T> lab{static_cast<const T*>(a.lab) + b * 4 * plane, plane};
      accumulate_band(a, offsets, lab, y0, std::min(a.height, y0 + bands.rows),
                      acc + task * bands.stride_rows * a.width);
    }
  });
  finish_rows(a, bands, acc, static_cast<T*>(a.out));
}

at::Tensor rgb_to_lab_cpu(const at::Tensor& rgb) {
  const at::Tensor x = color_pixels_operand(rgb, "rgb");
  at::Tensor out = at::empty_like(x);
  const ColorPixelsArgs a = make_color_pixels_args(x, nullptr, out, 1, 1, 1);
  dispatch_compute(a.is_double, [&](auto tag) { rgb_to_lab_cpu_typed<decltype(tag)>(a); });
  return out.to(rgb.scalar_type());
}

at::Tensor delta_e2000_cpu(const at::Tensor& lab1, const at::Tensor& lab2, double kl, double kc,
                           double kh) {
  const at::Tensor x = color_pixels_operand(lab1, "lab1");
  const at::Tensor y = color_pixels_operand(lab2, "lab2").to(x.scalar_type());
  at::Tensor out = at::empty({x.size(0), x.size(2)}, x.options());
  const ColorPixelsArgs a = make_color_pixels_args(x, &y, out, kl, kc, kh);
  dispatch_compute(a.is_double, [&](auto tag) { delta_e2000_cpu_typed<decltype(tag)>(a); });
  return out.to(lab1.scalar_type());
}

at::Tensor color_variance_cpu(const at::Tensor& rgb, int64_t kernel_size, double sigma,
                              bool normalize) {
  const ColorVarianceCall call(rgb, kernel_size, sigma);
  at::Tensor scratch = at::empty({0}, call.rgb.options());
  dispatch_compute(call.args.is_double,
                   [&](auto tag) { color_variance_cpu_typed<decltype(tag)>(call.args, scratch); });
  return call.result(normalize, rgb.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(fastadv, CPU, m) {
  m.impl("rgb_to_lab", &rgb_to_lab_cpu);
  m.impl("delta_e2000", &delta_e2000_cpu);
  m.impl("color_variance", &color_variance_cpu);
}

}  // namespace fastadv
