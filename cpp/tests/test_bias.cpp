/* Unit tests of the bias arithmetic (cpp/ubmd_bias.h): AdaptiveScale, GlobalNorms, Bias.
   Expected values are computed by hand in the comments. No torch, no model files. */

#include "ubmd_bias.h"

#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string>

using namespace ubmd;

static int n_checks = 0, n_failed = 0;

static void check(bool ok, int line, const char *what)
{
  n_checks++;
  if (ok) return;
  n_failed++;
  std::cerr << __FILE__ << ":" << line << ": check failed: " << what << "\n";
}
#define CHECK(cond) check((cond), __LINE__, #cond)

static bool near(double a, double b)
{
  return std::fabs(a - b) <= 1e-14 * std::fabs(b) + 1e-300;
}

template <class F> static bool refused(F f)
{
  try {
    f();
  } catch (const std::invalid_argument &) {
    return true;
  }
  return false;
}

// norms with the given ||F||^2, ||du/dR||^2 and virial / du/deps of one nonzero xx entry
static GlobalNorms norms(double f2, double b2, double wxx = 0.0, double dxx = 0.0)
{
  GlobalNorms n;
  n.forces_sq = f2;
  n.bias_forces_sq = b2;
  n.virial[0] = wxx;
  n.strain_derivative[0] = dxx;
  return n;
}

static BiasSettings settings(double tau_f, double tau_s, int window)
{
  BiasSettings s;
  s.tau_forces = tau_f;
  s.tau_stress = tau_s;
  s.window = window;
  return s;
}

static void test_adaptive_scale()
{
  AdaptiveScale s(3);
  CHECK(s.update(4.0, 1.0) == 0.0);
  CHECK(s.update(4.0, 1.0) == 0.0);
  CHECK(near(s.update(1.0, 2.0), 3.0 / (2.0 + 1e-8)));
  CHECK(near(s.update(16.0, 0.0), std::sqrt(21.0) / (std::sqrt(3.0) + 1e-8)));
  s.reset();
  CHECK(s.count() == 0 && s.value() == 0.0);
  AdaptiveScale one(1);
  CHECK(near(one.update(9.0, 4.0), 3.0 / (2.0 + 1e-8)));
}

static void test_global_norms()
{
  // two atoms: ||F||^2 = (1 + 4 + 4) + 9 = 18, ||du/dR||^2 = 1 + 4 = 5
  const double f0[3] = {1, 2, 2}, f1[3] = {0, 0, 3}, u0[3] = {1, 0, 0}, u1[3] = {0, 2, 0};
  const double *f[2] = {f0, f1}, *u[2] = {u0, u1};
  GlobalNorms n;
  n.add_atoms(f, u, 2);
  CHECK(n.forces_sq == 18.0 && n.bias_forces_sq == 5.0);
  n.add_atoms(f, u, 1);    // accumulates
  CHECK(n.forces_sq == 27.0 && n.bias_forces_sq == 6.0);
  for (int k = 0; k < 9; k++) {
    n.virial[k] = 10.0 + k;
    n.strain_derivative[k] = -1.0 - k;
  }
  // Frobenius: 10^2 + 11^2 + ... + 18^2 = 1824
  CHECK(n.virial_sq() == 1824.0);
  CHECK(n.strain_derivative_sq() == 285.0);    // 1^2 + ... + 9^2
  double buf[GlobalNorms::size];
  CHECK(GlobalNorms::size == 20);
  n.pack(buf);
  CHECK(buf[0] == 27.0 && buf[1] == 6.0 && buf[2] == 10.0 && buf[10] == 18.0 &&
        buf[11] == -1.0 && buf[19] == -9.0);
  buf[0] = 2.0;
  buf[19] = 7.0;
  GlobalNorms m;
  m.unpack(buf);
  CHECK(m.forces_sq == 2.0 && m.bias_forces_sq == 6.0 && m.virial[8] == 18.0 &&
        m.strain_derivative[0] == -1.0 && m.strain_derivative[8] == 7.0);
}

static void test_window_and_steps()
{
  const double eps = 1e-8;
  Bias b(settings(0.5, 0.25, 3));
  CHECK(b.active());
  // s = 0 until W evaluations: no bias force, energy or virial
  auto s = b.update(norms(4, 1, 2, 1), 0);
  CHECK(s.first == 0.0 && s.second == 0.0);
  b.update(norms(4, 1, 2, 1), 1);
  CHECK(b.scale_forces() == 0.0 && b.force_coefficient(0) == 0.0 && b.energy(0.3) == 0.0 &&
        b.stress_coefficient() == 0.0);
  // third evaluation: s_F = sqrt(4+4+1) / (sqrt(1+1+2) + eps) = 3 / (2 + eps);
  // s_sigma = sqrt(3 * 2^2) / (sqrt(3 * 1^2) + eps) = sqrt(12) / (sqrt(3) + eps)
  s = b.update(norms(1, 2, 2, 1), 2);
  CHECK(near(s.first, 3.0 / (2.0 + eps)) && near(b.scale_forces(), s.first));
  CHECK(near(s.second, std::sqrt(12.0) / (std::sqrt(3.0) + eps)));
  CHECK(near(b.force_coefficient(0), 0.5 * 3.0 / (2.0 + eps)));
  CHECK(near(b.stress_coefficient(), 0.25 * std::sqrt(12.0) / (std::sqrt(3.0) + eps)));
  CHECK(near(b.energy(0.3), -0.5 * 3.0 / (2.0 + eps) * 0.3));
  // the window slides: steps 1..3, s_F = sqrt(4+1+16) / (sqrt(1+2+0) + eps)
  s = b.update(norms(16, 0, 2, 1), 3);
  const double s3 = std::sqrt(21.0) / (std::sqrt(3.0) + eps);
  CHECK(near(s.first, s3));
  // the same step again (a new run's setup, fix numdiff): the previous scales, no entry
  s = b.update(norms(1e6, 1e-6, 1e3, 1e-3), 3);
  CHECK(s.first == s3 && b.scale_forces() == s3);
  CHECK(near(s.second, std::sqrt(12.0) / (std::sqrt(3.0) + eps)));
  // next step: window = steps 2, 3, 4 (the repeated evaluation never entered)
  s = b.update(norms(9, 6, 2, 1), 4);
  CHECK(near(s.first, std::sqrt(1.0 + 16.0 + 9.0) / (std::sqrt(2.0 + 0.0 + 6.0) + eps)));
  // reset: a new trajectory, windows empty and scales 0
  b.reset();
  CHECK(b.scale_forces() == 0.0 && b.scale_stress() == 0.0 && b.energy(1.0) == 0.0);
  CHECK(b.update(norms(4, 1, 2, 1), 4).first == 0.0);    // step 4 again, but after reset: new
  CHECK(b.update(norms(4, 1, 2, 1), 5).first == 0.0);
  CHECK(near(b.update(norms(1, 2, 2, 1), 6).first, 3.0 / (2.0 + eps)));

  // step < 0: no step information, every update is a new entry
  Bias c(settings(1.0, 0.0, 2));
  CHECK(c.update(norms(4, 1), -1).first == 0.0);
  CHECK(near(c.update(norms(4, 1), -1).first, std::sqrt(8.0) / (std::sqrt(2.0) + eps)));
  CHECK(near(c.update(norms(12, 2), -1).first, 4.0 / (std::sqrt(3.0) + eps)));
  // W = 1: the current evaluation only
  Bias one(settings(1.0, 1.0, 1));
  CHECK(near(one.update(norms(9, 4, 0, 0), 0).first, 3.0 / (2.0 + eps)));
  CHECK(one.update(norms(9, 4, 0, 0), 1).second == 0.0);    // 0 / (0 + eps)
}

static void test_inactive_components()
{
  const double eps = 1e-8;
  // tau_sigma = 0: the stress window takes no entries, s_sigma = 0
  Bias f(settings(0.3, 0.0, 1));
  auto s = f.update(norms(4, 1, 5, 1), 0);
  CHECK(near(s.first, 2.0 / (1.0 + eps)) && s.second == 0.0 && f.stress_coefficient() == 0.0);
  // tau_F = 0: s_F = 0, no force coefficient and no bias energy
  Bias st(settings(0.0, 0.3, 1));
  CHECK(st.active());
  s = st.update(norms(4, 1, 3, 1), 0);
  CHECK(s.first == 0.0 && near(s.second, 3.0 / (1.0 + eps)));
  CHECK(st.force_coefficient(0) == 0.0 && st.energy(2.0) == 0.0);
  CHECK(near(st.stress_coefficient(), 0.3 * 3.0 / (1.0 + eps)));
  // no bias at all
  Bias none;
  CHECK(!none.active());
  s = none.update(norms(4, 1, 3, 1), 0);
  CHECK(s.first == 0.0 && s.second == 0.0);
  CHECK(none.settings().window == 100);
}

static void test_fixed_scales_and_weights()
{
  BiasSettings fs = settings(0.5, 0.25, 100);
  fs.fixed_scales = true;
  fs.fixed_scale_forces = 2.0;
  fs.fixed_scale_stress = 3.0;
  fs.weights = {0.0, 4.0};
  Bias b(fs);
  CHECK(b.scale_forces() == 0.0);    // before the first update
  auto s = b.update(norms(1, 1, 1, 1), 0);
  CHECK(s.first == 2.0 && s.second == 3.0);    // no window: the constants at once
  CHECK(b.update(norms(100, 1), 0).first == 2.0 && b.update(norms(100, 1), -1).first == 2.0);
  // tau_F s_F w_Z: 0.5 * 2 * {0, 4, 1 (species without a weight), 1 (no species)}
  CHECK(b.force_coefficient(0) == 0.0 && b.force_coefficient(1) == 4.0);
  CHECK(b.force_coefficient(2) == 1.0 && b.force_coefficient(-1) == 1.0);
  CHECK(b.weight(1) == 4.0 && b.weight(7) == 1.0);
  CHECK(b.stress_coefficient() == 0.75);
  CHECK(b.energy(0.1) == -0.5 * 2.0 * 0.1);
  b.reset();
  CHECK(b.scale_forces() == 0.0 && b.update(norms(1, 1), 0).first == 2.0);

  // set_weights keeps the windows: the adaptive scale goes on
  Bias w(settings(1.0, 0.0, 2));
  w.update(norms(4, 1), 0);
  w.set_weights({0.5});
  const double sf = w.update(norms(4, 1), 1).first;
  CHECK(near(sf, std::sqrt(8.0) / (std::sqrt(2.0) + 1e-8)));
  CHECK(near(w.force_coefficient(0), 0.5 * sf) && w.force_coefficient(1) == sf);
}

static void test_invalid_settings()
{
  CHECK(refused([] { Bias b(settings(-0.1, 0.0, 1)); }));
  CHECK(refused([] { Bias b(settings(0.0, -1.0, 1)); }));
  CHECK(refused([] { Bias b(settings(std::nan(""), 0.0, 1)); }));
  CHECK(refused([] { Bias b(settings(0.1, 0.0, 0)); }));
  CHECK(refused([] {
    BiasSettings s = settings(0.1, 0.0, 1);
    s.fixed_scales = true;
    s.fixed_scale_forces = -1.0;
    Bias b(s);
  }));
  CHECK(refused([] {
    BiasSettings s = settings(0.1, 0.0, 1);
    s.weights = {1.0, -0.5};
    Bias b(s);
  }));
  Bias ok(settings(0.1, 0.0, 1));
  CHECK(refused([&] { ok.set_weights({-1.0}); }));
  CHECK(ok.weight(0) == 1.0);    // a refused set_weights changes nothing
}

int main()
{
  test_adaptive_scale();
  test_global_norms();
  test_window_and_steps();
  test_inactive_components();
  test_fixed_scales_and_weights();
  test_invalid_settings();
  std::cout << n_checks - n_failed << "/" << n_checks << " checks passed\n";
  return n_failed ? 1 : 0;
}
