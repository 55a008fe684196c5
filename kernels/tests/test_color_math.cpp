// Tests of the shared colour math (kernels/color_math.h) on the CPU, without torch (run by ctest).
#include <cmath>
#include <cstdio>

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

}  // namespace

int main() {
  test_sharma_pairs();
  test_hue_weighting_matches_four_cosines();
  test_float_atan2();
  test_float_polynomials();
  test_rgb_to_lab();
  test_window_extent_and_weights();
  if (failures == 0) std::printf("color math: all passed\n");
  return failures == 0 ? 0 : 1;
}
