// Colour math shared by the CPU kernels (csrc/color.cpp) and the CUDA kernels (color.cu):
// sRGB -> CIELAB as skimage.color.rgb2lab computes it (D65, 2° observer), CIEDE2000 after
// Sharma, Wu and Dalal (2005), and the Gaussian weight of the CV-PIRE colour-variance map.
// fastadv/triton/color.py mirrors these formulas; fastadv/ops/color.py holds the reference.
#pragma once

#include <cstring>

#include "kernels/common.h"

// Host compilers would call the longer functions rather than inline them, and would not inline
// them into the AVX2 / AVX-512 clones of the colour-variance loop (csrc/color.cpp) at all;
// inlined is what lets them vectorise that loop.
#if defined(__CUDACC__) || !defined(__GNUC__)
#define FASTADV_HD_INLINE FASTADV_HD
#else
#define FASTADV_HD_INLINE inline __attribute__((always_inline))
#endif

namespace fastadv {

// One set of math calls for host and device, float and double (the C names exist on both;
// float atan2 is below).
FASTADV_HD_INLINE double m_sqrt(double v) { return sqrt(v); }
FASTADV_HD_INLINE double m_exp(double v) { return exp(v); }
FASTADV_HD_INLINE double m_atan2(double y, double x) { return atan2(y, x); }
FASTADV_HD_INLINE double m_pow(double v, double e) { return pow(v, e); }
FASTADV_HD_INLINE double m_cbrt(double v) { return cbrt(v); }
FASTADV_HD_INLINE double m_fma(double a, double b, double c) { return fma(a, b, c); }
#if defined(__CUDA_ARCH__)
FASTADV_HD_INLINE float m_fma(float a, float b, float c) { return fmaf(a, b, c); }
#endif

// atan(t) for t in [0, 1]: Cephes' rational approximation (double precision in double; the
// Triton kernels use it too, having no atan of their own).
template <typename T>
FASTADV_HD_INLINE T atan_unit(T t) {
  const bool mid = t > T(0.66);
  const T x = mid ? (t - T(1)) / (t + T(1)) : t;
  const T z = x * x;
  // clang-format off
  const T p = (((T(-8.750608600031904122785e-1) * z - T(1.615753718733365076637e1)) * z -
                T(7.500855792314704667340e1)) * z - T(1.228866684490136173410e2)) * z -
              T(6.485021904942025371773e1);
  const T q = ((((z + T(2.485846490142306297962e1)) * z + T(1.650270098316988542046e2)) * z +
                T(4.328810604912902668951e2)) * z + T(4.853903996359136964868e2)) * z +
              T(1.945506571482613964425e2);
  // clang-format on
  const T r = x + x * (z * p / q);
  return mid ? r + T(0.78539816339744830962) : r;
}

// glibc's atan2f takes a slow path through atanf: on the host, float uses the rational above.
FASTADV_HD_INLINE float m_atan2(float y, float x) {
#if defined(__CUDA_ARCH__)
  return atan2f(y, x);
#else
  const float ax = x < 0 ? -x : x, ay = y < 0 ? -y : y;
  const float big = ax > ay ? ax : ay, small = ax > ay ? ay : ax;
  float a = atan_unit(small / (big > 0 ? big : 1.0f));
  a = ay > ax ? 1.57079632679489661923f - a : a;
  a = x < 0 ? 3.14159265358979323846f - a : a;
  return y < 0 ? -a : a;
#endif
}

// exp, and sin on [-π/2, π/2], for float on the host: polynomials, as glibc's expf and sinf have
// no vector versions (short of -ffast-math) and would keep the compiler from vectorising the
// colour-variance loop. Both are accurate to about 1e-7, relative.
FASTADV_HD_INLINE float m_exp(float v) {
#if defined(__CUDA_ARCH__)
  return expf(v);
#else
  v = v < -87.f ? -87.f : (v > 88.f ? 88.f : v);  // the result's exponent stays normal
  // e^v = 2^n e^r with n = rint(v / ln 2), |r| <= ln(2) / 2 (ln 2 split in two: r is exact);
  // |v / ln 2| < 2^22, so adding and subtracting 1.5 * 2^23 rounds it to an integer.
  const float n = (v * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const float r = (v - n * 0.693359375f) + n * 2.12194440e-4f;
  // clang-format off
  const float p =
      1.f + r * (1.f + r * (0.5f + r * (1.f / 6 + r * (1.f / 24 + r * (1.f / 120 +
                                                    r * (1.f / 720 + r * (1.f / 5040)))))));
  // clang-format on
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
#endif
}

// ln v for float on the host, v > 0 and normal: v = 2^e m with m in [sqrt(1/2), sqrt(2)), and
// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, by its series to s^9 (the next term is
// below 1e-9). Like m_exp, vectorisable where glibc's logf, powf and cbrtf are not.
FASTADV_HD_INLINE float m_log(float v) {
#if defined(__CUDA_ARCH__)
  return logf(v);
#else
  int32_t bits;
  memcpy(&bits, &v, sizeof bits);
  const int32_t e = (bits - 0x3f3504f3) >> 23;  // 0x3f3504f3: the bits of sqrt(1/2)
  bits -= e * (1 << 23);
  float m;
  memcpy(&m, &bits, sizeof m);
  const float s = (m - 1.f) / (m + 1.f), z = s * s;
  const float ln_m = 2.f * s * (1.f + z * (1.f / 3 + z * (1.f / 5 + z * (1.f / 7 + z / 9))));
  const float n = static_cast<float>(e);
  return n * 0.693359375f + (ln_m - n * 2.12194440e-4f);  // ln 2 in two parts, as in m_exp
#endif
}

// v^e and the cube root for float, v > 0 and normal (the domains of their one caller each, the
// sRGB and CIELAB transfer functions): accurate to 1e-6 and 3e-7, relative.
FASTADV_HD_INLINE float m_pow(float v, float e) {
#if defined(__CUDA_ARCH__)
  return powf(v, e);
#else
  return m_exp(e * m_log(v));
#endif
}

FASTADV_HD_INLINE float m_cbrt(float v) {
#if defined(__CUDA_ARCH__)
  return cbrtf(v);
#else
  return m_exp(m_log(v) * (1.f / 3));
#endif
}

FASTADV_HD_INLINE float sin_small(float v) {
#if defined(__CUDA_ARCH__)
  return sinf(v);
#else
  const float z = v * v;  // Taylor to v^13: its error is below 1e-9 on [-π/2, π/2]
  // clang-format off
  return v * (1.f + z * (-1.f / 6 + z * (1.f / 120 + z * (-1.f / 5040 + z * (1.f / 362880 +
                                                     z * (-1.f / 39916800 + z / 6227020800.f))))));
  // clang-format on
#endif
}
FASTADV_HD_INLINE double sin_small(double v) { return sin(v); }

// sqrt for v >= 0, by Newton's iteration on 1/sqrt(v) from the bit-level first guess: without
// -fno-math-errno (setup.py's flags are the whole extension's), sqrtf's errno path keeps the
// compiler from vectorising. Three steps leave a few ulps of error; sqrt(0) = 0.
FASTADV_HD_INLINE float m_sqrt(float v) {
#if defined(__CUDA_ARCH__)
  return sqrtf(v);
#else
  int32_t bits;
  memcpy(&bits, &v, sizeof bits);
  bits = 0x5f375a86 - (bits >> 1);
  float y;
  memcpy(&y, &bits, sizeof y);
  const float half = 0.5f * v;
  y = y * (1.5f - half * y * y);
  y = y * (1.5f - half * y * y);
  y = y * (1.5f - half * y * y);
  return v * y;
#endif
}

constexpr double kPi = 3.14159265358979323846;
constexpr double kDegPerRad = 180.0 / kPi;
constexpr double kRadPerDeg = kPi / 180.0;

template <typename T>
struct Lab {
  T L, a, b;
};

// ---------------------------------------------------------------------------------------------
// sRGB -> CIELAB

// IEC 61966-2-1 companding, inverted.
template <typename T>
FASTADV_HD_INLINE T srgb_to_linear(T c) {
  return c > T(0.04045) ? m_pow((c + T(0.055)) / T(1.055), T(2.4)) : c / T(12.92);
}

// CIELAB's f(t) with skimage's constants (epsilon 0.008856, slope 7.787).
template <typename T>
FASTADV_HD_INLINE T lab_f(T t) {
  return t > T(0.008856) ? m_cbrt(t) : T(7.787) * t + T(16.0 / 116.0);
}

template <typename T>
FASTADV_HD_INLINE Lab<T> rgb_to_lab(T r, T g, T b) {
  r = srgb_to_linear(r);
  g = srgb_to_linear(g);
  b = srgb_to_linear(b);
  // skimage's xyz_from_rgb, each row divided by its D65 white component afterwards
  const T x = (T(0.412453) * r + T(0.357580) * g + T(0.180423) * b) / T(0.95047);
  const T y = T(0.212671) * r + T(0.715160) * g + T(0.072169) * b;
  const T z = (T(0.019334) * r + T(0.119193) * g + T(0.950227) * b) / T(1.08883);
  const T fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
  return {T(116) * fy - T(16), T(500) * (fx - fy), T(200) * (fy - fz)};
}

// ---------------------------------------------------------------------------------------------
// CIEDE2000

// A Lab colour with its chroma sqrt(a² + b²), which the colour-variance map computes once a
// pixel rather than once a pair.
template <typename T>
struct LabC {
  T L, a, b, c;
};

template <typename T>
FASTADV_HD_INLINE LabC<T> with_chroma(T L, T a, T b) {
  return {L, a, b, m_sqrt(a * a + b * b)};
}

// sqrt(c^7 / (c^7 + 25^7)), in G and R_C.
template <typename T>
FASTADV_HD_INLINE T chroma_ratio(T c) {
  const T c2 = c * c;
  const T c7 = c2 * c2 * c2 * c;
  return m_sqrt(c7 / (c7 + T(6103515625.0)));
}

// h in degrees, [0, 360), of the vector (a, b); 0 where a = b = 0, as Sharma's step 2 defines h'.
template <typename T>
FASTADV_HD_INLINE T hue_degrees(T b, T a) {
  if (b == T(0) && a == T(0)) return T(0);
  const T h = m_atan2(b, a) * T(kDegPerRad);
  return h < T(0) ? h + T(360) : h;
}

// 1 - 0.17 cos(h̄ - 30°) + 0.24 cos(2h̄) + 0.32 cos(3h̄ + 6°) - 0.20 cos(4h̄ - 63°) from
// (cos h̄, sin h̄): the multiple angles by the double- and triple-angle identities.
template <typename T>
FASTADV_HD_INLINE T hue_weighting(T c1, T s1) {
  const T c2 = T(2) * c1 * c1 - T(1), s2 = T(2) * s1 * c1;
  const T c3 = c1 * c2 - s1 * s2, s3 = s1 * c2 + c1 * s2;
  const T c4 = T(2) * c2 * c2 - T(1), s4 = T(2) * s2 * c2;
  const T cos30 = T(0.86602540378443864676), sin30 = T(0.5);
  const T cos6 = T(0.99452189536827333692), sin6 = T(0.10452846326765347140);
  const T cos63 = T(0.45399049973954679156), sin63 = T(0.89100652418836786236);
  return T(1) - T(0.17) * (c1 * cos30 + s1 * sin30) + T(0.24) * c2 +
         T(0.32) * (c3 * cos6 - s3 * sin6) - T(0.20) * (c4 * cos63 + s4 * sin63);
}

// Sharma's hue steps (2.3: Δh' with the ±360° rule; 3.1: h̄') are written on the angles h'1, h'2.
// They are computed here on the chroma vectors v = (a', b) instead, which is equivalent and needs
// one atan2 a pair rather than two, and which float32 rounds far less: an angle near 360° carries
// half an ulp (2.7e-7 rad) of error, and S_H turns that into 1e-4 of ΔE for saturated colours.
//  - Δh' is the signed smaller angle from v1 to v2, so its sign is that of cross(v1, v2). On the
//    180° boundary (v1, v2 exactly opposite) Sharma's published values take Δh' = h'2 - h'1
//    unwrapped: +180° when h'1 < 180°.
//  - h̄' bisects that smaller arc, so it points along u1 + u2 (u = v / C'), accurately so while
//    the hues are within 90°; further apart, along u2 - u1 turned by -90° times the sign of Δh'.
//  - When C'1 C'2 = 0, Δh' = 0 and h̄' = h'1 + h'2: the hue of the chromatic colour, v1 + v2
//    (0 for two greys).
template <typename T>
struct HueGeometry {
  T cos_h, sin_h;  // the direction of h̄'
  T mean_h;        // h̄' in degrees, [0, 360)
};

// The sign of a1 b2 - b1 a2, exactly: rounding is monotonic, so where the rounded products differ
// their order is the exact one; where they are equal, the exact products differ by their rounding
// errors, which a fused multiply-add gives exactly. Returns ±1, or 0 for an exact 0.
template <typename T>
FASTADV_HD_INLINE T cross_sign_by_fma(T a1, T b1, T a2, T b2) {
  const T p = a1 * b2, q = b1 * a2;
  if (p != q) return p > q ? T(1) : T(-1);
  const T d = m_fma(a1, b2, -p) - m_fma(b1, a2, -q);
  return d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
}

FASTADV_HD_INLINE double cross_sign(double a1, double b1, double a2, double b2) {
  return cross_sign_by_fma(a1, b1, a2, b2);
}

FASTADV_HD_INLINE float cross_sign(float a1, float b1, float a2, float b2) {
#if defined(__CUDA_ARCH__)
  return cross_sign_by_fma(a1, b1, a2, b2);
#else
  // float products are exact in double, and one rounding of their difference keeps its sign
  // (and vectorises, where a call to fmaf in the SSE2 and AVX2 loops would not)
  const double d = double(a1) * double(b2) - double(b1) * double(a2);
  return d > 0 ? 1.f : (d < 0 ? -1.f : 0.f);
#endif
}

// The sign of Δh' (±1) from the Lab a and b of the two colours. a' = (1 + G) a scales both
// vectors alike, so the sign of cross(v1, v2) is that of the unscaled a1 b2 - b1 a2, taken exactly:
// near the 180° discontinuity the G-scaled products round by as much as their difference, and
// the side, which moves h̄' by 180°, would be a coin toss.
template <typename T>
FASTADV_HD_INLINE T hue_turn(T a1, T b1, T a2, T b2) {
  const T s = cross_sign(a1, b1, a2, b2);
  if (s != T(0)) return s;
  return b1 > T(0) || (b1 == T(0) && a1 > T(0)) ? T(1) : T(-1);  // h'1 < 180°
}

template <typename T>
FASTADV_HD_INLINE HueGeometry<T> hue_geometry(T a1p, T b1, T c1p, T a2p, T b2, T c2p, T dot,
                                              T turn) {
  T x = a1p + a2p, y = b1 + b2;
  if (c1p * c2p != T(0)) {
    const T inv1 = T(1) / c1p, inv2 = T(1) / c2p;
    const T u1x = a1p * inv1, u1y = b1 * inv1, u2x = a2p * inv2, u2y = b2 * inv2;
    x = dot >= T(0) ? u1x + u2x : turn * (u2y - u1y);
    y = dot >= T(0) ? u1y + u2y : turn * (u1x - u2x);
  }
  const T norm = m_sqrt(x * x + y * y);
  if (norm == T(0)) return {T(1), T(0), T(0)};
  const T inv_norm = T(1) / norm;
  return {x * inv_norm, y * inv_norm, hue_degrees(y, x)};
}

// ΔH' = 2 sqrt(C'1 C'2) sin(Δh'/2) from the vectors too. With R = C'1 C'2, sin(Δh'/2) =
// cross / sqrt(2R(R + dot)), accurate while dot >= 0; beyond 90° apart, |ΔH'| = sqrt(2(R - dot))
// is, signed by `turn`.
template <typename T>
FASTADV_HD_INLINE T delta_hue_term(T cc, T cross, T dot, T turn) {
  if (cc == T(0)) return T(0);
  if (dot >= T(0)) return cross * m_sqrt(T(2) / (cc + dot));
  return turn * m_sqrt(T(2) * (cc - dot));
}

// ΔE00² between two colours (the colour-variance map sums squares; delta_e2000 takes the root).
// inv_k* are 1/k_L, 1/k_C, 1/k_H. Identical colours give exactly 0 however a compiler contracts
// products and sums into fused multiply-adds (and contracts differently in different copies of
// this code, as CUDA's in-tile and out-of-tile pairs are): the differences that must cancel are
// formed before any product, so that they are exact zeros.
template <typename T>
FASTADV_HD_INLINE T delta_e2000_squared(const LabC<T>& p, const LabC<T>& q, T inv_kl, T inv_kc,
                                        T inv_kh) {
  const T g = T(0.5) * (T(1) - chroma_ratio((p.c + q.c) * T(0.5)));
  const T a1p = (T(1) + g) * p.a, a2p = (T(1) + g) * q.a;
  const T c1p = m_sqrt(a1p * a1p + p.b * p.b), c2p = m_sqrt(a2p * a2p + q.b * q.b);
  const T cc = c1p * c2p, c_sum = c1p + c2p;
  const T dot = a1p * a2p + p.b * q.b;
  const T da = a2p - a1p, db = q.b - p.b;
  const T turn = hue_turn(p.a, p.b, q.a, q.b);
  const HueGeometry<T> hue = hue_geometry(a1p, p.b, c1p, a2p, q.b, c2p, dot, turn);

  const T d_l = q.L - p.L;
  // C'2 - C'1 = (C'2² - C'1²) / (C'1 + C'2), and a1p b2 - b1 a2p, from the differences
  const T d_c = c_sum > T(0) ? (da * (a2p + a1p) + db * (q.b + p.b)) / c_sum : T(0);
  const T d_h = delta_hue_term(cc, a1p * db - p.b * da, dot, turn);

  const T l_bar_50 = (p.L + q.L) * T(0.5) - T(50);
  const T l_bar_50_sq = l_bar_50 * l_bar_50;
  const T c_bar_p = c_sum * T(0.5);
  const T s_l = T(1) + T(0.015) * l_bar_50_sq / m_sqrt(T(20) + l_bar_50_sq);
  const T s_c = T(1) + T(0.045) * c_bar_p;
  const T s_h = T(1) + T(0.015) * c_bar_p * hue_weighting(hue.cos_h, hue.sin_h);
  const T theta_arg = (hue.mean_h - T(275)) * T(0.04);  // / 25
  const T d_theta = T(30) * m_exp(-theta_arg * theta_arg);
  const T r_t =
      T(-2) * chroma_ratio(c_bar_p) * sin_small(T(2) * d_theta * T(kRadPerDeg));  // 2Δθ <= 60°

  const T tl = d_l * inv_kl / s_l, tc = d_c * inv_kc / s_c, th = d_h * inv_kh / s_h;
  const T sq = tl * tl + tc * tc + th * th + r_t * tc * th;
  return sq > T(0) ? sq : T(0);  // never negative in exact arithmetic (|R_T| <= 2)
}

// False for a NaN or infinite component (x - x is NaN for both).
template <typename T>
FASTADV_HD_INLINE bool is_finite(const Lab<T>& v) {
  return v.L - v.L == T(0) && v.a - v.a == T(0) && v.b - v.b == T(0);
}

// ΔE00, NaN where a component is NaN or infinite (rather than the 0 of identical colours that
// the clamp above would make of a NaN).
template <typename T>
FASTADV_HD_INLINE T delta_e2000(const Lab<T>& p, const Lab<T>& q, T inv_kl, T inv_kc, T inv_kh) {
  const T e = m_sqrt(delta_e2000_squared(with_chroma(p.L, p.a, p.b), with_chroma(q.L, q.a, q.b),
                                         inv_kl, inv_kc, inv_kh));
  return is_finite(p) && is_finite(q) ? e : T(NAN);
}

// ---------------------------------------------------------------------------------------------
// Colour-variance map

// Pixel i (of B * H * W) of the colour-variance scratch buffer: rgb [B, 3, H, W] to the planes
// L, a, b and chroma of lab [B, 4, H, W]; plane = H * W.
template <typename T>
FASTADV_HD_INLINE void write_lab_planes(const T* rgb, T* lab, int64_t plane, int64_t i) {
  const int64_t b = i / plane, j = i % plane;
  const T* src = rgb + b * 3 * plane + j;
  const Lab<T> v = rgb_to_lab(src[0], src[plane], src[2 * plane]);
  const LabC<T> c = with_chroma(v.L, v.a, v.b);
  T* dst = lab + b * 4 * plane + j;
  dst[0] = c.L;
  dst[plane] = c.a;
  dst[2 * plane] = c.b;
  dst[3 * plane] = c.c;
}

// g(d)² for an offset d = (dy, dx): g(d) = exp(-|d|² / 2σ²) / (2πσ²), not normalised (CV-PIRE).
template <typename T>
FASTADV_HD_INLINE T gaussian_weight_squared(int dy, int dx, T sigma) {
  const T s2 = sigma * sigma;
  const T g = m_exp(-T(dy * dy + dx * dx) / (T(2) * s2)) / (T(2 * kPi) * s2);
  return g * g;
}

// |N(p)| along one axis: the in-image positions of the window around i.
FASTADV_HD_INLINE int64_t window_extent(int64_t i, int64_t n, int64_t radius) {
  const int64_t lo = i - radius < 0 ? 0 : i - radius;
  const int64_t hi = i + radius > n - 1 ? n - 1 : i + radius;
  return hi - lo + 1;
}

// cV(p) from Σ (g ΔE00)² over the pixel's neighbours; a pixel without any (a 1x1 image) gets 0.
template <typename T>
FASTADV_HD_INLINE T color_variance_value(T sum_sq, int64_t neighbours) {
  return neighbours > 0 ? m_sqrt(sum_sq / T(neighbours)) : T(0);
}

// Each pair (p, p + d) is computed once, for the offsets d in the forward half of the window:
// dy > 0, or dy = 0 and dx > 0. It contributes to both endpoints.
FASTADV_HD_INLINE bool is_forward_offset(int dy, int dx) { return dy > 0 || (dy == 0 && dx > 0); }

// What one colour_variance launch needs. rgb is [B, 3, H, W] contiguous in the compute type
// (float or double); lab is a [B, 4, H, W] scratch buffer (L, a, b, chroma planes) of that type;
// out is the raw map [B, 1, H, W] of that type (normalisation is done by the caller).
struct ColorVarianceArgs {
  const void* rgb;
  void* lab;
  void* out;
  bool is_double;
  int64_t batch, height, width;
  int radius;
  double sigma;
};

// Element strides of an [M, 3, P] operand of rgb_to_lab and delta_e2000 (of its [M, P] result:
// channel unused). Any layout: planar images ([B, 3, H, W]), interleaved ones (channels last,
// [N, 3] colour lists folded to [1, 3, N]: inner stride 3, channel stride 1), and views.
struct PixelStrides {
  int64_t outer, channel, inner;

  FASTADV_HD int64_t offset(int64_t m, int64_t j) const { return m * outer + j * inner; }
};

// rgb_to_lab and delta_e2000 launches: elementwise over the M * P pixels of [M, 3, P] operands in
// the compute type (float or double); delta_e2000 writes [M, P].
struct ColorPixelsArgs {
  const void* in1;
  const void* in2;  // delta_e2000 only
  void* out;
  PixelStrides in1_strides, in2_strides, out_strides;
  bool is_double;
  int64_t outer, inner;  // M and P
  double kl, kc, kh;     // delta_e2000 only
};

}  // namespace fastadv
