// Tests of the shared colour math (kernels/color_math.h) on the CPU, without torch (run by ctest).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>

#include "kernels/color_math.h"

namespace {

int failures = 0;

void expect_near(double got, double want, double tol, const char* what) {
  if (!(std::fabs(got - want) <= tol)) {
    std::printf("FAIL %s: got %.10g, want %.10g (tol %g)\n", what, got, want, tol);
    ++failures;
  }
}

// Pairs from Sharma, Wu and Dalal (2005), Table 1 (the published CIEDE2000 test data), with
// their published ΔE00 to 4 decimals. Pair 14 lies exactly on the 180° hue boundary.
struct SharmaPair {
  double lab1[3], lab2[3], de;
};
constexpr SharmaPair kSharma[] = {
    {{50.0, 2.6772, -79.7751}, {50.0, 0.0, -82.7485}, 2.0425},
    {{50.0, 0.0, 0.0}, {50.0, -1.0, 2.0}, 2.3669},
    {{50.0, 2.49, -0.001}, {50.0, -2.49, 0.0009}, 7.1792},
    {{50.0, -0.001, 2.49}, {50.0, 0.0009, -2.49}, 4.8045},
    {{50.0, -0.001, 2.49}, {50.0, 0.001, -2.49}, 4.8045},
    {{50.0, -0.001, 2.49}, {50.0, 0.0011, -2.49}, 4.7461},
    {{50.0, 2.5, 0.0}, {73.0, 25.0, -18.0}, 27.1492},
    {{60.2574, -34.0099, 36.2677}, {60.4626, -34.1751, 39.4387}, 1.2644},
    {{2.0776, 0.0795, -1.135}, {0.9033, -0.0636, -0.5514}, 0.9082},
};

void test_sharma_pairs() {
  using fastadv::Lab;
  for (const auto& s : kSharma) {
    const Lab<double> p{s.lab1[0], s.lab1[1], s.lab1[2]}, q{s.lab2[0], s.lab2[1], s.lab2[2]};
    expect_near(fastadv::delta_e2000(p, q, 1.0, 1.0, 1.0), s.de, 5e-5, "Sharma pair (double)");
    expect_near(fastadv::delta_e2000(q, p, 1.0, 1.0, 1.0), s.de, 5e-5, "Sharma pair swapped");
    const Lab<float> pf{float(p.L), float(p.a), float(p.b)}, qf{float(q.L), float(q.a), float(q.b)};
    expect_near(fastadv::delta_e2000(pf, qf, 1.f, 1.f, 1.f), s.de, 1e-4, "Sharma pair (float)");
  }
}

void test_hue_weighting_matches_four_cosines() {
  for (int i = 0; i < 3600; ++i) {
    const double h = i * 0.1, r = fastadv::kRadPerDeg;
    const double direct = 1 - 0.17 * std::cos((h - 30) * r) + 0.24 * std::cos(2 * h * r) +
                          0.32 * std::cos((3 * h + 6) * r) - 0.20 * std::cos((4 * h - 63) * r);
    expect_near(fastadv::hue_weighting(std::cos(h * r), std::sin(h * r)), direct, 1e-14,
                "hue_weighting");
  }
}

void test_float_atan2() {
  for (int i = -2000; i <= 2000; ++i) {
    const float angle = i * 0.00157f;  // beyond ±π: every quadrant, both signs of zero nearby
    const float y = 3.f * std::sin(angle), x = 3.f * std::cos(angle);
    expect_near(fastadv::m_atan2(y, x), std::atan2(double(y), double(x)), 4e-7, "m_atan2(float)");
  }
  expect_near(fastadv::m_atan2(0.f, -1.f), fastadv::kPi, 4e-7, "m_atan2(0, -1)");
  expect_near(fastadv::m_atan2(0.f, 0.f), 0.0, 0, "m_atan2(0, 0)");
}

// The host's float exp, sin, sqrt, log, pow and cbrt, relative to the double ones.
void test_float_polynomials() {
  for (int i = 0; i <= 20000; ++i) {
    const float v = -87.f + i * (87.f / 20000);
    const double e = std::exp(double(v));
    expect_near(fastadv::m_exp(v) / e, 1.0, 3e-7, "m_exp(float)");
    const float s = i * (1.5707963f / 20000);
    expect_near(fastadv::sin_small(s), std::sin(double(s)), 2e-7, "sin_small(float)");
    const float q = i * 3.7f + 1e-3f;
    expect_near(fastadv::m_sqrt(q) / std::sqrt(double(q)), 1.0, 5e-7, "m_sqrt(float)");
  }
  expect_near(fastadv::m_sqrt(0.f), 0.0, 0, "m_sqrt(0)");
  for (int i = 0; i <= 20000; ++i) {
    const float v = std::ldexp(1.f + i / 20000.f, i % 40 - 20);  // mantissas across 2^-20..2^19
    const double ln = std::log(double(v));                       // error relative to max(1, |ln v|)
    expect_near(fastadv::m_log(v), ln, 1.2e-7 * std::fmax(1.0, std::fabs(ln)), "m_log(float)");
    const float t = 0.04f + i * (1.2f / 20000);  // the sRGB and CIELAB transfer domains
    expect_near(fastadv::m_pow(t, 2.4f) / std::pow(double(t), 2.4), 1.0, 1e-6, "m_pow(float)");
    expect_near(fastadv::m_cbrt(t) / std::cbrt(double(t)), 1.0, 3e-7, "m_cbrt(float)");
  }
}

void test_rgb_to_lab() {
  // Values of skimage.color.rgb2lab (float64).
  const auto white = fastadv::rgb_to_lab(1.0, 1.0, 1.0);
  expect_near(white.L, 100.0, 1e-6, "white L");
  expect_near(white.a, -0.00245493786, 1e-9, "white a");
  const auto black = fastadv::rgb_to_lab(0.0, 0.0, 0.0);
  expect_near(black.L, 0.0, 1e-12, "black L");
  const auto red = fastadv::rgb_to_lab(1.0, 0.0, 0.0);
  expect_near(red.L, 53.24058794, 1e-6, "red L");
  expect_near(red.a, 80.09230823, 1e-6, "red a");
  expect_near(red.b, 67.20275104, 1e-6, "red b");
}

void test_window_extent_and_weights() {
  expect_near(double(fastadv::window_extent(0, 10, 1)), 2, 0, "extent at the border");
  expect_near(double(fastadv::window_extent(5, 10, 2)), 5, 0, "extent inside");
  expect_near(double(fastadv::window_extent(0, 1, 3)), 1, 0, "extent of a 1-pixel axis");
  const double g = std::exp(-1.0 / 2.0) / (2 * fastadv::kPi);
  expect_near(fastadv::gaussian_weight_squared(0, 1, 1.0), g * g, 1e-15, "g(1)^2");
}

// The sign of a1 b2 - b1 a2 where the rounded products are equal and only their rounding errors
// tell the exact ones apart: (1 + e)(1 + e) = 1 + 2e + e², rounded to 1 + 2e, against
// (1 + 2e) * 1. Double goes through fma, float (on the host) through exact double products.
template <typename T>
void test_cross_sign_of_equal_rounded_products(T e, const char* what) {
  const T one_e = T(1) + e, one_2e = T(1) + 2 * e;
  expect_near(one_e * one_e == one_2e ? 1 : 0, 1, 0, what);  // the products round alike
  expect_near(fastadv::cross_sign(one_e, one_2e, T(1), one_e), 1, 0, what);
  expect_near(fastadv::cross_sign(one_2e, one_e, one_e, T(1)), -1, 0, what);
  expect_near(fastadv::cross_sign(T(2), T(3), T(4), T(6)), 0, 0, what);  // exactly parallel
  expect_near(fastadv::hue_turn(T(2), T(3), T(-4), T(-6)), 1, 0, "hue_turn, h'1 < 180");
  expect_near(fastadv::hue_turn(T(-2), T(-3), T(4), T(6)), -1, 0, "hue_turn, h'1 > 180");
}

// Pseudo-random Lab colours.
template <typename T>
struct RandomLab {
  uint32_t state = 12345;
  T uniform(double lo, double hi) {
    state = state * 1664525u + 1013904223u;
    return T(lo + (hi - lo) * (state >> 8) / double(1 << 24));
  }
  fastadv::LabC<T> next() {
    const T L = uniform(0, 100), a = uniform(-128, 128), b = uniform(-128, 128);
    return fastadv::with_chroma(L, a, b);
  }
};

// c, through memory the compiler cannot see through: it must not know the two are equal.
template <typename T>
fastadv::LabC<T> opaque_copy(const fastadv::LabC<T>& c) {
  volatile T v[4] = {c.L, c.a, c.b, c.c};
  return {v[0], v[1], v[2], v[3]};
}

// How many of n random colours have a non-zero ΔE00 with themselves.
template <typename T>
FASTADV_HD_INLINE int nonzero_self_differences(int n) {
  RandomLab<T> random;
  int nonzero = 0;
  for (int i = 0; i < n; ++i) {
    const fastadv::LabC<T> c = random.next();
    nonzero += fastadv::delta_e2000_squared(c, opaque_copy(c), T(1), T(1), T(1)) != T(0);
  }
  return nonzero;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// The same compiled with fused multiply-adds, which gcc contracts products and sums into.
template <typename T>
__attribute__((target("fma"))) int nonzero_self_differences_fma(int n) {
  return nonzero_self_differences<T>(n);
}
#endif

// ΔE00 of a colour with itself is exactly 0 (the differences cancel before any product, so
// however the compiler contracts), and a NaN or infinite component gives NaN.
template <typename T>
void test_identical_and_non_finite_colours(const char* what) {
  expect_near(nonzero_self_differences<T>(10000), 0, 0, what);
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  if (__builtin_cpu_supports("fma"))
    expect_near(nonzero_self_differences_fma<T>(10000), 0, 0, what);
#endif
  const fastadv::Lab<T> ok{T(50), T(10), T(-20)};
  for (const T bad : {T(NAN), T(INFINITY), -T(INFINITY)}) {
    for (int k = 0; k < 3; ++k) {
      fastadv::Lab<T> v = ok;
      (k == 0 ? v.L : k == 1 ? v.a : v.b) = bad;
      expect_near(std::isnan(fastadv::delta_e2000(v, ok, T(1), T(1), T(1))) ? 1 : 0, 1, 0, what);
      expect_near(std::isnan(fastadv::delta_e2000(ok, v, T(1), T(1), T(1))) ? 1 : 0, 1, 0, what);
    }
  }
}

}  // namespace

int main() {
  test_sharma_pairs();
  test_hue_weighting_matches_four_cosines();
  test_float_atan2();
  test_float_polynomials();
  test_rgb_to_lab();
  test_window_extent_and_weights();
  test_cross_sign_of_equal_rounded_products(std::ldexp(1.0, -30), "cross_sign (double)");
  test_cross_sign_of_equal_rounded_products(std::ldexp(1.f, -12), "cross_sign (float)");
  test_identical_and_non_finite_colours<double>("identical / non-finite (double)");
  test_identical_and_non_finite_colours<float>("identical / non-finite (float)");
  if (failures == 0) std::printf("color math: all passed\n");
  return failures == 0 ? 0 : 1;
}
