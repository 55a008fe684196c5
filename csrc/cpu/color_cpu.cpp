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
// Pixels a chunk of the elementwise loops: their channels, gathered side by side, stay in L1.
// A multiple of every vector width (4, 8 and 16 floats).
constexpr int64_t kChunk = 256;

// f(m, j, n) for runs of n <= kChunk consecutive pixels j.. of row m of [M, P], over the
// outer * inner pixels in parallel.
template <typename F>
void parallel_chunks(int64_t outer, int64_t inner, F&& f) {
  at::parallel_for(0, outer * inner, kGrain, [&](int64_t begin, int64_t end) {
    while (begin < end) {
      const int64_t m = begin / inner, j = begin - m * inner;
      const int64_t n = std::min({end - begin, inner - j, kChunk});
      f(m, j, n);
      begin += n;
    }
  });
}

// The float versions of the loops below are overloads compiled for AVX2 and AVX-512 too (a call
// with float arguments picks them); each calls the template's body.

// ---- Elementwise over the pixels of [M, 3, P] operands of any layout: each chunk is gathered
// into aligned unit-stride arrays (planar images, interleaved ones such as [N, 3] lists and
// channels last, and views alike), computed by a vectorised loop, and scattered back.

// Channels 0, 1, 2 of n consecutive pixels from src into c0, c1, c2; planar and interleaved
// pixels get loops of their own (unit and constant strides, which the compiler vectorises).
template <typename T>
FASTADV_HD_INLINE void gather3(const T* src, const PixelStrides& s, int64_t n, T* __restrict__ c0,
                               T* __restrict__ c1, T* __restrict__ c2) {
  const T* __restrict__ p0 = src, * __restrict__ p1 = src + s.channel, * __restrict__ p2 = src + 2 * s.channel;
  if (s.inner == 1) {
    for (int64_t k = 0; k < n; ++k) {
      c0[k] = p0[k];
      c1[k] = p1[k];
      c2[k] = p2[k];
    }
  } else if (s.inner == 3 && s.channel == 1) {
    for (int64_t k = 0; k < n; ++k) {
      c0[k] = src[3 * k];
      c1[k] = src[3 * k + 1];
      c2[k] = src[3 * k + 2];
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      c0[k] = p0[k * s.inner];
      c1[k] = p1[k * s.inner];
      c2[k] = p2[k * s.inner];
    }
  }
}

template <typename T>
FASTADV_HD_INLINE void scatter3(const T* __restrict__ c0, const T* __restrict__ c1,
                                const T* __restrict__ c2, T* dst, const PixelStrides& s,
                                int64_t n) {
  T* __restrict__ p0 = dst, * __restrict__ p1 = dst + s.channel, * __restrict__ p2 = dst + 2 * s.channel;
  if (s.inner == 1) {
    for (int64_t k = 0; k < n; ++k) {
      p0[k] = c0[k];
      p1[k] = c1[k];
      p2[k] = c2[k];
    }
  } else if (s.inner == 3 && s.channel == 1) {
    for (int64_t k = 0; k < n; ++k) {
      dst[3 * k] = c0[k];
      dst[3 * k + 1] = c1[k];
      dst[3 * k + 2] = c2[k];
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      p0[k * s.inner] = c0[k];
      p1[k * s.inner] = c1[k];
      p2[k * s.inner] = c2[k];
    }
  }
}

// CIELAB of n <= kChunk pixels, and with kChroma their chroma into the fourth channel of `out`
// (the colour-variance scratch buffer). The float loop runs over the whole chunk, zero-padded,
// so that every pixel goes through the same instructions. It must: gcc fuses multiplies and adds
// where the target has FMA, and fuses differently in the copies it makes of a vectorised loop
// (the AVX-512 body, its 8-lane epilogue, the scalar tail), so that identical pixels got Lab
// values an ulp apart, and a flat image a non-zero colour-variance map that normalisation blew
// up to 1. (-ffp-contract=off would do too, at 25% of rgb_to_lab's time.) The double loop calls
// libm's pow and cbrt and stays one scalar loop.
template <typename T, bool kChroma>
FASTADV_HD_INLINE void lab_chunk_body(const T* src, const PixelStrides& in, T* dst,
                                      const PixelStrides& out, int64_t n) {
  constexpr bool kVectorised = std::is_same_v<T, float>;
  alignas(64) T r[kChunk], g[kChunk], b[kChunk], l[kChunk], a_out[kChunk], b_out[kChunk];
  alignas(64) T c[kChroma ? kChunk : 1];
  const int64_t count = kVectorised ? kChunk : n;
  std::fill(r + n, r + count, T(0));
  std::fill(g + n, g + count, T(0));
  std::fill(b + n, b + count, T(0));
  gather3(src, in, n, r, g, b);
  for (int64_t j = 0; j < count; ++j) {
    const Lab<T> v = rgb_to_lab(r[j], g[j], b[j]);
    l[j] = v.L;
    a_out[j] = v.a;
    b_out[j] = v.b;
    if constexpr (kChroma) c[j] = m_sqrt(v.a * v.a + v.b * v.b);
  }
  scatter3(l, a_out, b_out, dst, out, n);
  if constexpr (kChroma) {
    T* chroma = dst + 3 * out.channel;
    for (int64_t k = 0; k < n; ++k) chroma[k * out.inner] = c[k];
  }
}

// rgb_to_lab's chunks.
template <typename T>
void lab_chunk(const T* src, const PixelStrides& in, T* dst, const PixelStrides& out, int64_t n) {
  lab_chunk_body<T, false>(src, in, dst, out, n);
}

FASTADV_WIDE_CLONES void lab_chunk(const float* src, const PixelStrides& in, float* dst,
                                   const PixelStrides& out, int64_t n) {
  lab_chunk_body<float, false>(src, in, dst, out, n);
}

// color_variance's chunks: Lab and chroma.
template <typename T>
void lab_chroma_chunk(const T* src, const PixelStrides& in, T* dst, const PixelStrides& out,
                      int64_t n) {
  lab_chunk_body<T, true>(src, in, dst, out, n);
}

FASTADV_WIDE_CLONES void lab_chroma_chunk(const float* src, const PixelStrides& in, float* dst,
                                          const PixelStrides& out, int64_t n) {
  lab_chunk_body<float, true>(src, in, dst, out, n);
}

// 1/k_L, 1/k_C, 1/k_H in the compute type.
template <typename T>
struct InverseWeights {
  T l, c, h;
};

// n <= kChunk pixels of delta_e2000.
template <typename T>
FASTADV_HD_INLINE void delta_e2000_chunk(const T* x, const PixelStrides& sx, const T* y,
                                         const PixelStrides& sy, T* out, int64_t out_stride,
                                         int64_t n, const InverseWeights<T>& inv) {
  alignas(64) T l1[kChunk], a1[kChunk], b1[kChunk], l2[kChunk], a2[kChunk], b2[kChunk], e[kChunk];
  gather3(x, sx, n, l1, a1, b1);
  gather3(y, sy, n, l2, a2, b2);
  for (int64_t k = 0; k < n; ++k) {
    e[k] =
        delta_e2000(Lab<T>{l1[k], a1[k], b1[k]}, Lab<T>{l2[k], a2[k], b2[k]}, inv.l, inv.c, inv.h);
  }
  for (int64_t k = 0; k < n; ++k) out[k * out_stride] = e[k];
}

FASTADV_WIDE_CLONES void delta_e2000_chunk(const float* x, const PixelStrides& sx, const float* y,
                                           const PixelStrides& sy, float* out, int64_t out_stride,
                                           int64_t n, const InverseWeights<float>& inv) {
  delta_e2000_chunk<float>(x, sx, y, sy, out, out_stride, n, inv);
}

template <typename T>
void rgb_to_lab_cpu_typed(const ColorPixelsArgs& a) {
  const T* src = static_cast<const T*>(a.in1);
  T* dst = static_cast<T*>(a.out);
  parallel_chunks(a.outer, a.inner, [&](int64_t m, int64_t j, int64_t n) {
    lab_chunk(src + a.in1_strides.offset(m, j), a.in1_strides, dst + a.out_strides.offset(m, j),
              a.out_strides, n);
  });
}

template <typename T>
void delta_e2000_cpu_typed(const ColorPixelsArgs& a) {
  const T* x = static_cast<const T*>(a.in1);
  const T* y = static_cast<const T*>(a.in2);
  T* out = static_cast<T*>(a.out);
  const InverseWeights<T> inv{T(1 / a.kl), T(1 / a.kc), T(1 / a.kh)};
  parallel_chunks(a.outer, a.inner, [&](int64_t m, int64_t j, int64_t n) {
    delta_e2000_chunk(x + a.in1_strides.offset(m, j), a.in1_strides, y + a.in2_strides.offset(m, j),
                      a.in2_strides, out + a.out_strides.offset(m, j), a.out_strides.inner, n, inv);
  });
}

// The L, a, b and chroma planes of `outer` contiguous [3, plane] images.
template <typename T>
void lab_chroma_planes(const T* rgb, T* out, int64_t outer, int64_t plane) {
  const PixelStrides in{3 * plane, plane, 1}, planes{4 * plane, plane, 1};
  parallel_chunks(outer, plane, [&](int64_t m, int64_t j, int64_t n) {
    lab_chroma_chunk(rgb + in.offset(m, j), in, out + planes.offset(m, j), planes, n);
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

// The float loop, where nearly all the time goes.
FASTADV_WIDE_CLONES void row_energies(const LabPlanes<float>& lab, int64_t row_p, int64_t row_q,
                                      int64_t x_lo, int64_t x_hi, float weight_sq,
                                      float* __restrict__ e) {
  row_energies<float>(lab, row_p, row_q, x_lo, x_hi, weight_sq, e);
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
      row_energies(lab, y * w, yq * w + o.dx, x_lo, x_hi, o.weight_sq, e.data());
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
  lab_chroma_planes(static_cast<const T*>(a.rgb), static_cast<T*>(a.lab), a.batch,
                    a.height * a.width);
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
  if (call.out.numel() == 0) return call.result(normalize, rgb.scalar_type());
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
