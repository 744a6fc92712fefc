/* ubmd bias: adaptive scales, global norms and coefficients (see ubmd_bias.h). */

#include "ubmd_bias.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ubmd {

double AdaptiveScale::update(double true_norm2, double bias_norm2)
{
  hist_.emplace_back(true_norm2, bias_norm2);
  while (static_cast<int>(hist_.size()) > window_) hist_.pop_front();
  if (static_cast<int>(hist_.size()) < window_) return value_ = 0.0;
  double a = 0.0, b = 0.0;
  for (const auto &p : hist_) {
    a += p.first;
    b += p.second;
  }
  return value_ = std::sqrt(a) / (std::sqrt(b) + SCALE_EPS);
}

void AdaptiveScale::reset()
{
  hist_.clear();
  value_ = 0.0;
}

/* ---------------------------------------------------------------------- */

void GlobalNorms::pack(double *buf) const
{
  buf[0] = forces_sq;
  buf[1] = bias_forces_sq;
  for (int k = 0; k < 9; k++) {
    buf[2 + k] = virial[k];
    buf[11 + k] = strain_derivative[k];
  }
}

void GlobalNorms::unpack(const double *buf)
{
  forces_sq = buf[0];
  bias_forces_sq = buf[1];
  for (int k = 0; k < 9; k++) {
    virial[k] = buf[2 + k];
    strain_derivative[k] = buf[11 + k];
  }
}

void GlobalNorms::add_atoms(const double *const *forces, const double *const *du_dr, int n)
{
  for (int i = 0; i < n; i++)
    for (int d = 0; d < 3; d++) {
      forces_sq += forces[i][d] * forces[i][d];
      bias_forces_sq += du_dr[i][d] * du_dr[i][d];
    }
}

static double frobenius_sq(const std::array<double, 9> &m)
{
  double s = 0.0;
  for (double x : m) s += x * x;
  return s;
}

double GlobalNorms::virial_sq() const
{
  return frobenius_sq(virial);
}

double GlobalNorms::strain_derivative_sq() const
{
  return frobenius_sq(strain_derivative);
}

/* ---------------------------------------------------------------------- */

static void check_weights(const std::vector<double> &weights)
{
  for (size_t s = 0; s < weights.size(); s++)
    if (!(weights[s] >= 0.0))
      throw std::invalid_argument("bias weight of species " + std::to_string(s) +
                                  " must be >= 0, got " + std::to_string(weights[s]));
}

Bias::Bias(const BiasSettings &settings) :
    settings_(settings), window_forces_(settings.window), window_stress_(settings.window)
{
  if (!(settings.tau_forces >= 0.0) || !(settings.tau_stress >= 0.0))
    throw std::invalid_argument("bias tau_forces and tau_stress must be >= 0");
  if (settings.window < 1) throw std::invalid_argument("bias window must be >= 1");
  if (settings.fixed_scales &&
      (!(settings.fixed_scale_forces >= 0.0) || !(settings.fixed_scale_stress >= 0.0)))
    throw std::invalid_argument("bias fixed scales must be >= 0");
  check_weights(settings.weights);
}

std::pair<double, double> Bias::update(const GlobalNorms &norms, int64_t step)
{
  if (settings_.fixed_scales) {
    scale_forces_ = settings_.fixed_scale_forces;
    scale_stress_ = settings_.fixed_scale_stress;
  } else if (step < 0 || step != last_step_) {
    scale_forces_ = settings_.tau_forces > 0.0
        ? window_forces_.update(norms.forces_sq, norms.bias_forces_sq) : 0.0;
    scale_stress_ = settings_.tau_stress > 0.0
        ? window_stress_.update(norms.virial_sq(), norms.strain_derivative_sq()) : 0.0;
    last_step_ = step < 0 ? -1 : step;
  }
  // else: the same step again, one window entry per step: the previous scales
  return {scale_forces_, scale_stress_};
}

double Bias::weight(int species) const
{
  if (species < 0 || species >= static_cast<int>(settings_.weights.size())) return 1.0;
  return settings_.weights[species];
}

double Bias::force_coefficient(int species) const
{
  return settings_.tau_forces * scale_forces_ * weight(species);
}

double Bias::stress_coefficient() const
{
  return settings_.tau_stress * scale_stress_;
}

double Bias::energy(double u) const
{
  return -settings_.tau_forces * scale_forces_ * u;
}

void Bias::set_weights(const std::vector<double> &weights)
{
  check_weights(weights);
  settings_.weights = weights;
}

void Bias::reset()
{
  window_forces_.reset();
  window_stress_.reset();
  scale_forces_ = scale_stress_ = 0.0;
  last_step_ = -1;
}

}    // namespace ubmd
