// Nearest-non-class neighbour fill: every hidden pixel takes the label of its nearest non-hidden
// pixel (exact Euclidean distance). The algorithm lives here once: the CPU loops (csrc/) call
// row_sites, build_envelope and for_each_nearest, the CUDA kernels (nearest_fill.cu) call
// last_visible / first_visible and column_fill, and fastadv/triton/nearest_fill.py mirrors them.
// Two separable passes, O(pixels) work (Meijster, Roerdink and Hesselink 2000):
//
//   pass 1, along each row:    site[r][x] = the nearest non-hidden column of row r
//   pass 2, along each column: the lower envelope of the parabolas (u - r)^2 + (c - site[r][c])^2
//                              over the rows r that have a site; at row u its lowest parabola is
//                              the nearest non-hidden pixel (r, site[r][c]) of (u, c).
//
// Tie rule: among equidistant non-hidden pixels the first in row-major order (smallest row, then
// smallest column). Pass 2 keeps the smaller row where two parabolas are equal (separation()
// rounds down and the pop in build_envelope is strict), and every row tied in pass 2 reaches
// its nearest column through pass 1, which keeps the smaller column of two equidistant ones.
#pragma once

#include "kernels/common.h"

namespace fastadv {

constexpr int32_t kNoSite = -1;
// Squared distances and the envelope's intersections stay in int32 for sides up to this.
constexpr int64_t kMaxSide = 16384;

enum class LabelType : int { UInt8 = 0, Int32 = 1, Int64 = 2 };

// Everything one call needs. All arrays are contiguous [B, H, W] unless noted.
struct NearestFillArgs {
  const void* labels;  // of label_type
  const bool* hide;
  void* out;        // of label_type
  float* distance;  // null: not wanted
  bool* empty;      // [B]: the image has pixels, all hidden
  int32_t* site;    // scratch: pass 1's result
  LabelType label_type;
  int64_t batch;
  int32_t height, width;
};

// Element k of a line through an array: base[k * stride].
template <typename T>
struct Strided {
  T* base;
  int64_t stride;
  FASTADV_HD T& operator[](int32_t k) const { return base[k * stride]; }
};

// Pass 1's tie rule: of the nearest non-hidden columns left and right of x, the left one when
// they are equidistant.
FASTADV_HD int32_t nearer_site(int32_t left, int32_t right, int32_t x) {
  if (left == kNoSite) return right;
  if (right == kNoSite) return left;
  return x - left <= right - x ? left : right;
}

// Pass 1 on one row of n pixels (kNoSite everywhere when the whole row is hidden).
FASTADV_HD void nearest_in_row(const bool* hidden, int32_t* site, int32_t n) {
  int32_t last = kNoSite;
  for (int32_t x = 0; x < n; ++x) {
    if (!hidden[x]) last = x;
    site[x] = last;
  }
  int32_t next = kNoSite;
  for (int32_t x = n - 1; x >= 0; --x) {
    if (!hidden[x]) next = x;
    site[x] = nearer_site(site[x], next, x);
  }
}

FASTADV_HD void row_sites(const NearestFillArgs& a, int64_t line) {
  const int64_t offset = line * a.width;
  nearest_in_row(a.hide + offset, a.site + offset, a.width);
}

FASTADV_HD int32_t count_leading_zeros(uint32_t v) {  // v != 0
#if defined(__CUDA_ARCH__)
  return __clz(static_cast<int>(v));
#else
  return __builtin_clz(v);
#endif
}

FASTADV_HD int32_t count_trailing_zeros(uint32_t v) {  // v != 0
#if defined(__CUDA_ARCH__)
  return __ffs(static_cast<int>(v)) - 1;
#else
  return __builtin_ctz(v);
#endif
}

// Pass 1 a warp at a time (the CUDA kernel): lane l of the 32-column chunk starting at x0 holds
// column x0 + l, and bit l of `visible` (a ballot) says whether that column is non-hidden.
// The last non-hidden column at or left of x0 + lane, else `before` (the last left of the chunk).
FASTADV_HD int32_t last_visible(uint32_t visible, int32_t lane, int32_t x0, int32_t before) {
  const uint32_t upto = visible & (0xffffffffu >> (31 - lane));
  return upto != 0 ? x0 + 31 - count_leading_zeros(upto) : before;
}

// The first non-hidden column at or right of x0 + lane, else `after` (the first right of it).
FASTADV_HD int32_t first_visible(uint32_t visible, int32_t lane, int32_t x0, int32_t after) {
  const uint32_t from = visible & (0xffffffffu << lane);
  return from != 0 ? x0 + count_trailing_zeros(from) : after;
}

// Squared distance from row u of the column to the site of row r, whose own squared distance
// along its row is f_r.
FASTADV_HD int32_t parabola(int32_t u, int32_t r, int32_t f_r) { return (u - r) * (u - r) + f_r; }

// The last row at which the site of row i is at least as near as the site of row u > i: the
// floor of the parabolas' intersection. Only called where that is >= 0, so / rounds down.
FASTADV_HD int32_t separation(int32_t i, int32_t f_i, int32_t u, int32_t f_u) {
  return (u * u - i * i + f_u - f_i) / (2 * (u - i));
}

// Row r's squared distance to its site in column c (pass 1's result seen from column c).
FASTADV_HD int32_t row_cost(int32_t c, int32_t site_col) { return (c - site_col) * (c - site_col); }

// One segment of the lower envelope: from row `start` on (to the next segment's start) the
// nearest non-hidden pixel is the site of row `row`, at squared distance `cost` along that row.
struct Segment {
  int32_t row, start, cost;
};

// Pass 2, forward sweep: the lower envelope of a column of n rows as a stack of segments, the
// sites in s[] and the starts in t[]. The top is kept in registers and written back when it is
// covered: a step compares with the top only and touches memory only to push, so the GPU's
// sweeps wait on few loads.
template <typename SiteLine, typename StackLine>
struct EnvelopeBuilder {
  SiteLine site;
  int32_t c, n;
  StackLine s, t;
  int32_t q = -1;  // the top's index; -1: empty
  Segment top{0, 0, 0};

  // Row u, whose site is in column col.
  FASTADV_HD void add(int32_t u, int32_t col) {
    const int32_t f_u = row_cost(c, col);
    // Strictly nearer at the start of the top's segment: the top is nowhere the lowest.
    while (q >= 0 && parabola(top.start, top.row, top.cost) > parabola(top.start, u, f_u)) {
      if (--q >= 0) top = Segment{s[q], t[q], row_cost(c, site[s[q]])};
    }
    if (q < 0) {
      q = 0;
      top = Segment{u, 0, f_u};
      return;
    }
    const int32_t w = 1 + separation(top.row, top.cost, u, f_u);
    if (w < n) {
      s[q] = top.row;
      t[q] = top.start;
      ++q;
      top = Segment{u, w, f_u};
    }
  }

  FASTADV_HD int32_t finish() {
    if (q >= 0) {
      s[q] = top.row;
      t[q] = top.start;
    }
    return q;
  }
};

// Rows the forward sweep reads at once: the loads of a group are all issued before the first
// is used, so a GPU thread waits for memory once a group rather than once a row.
constexpr int32_t kRowsAhead = 8;

// The forward sweep over a column; returns the top's index, -1 when no row of the column has a
// site (then the whole image is hidden).
template <typename SiteLine, typename StackLine>
FASTADV_HD int32_t build_envelope(SiteLine site, int32_t c, int32_t n, StackLine s, StackLine t) {
  EnvelopeBuilder<SiteLine, StackLine> envelope{site, c, n, s, t};
  for (int32_t u0 = 0; u0 < n; u0 += kRowsAhead) {
    int32_t cols[kRowsAhead];
    for (int32_t j = 0; j < kRowsAhead; ++j) cols[j] = u0 + j < n ? site[u0 + j] : kNoSite;
    for (int32_t j = 0; j < kRowsAhead; ++j) {
      if (cols[j] != kNoSite) envelope.add(u0 + j, cols[j]);
    }
  }
  return envelope.finish();
}

// Pass 2, backward sweep: emit(u, r, col) for every row u of the column, from the last, with
// its nearest non-hidden pixel (r, col); q is build_envelope's result (>= 0). Memory is read
// once a segment, not once a row.
template <typename SiteLine, typename StackLine, typename Emit>
FASTADV_HD void for_each_nearest(SiteLine site, int32_t q, int32_t n, StackLine s, StackLine t,
                                 Emit&& emit) {
  int32_t row = s[q], start = t[q], col = site[row];
  for (int32_t u = n - 1; u >= 0; --u) {
    emit(u, row, col);
    if (u == start && u > 0) {  // segment 0 starts at row 0
      --q;
      row = s[q];
      start = t[q];
      col = site[row];
    }
  }
}

// The float32 of the exact root, as scipy's distance_transform_edt gives it. Below 2^24 the
// squared distance is exact in float and the correctly rounded sqrtf equals the double root
// rounded to float (double rounding is innocuous for sqrt when 53 >= 2 * 24 + 2). nvcc's sqrtf
// is correctly rounded by default (-prec-sqrt=true; not under --use_fast_math).
FASTADV_HD float euclidean(int32_t dy, int32_t dx) {
  const int32_t d2 = dy * dy + dx * dx;
  if (d2 < (1 << 24)) return sqrtf(static_cast<float>(d2));
  return static_cast<float>(sqrt(static_cast<double>(d2)));
}

// Both sweeps of pass 2 for column c of image b, with stacks of height entries: fills out (and
// distance) of the column and, from column 0, empty[b]. An image whose pixels are all hidden
// stays as it is, at infinite distance.
template <typename label_t, typename StackLine>
FASTADV_HD void column_fill(const NearestFillArgs& a, int64_t b, int32_t c, StackLine s,
                            StackLine t) {
  const int64_t plane = static_cast<int64_t>(a.height) * a.width;
  const Strided<const int32_t> site{a.site + b * plane + c, a.width};
  const label_t* labels = static_cast<const label_t*>(a.labels) + b * plane;
  label_t* out = static_cast<label_t*>(a.out) + b * plane;
  float* distance = a.distance ? a.distance + b * plane : nullptr;
  const int32_t q = build_envelope(site, c, a.height, s, t);
  if (c == 0) a.empty[b] = q < 0;
  if (q < 0) {
    for (int32_t u = 0; u < a.height; ++u) {
      const int64_t i = static_cast<int64_t>(u) * a.width + c;
      out[i] = labels[i];
      if (distance) distance[i] = INFINITY;
    }
    return;
  }
  label_t label{};
  int32_t label_row = -1;  // the source's label is loaded once a segment
  for_each_nearest(site, q, a.height, s, t, [&](int32_t u, int32_t r, int32_t col) {
    if (r != label_row) {
      label_row = r;
      label = labels[static_cast<int64_t>(r) * a.width + col];
    }
    const int64_t i = static_cast<int64_t>(u) * a.width + c;
    out[i] = label;
    if (distance) distance[i] = euclidean(u - r, c - col);
  });
}

}  // namespace fastadv
