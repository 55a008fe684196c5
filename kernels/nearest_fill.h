// Nearest-non-class neighbour fill: every hidden pixel takes the label of its nearest non-hidden
// pixel (exact Euclidean distance). The algorithm lives here once; the CPU loops (csrc/) and the
// CUDA kernels (nearest_fill.cu) call row_sites and column_fill, and
// fastadv/triton/nearest_fill.py mirrors them. Two separable passes, O(pixels) work
// (Meijster, Roerdink and Hesselink 2000):
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

#include "common.h"

namespace fastadv {

constexpr int32_t kNoSite = -1;
// Squared distances and the envelope's intersections stay in int32 for sides up to this.
constexpr int64_t kMaxSide = 16384;

enum class LabelType : int { UInt8 = 0, Int32 = 1, Int64 = 2 };

// Everything one call needs. All arrays are contiguous [B, H, W] unless noted.
struct NearestFillArgs {
  const void* labels;  // of label_type
  const bool* hide;
  void* out;           // of label_type
  float* distance;     // null: not wanted
  bool* empty;         // [B]: the image has pixels, all hidden
  int32_t* site;       // scratch: pass 1's result
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

// Squared distance from row u of the column to the site of row r, whose own squared distance
// along its row is f_r.
FASTADV_HD int32_t parabola(int32_t u, int32_t r, int32_t f_r) { return (u - r) * (u - r) + f_r; }

// The last row at which the site of row i is at least as near as the site of row u > i: the
// floor of the parabolas' intersection. Only called where that is >= 0, so / rounds down.
FASTADV_HD int32_t separation(int32_t i, int32_t f_i, int32_t u, int32_t f_u) {
  return (u * u - i * i + f_u - f_i) / (2 * (u - i));
}

// Row r's squared distance to its site in column c (pass 1's result seen from column c).
FASTADV_HD int32_t row_cost(int32_t c, int32_t site_col) {
  return (c - site_col) * (c - site_col);
}

// Pass 2, forward sweep over a column of n rows: the lower envelope as a stack of sites s[] with
// the first row t[] at which each is the lowest. Returns the top's index, -1 when no row of the
// column has a site (then the whole image is hidden).
template <typename SiteLine, typename StackLine>
FASTADV_HD int32_t build_envelope(SiteLine site, int32_t c, int32_t n, StackLine s, StackLine t) {
  int32_t q = -1;
  for (int32_t u = 0; u < n; ++u) {
    if (site[u] == kNoSite) continue;
    const int32_t f_u = row_cost(c, site[u]);
    // Strictly nearer at the start of the top's segment: the top is nowhere the lowest.
    while (q >= 0 && parabola(t[q], s[q], row_cost(c, site[s[q]])) > parabola(t[q], u, f_u)) --q;
    if (q < 0) {
      q = 0;
      s[0] = u;
      t[0] = 0;
      continue;
    }
    const int32_t w = 1 + separation(s[q], row_cost(c, site[s[q]]), u, f_u);
    if (w < n) {
      ++q;
      s[q] = u;
      t[q] = w;
    }
  }
  return q;
}

// Pass 2, backward sweep: emit(u, r) for every row u of the column, from the last, with the row r
// of its nearest site; q is build_envelope's result (>= 0).
template <typename StackLine, typename Emit>
FASTADV_HD void for_each_nearest(int32_t q, int32_t n, StackLine s, StackLine t, Emit&& emit) {
  for (int32_t u = n - 1; u >= 0; --u) {
    emit(u, s[q]);
    if (u == t[q]) --q;
  }
}

// The float32 of the exact root, as scipy's distance_transform_edt gives it. Below 2^24 the
// squared distance is exact in float and the correctly rounded sqrtf equals the double root
// rounded to float (double rounding is innocuous for sqrt when 53 >= 2 * 24 + 2).
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
  for_each_nearest(q, a.height, s, t, [&](int32_t u, int32_t r) {
    const int64_t i = static_cast<int64_t>(u) * a.width + c;
    const int32_t col = site[r];
    out[i] = labels[static_cast<int64_t>(r) * a.width + col];
    if (distance) distance[i] = euclidean(u - r, c - col);
  });
}

}  // namespace fastadv
