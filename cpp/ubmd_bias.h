/* ubmd bias: the arithmetic of the uncertainty bias E_b = E - tau u (docs/model_file.md, "Bias
   arithmetic"), independent of LAMMPS, MPI and torch. Mirrored one to one by python/ubmd/bias.py
   (tests/test_bias_mirror.py compares them through cpp/tests/ubmd_bias_replay.cpp).

   One biased evaluation (see lammps_plugin/pair_ubmd.cpp):
     GlobalNorms norms;                      // this process's share
     norms.add_atoms(forces, du_dr, n_local);
     norms.virial = W; norms.strain_derivative = du_deps;
     norms.pack(buf); <Allreduce sum of GlobalNorms::size doubles>; norms.unpack(buf);
     bias.update(norms, step);               // s_F, s_sigma over the window
     F_i += bias.force_coefficient(species_i) * du/dr_i;
     W   += bias.stress_coefficient() * du/deps;
     reported bias energy: bias.energy(u)

   Settings are checked by the caller (the pair style names its keywords in its messages); the
   Bias constructor refuses invalid ones with std::invalid_argument as a last line of defence. */
#ifndef UBMD_BIAS_H
#define UBMD_BIAS_H

#include <array>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

namespace ubmd {

// added to the norm of the bias gradient in the scale's denominator
constexpr double SCALE_EPS = 1e-8;

/* Adaptive bias scale over a window of the last W evaluations (current one included):
   s = sqrt(sum_w a) / (sqrt(sum_w b) + 1e-8), and s = 0 while fewer than W evaluations. */
class AdaptiveScale {
 public:
  explicit AdaptiveScale(int window = 100) : window_(window) {}
  double update(double true_norm2, double bias_norm2);
  void reset();
  double value() const { return value_; }
  int window() const { return window_; }
  int count() const { return static_cast<int>(hist_.size()); }
  void set_window(int w) { window_ = w; reset(); }

 private:
  int window_;
  std::deque<std::pair<double, double>> hist_;
  double value_ = 0.0;
};

/* The global sums one biased evaluation needs, over all atoms of all processes. Each process
   fills its share; pack / Allreduce(sum) / unpack makes them global (one reduction). */
struct GlobalNorms {
  static constexpr int size = 20;                // doubles in pack() / unpack()

  double forces_sq = 0.0;                        // sum_i ||F_i||^2, unbiased forces, (eV/Å)^2
  double bias_forces_sq = 0.0;                   // sum_i ||du/dr_i||^2
  std::array<double, 9> virial{};                // unbiased virial W (3x3 row-major), eV
  std::array<double, 9> strain_derivative{};     // du/deps (3x3 row-major)

  // buf[0] forces_sq, buf[1] bias_forces_sq, buf[2..10] virial, buf[11..19] strain_derivative
  void pack(double *buf) const;
  void unpack(const double *buf);
  // adds the squared norms of n atoms' rows forces[i][0..2] and du_dr[i][0..2]
  void add_atoms(const double *const *forces, const double *const *du_dr, int n);
  double virial_sq() const;               // Frobenius norm^2 of virial
  double strain_derivative_sq() const;    // Frobenius norm^2 of strain_derivative
};

struct BiasSettings {
  double tau_forces = 0.0;     // tau_F, strength of the force bias (dimensionless, >= 0)
  double tau_stress = 0.0;     // tau_sigma, strength of the virial/stress bias (>= 0)
  int window = 100;            // W, evaluations in the adaptive-scale window (>= 1)
  bool fixed_scales = false;   // true: s_F, s_sigma are the constants below, no window
  double fixed_scale_forces = 0.0;
  double fixed_scale_stress = 0.0;
  std::vector<double> weights; // w_Z per model species index (>= 0); species beyond: 1
};

/* The bias of one trajectory: settings, the two adaptive scales and the same-step rule. */
class Bias {
 public:
  Bias() : Bias(BiasSettings()) {}
  explicit Bias(const BiasSettings &settings);    // std::invalid_argument if invalid

  const BiasSettings &settings() const { return settings_; }
  double tau_forces() const { return settings_.tau_forces; }
  double tau_stress() const { return settings_.tau_stress; }
  // any bias at all (tau_F > 0 or tau_sigma > 0)
  bool active() const { return settings_.tau_forces > 0.0 || settings_.tau_stress > 0.0; }

  /* New scales from this evaluation's global norms. Fixed scales: the constants. Otherwise the
     force window takes an entry only when tau_F > 0 and the stress window only when
     tau_sigma > 0 (an inactive component's scale is 0). A second update on the same step (a new
     run's setup, fix numdiff) returns the previous scales and adds no entry; step < 0 means "no
     step information": always a new entry. Returns {s_F, s_sigma}. */
  std::pair<double, double> update(const GlobalNorms &norms, int64_t step);

  double scale_forces() const { return scale_forces_; }    // s_F of the last update (0 before)
  double scale_stress() const { return scale_stress_; }    // s_sigma of the last update
  double weight(int species) const;                        // w_Z (1 outside the weights given)
  double force_coefficient(int species) const;             // tau_F s_F w_Z
  double stress_coefficient() const;                       // tau_sigma s_sigma
  double energy(double u) const;                           // bias energy -tau_F s_F u, eV

  // per-species weights (the species of a model are known after the settings): keeps the windows
  void set_weights(const std::vector<double> &weights);
  // a new trajectory: windows cleared, scales 0
  void reset();

 private:
  BiasSettings settings_;
  AdaptiveScale window_forces_, window_stress_;
  double scale_forces_ = 0.0, scale_stress_ = 0.0;
  int64_t last_step_ = -1;    // step of the last window entry; -1: none
};

}    // namespace ubmd

#endif
