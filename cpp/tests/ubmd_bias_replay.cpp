/* ubmd_bias_replay: feeds a sequence of global norms to ubmd::Bias and prints what it gives,
   for the mirror test of python/ubmd/bias.py (tests/test_bias_mirror.py).

   stdin, first line (settings):
     tau_forces tau_stress window fixed(0/1) fixed_sf fixed_ss n_species w_0 ... w_{S-1}
   then one line per evaluation (step < 0: no step information; the 20 norms in
   GlobalNorms::pack order):
     step forces_sq bias_forces_sq v0..v8 d0..d8 u
   stdout, one line per evaluation (%.17g):
     s_F s_sigma energy(u) force_coefficient(0) ... force_coefficient(S) stress_coefficient
   force_coefficient(S) is a species without a given weight (weight 1).
   Exit status 2 with a message on stderr for unreadable input or refused settings. */

#include "ubmd_bias.h"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

int main()
{
  ubmd::BiasSettings s;
  int fixed = 0, n_species = 0;
  std::string line;
  if (!std::getline(std::cin, line)) {
    std::cerr << "ubmd_bias_replay: no settings line\n";
    return 2;
  }
  std::istringstream head(line);
  head >> s.tau_forces >> s.tau_stress >> s.window >> fixed >> s.fixed_scale_forces >>
      s.fixed_scale_stress >> n_species;
  s.fixed_scales = fixed != 0;
  s.weights.resize(n_species > 0 ? n_species : 0);
  for (double &w : s.weights) head >> w;
  if (!head) {
    std::cerr << "ubmd_bias_replay: bad settings line: " << line << "\n";
    return 2;
  }

  try {
    ubmd::Bias bias(s);
    while (std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::istringstream in(line);
      long long step = 0;
      double buf[ubmd::GlobalNorms::size], u = 0.0;
      in >> step;
      for (double &x : buf) in >> x;
      in >> u;
      if (!in) {
        std::cerr << "ubmd_bias_replay: bad evaluation line: " << line << "\n";
        return 2;
      }
      ubmd::GlobalNorms norms;
      norms.unpack(buf);
      bias.update(norms, step);
      std::printf("%.17g %.17g %.17g", bias.scale_forces(), bias.scale_stress(), bias.energy(u));
      for (int k = 0; k <= n_species; k++) std::printf(" %.17g", bias.force_coefficient(k));
      std::printf(" %.17g\n", bias.stress_coefficient());
    }
  } catch (const std::invalid_argument &e) {
    std::cerr << "ubmd_bias_replay: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
