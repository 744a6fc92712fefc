/* ----------------------------------------------------------------------
   pair_style ubmd: the arguments of pair_style and pair_coeff (members of PairUBMD; see
   pair_ubmd.cpp and docs/pair_ubmd.rst). One table names every pair_style keyword, its older
   name, its number of values and what it sets; the messages name the keyword (and the older
   name when that was given).
------------------------------------------------------------------------- */

#include "pair_ubmd.h"

#include "ubmd_core.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"

#include <cstring>
#include <functional>
#include <utility>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   pair_style ubmd [tau_forces tau_F] [tau_stress tau_sigma] [window W]
     [fixed_scales s_F s_sigma] [weights El w ...] [uncertainty both|atomic|none]
     [every N] [device cpu|cuda] [dtype float32|float64]
   (bias_forces / bias_stress: older names of tau_forces / tau_stress; uncertainty total:
   older name of both)
------------------------------------------------------------------------- */

void PairUBMD::settings(int narg, char **arg)
{
  namespace keys = ubmd::keys;
  ubmd::BiasSettings bs;
  unc_request = UNC_BOTH;
  unc_mode_set = 0;
  every = 1;
  device = "cpu";
  dtype.clear();
  weight_by_element.clear();

  auto number = [&](const std::string &what, const char *value, double min) {
    const double x = utils::numeric(FLERR, value, false, lmp);
    if (!(x >= min))
      error->all(FLERR, "pair_style ubmd {} must be >= {}, not {}", what, min, value);
    return x;
  };
  auto integer = [&](const std::string &what, const char *value, int min) {
    const int n = utils::inumeric(FLERR, value, false, lmp);
    if (n < min) error->all(FLERR, "pair_style ubmd {} must be >= {}, not {}", what, min, n);
    return n;
  };
  // the keywords: name, older name or nullptr, number of values (-1: El w pairs up to the next
  // keyword), what to do with the values (kw: the name, with the older one if that was given)
  struct Keyword {
    const char *name, *alias;
    int nvalues;
    std::function<void(const std::string &kw, char **v, int n)> parse;
  };
  const Keyword keywords[] = {
      {keys::PAIR_KW_TAU_FORCES, keys::PAIR_KW_TAU_FORCES_ALIAS, 1,
       [&](const std::string &kw, char **v, int) {
         bs.tau_forces = number(kw + " tau_F", v[0], 0);
       }},
      {keys::PAIR_KW_TAU_STRESS, keys::PAIR_KW_TAU_STRESS_ALIAS, 1,
       [&](const std::string &kw, char **v, int) {
         bs.tau_stress = number(kw + " tau_sigma", v[0], 0);
       }},
      {keys::PAIR_KW_WINDOW, nullptr, 1,
       [&](const std::string &kw, char **v, int) { bs.window = integer(kw + " W", v[0], 1); }},
      {keys::PAIR_KW_FIXED_SCALES, nullptr, 2,
       [&](const std::string &kw, char **v, int) {
         bs.fixed_scales = true;
         bs.fixed_scale_forces = number(kw + " s_F", v[0], 0);
         bs.fixed_scale_stress = number(kw + " s_sigma", v[1], 0);
       }},
      {keys::PAIR_KW_WEIGHTS, nullptr, -1,
       [&](const std::string &kw, char **v, int n) {
         if (n % 2)
           error->all(FLERR, "pair_style ubmd {} needs element/weight pairs: El w El w ...", kw);
         for (int k = 0; k < n; k += 2)
           weight_by_element[v[k]] = number(fmt::format("{} {}", kw, v[k]), v[k + 1], 0);
       }},
      {keys::PAIR_KW_UNCERTAINTY, nullptr, 1,
       [&](const std::string &kw, char **v, int) {
         const std::pair<const char *, int> modes[] = {
             {keys::UNCERTAINTY_MODE_BOTH, UNC_BOTH}, {keys::UNCERTAINTY_MODE_TOTAL, UNC_BOTH},
             {keys::UNCERTAINTY_MODE_ATOMIC, UNC_ATOMIC}, {keys::UNCERTAINTY_MODE_NONE, UNC_NONE}};
         unc_mode_set = 0;
         for (const auto &m : modes)
           if (strcmp(v[0], m.first) == 0) {
             unc_request = m.second;
             unc_mode_set = 1;
           }
         if (!unc_mode_set)
           error->all(FLERR, "pair_style ubmd {} must be {}, {} or {} ({} is an older name of {}), "
                      "not {}", kw, keys::UNCERTAINTY_MODE_BOTH, keys::UNCERTAINTY_MODE_ATOMIC,
                      keys::UNCERTAINTY_MODE_NONE, keys::UNCERTAINTY_MODE_TOTAL,
                      keys::UNCERTAINTY_MODE_BOTH, v[0]);
       }},
      {keys::PAIR_KW_EVERY, nullptr, 1,
       [&](const std::string &kw, char **v, int) { every = integer(kw + " N", v[0], 1); }},
      {keys::PAIR_KW_DEVICE, nullptr, 1,
       [&](const std::string &kw, char **v, int) {
         device = v[0];
         if (device != "cpu" && device.rfind("cuda", 0) != 0)
           error->all(FLERR, "pair_style ubmd {} must be cpu or cuda, not {}", kw, device);
       }},
      {keys::PAIR_KW_DTYPE, nullptr, 1,
       [&](const std::string &kw, char **v, int) {
         dtype = v[0];
         if (dtype != "float32" && dtype != "float64")
           error->all(FLERR, "pair_style ubmd {} must be float32 or float64, not {}", kw, dtype);
       }},
  };
  auto find = [&](const char *word) -> const Keyword * {
    for (const auto &k : keywords)
      if (strcmp(word, k.name) == 0 || (k.alias && strcmp(word, k.alias) == 0)) return &k;
    return nullptr;
  };

  for (int iarg = 0; iarg < narg;) {
    const Keyword *k = find(arg[iarg]);
    if (!k) {
      std::string known;
      for (const auto &kw : keywords)
        known += fmt::format("{}{}{}", known.empty() ? "" : ", ", kw.name,
                             kw.alias ? fmt::format(" (or {})", kw.alias) : "");
      error->all(FLERR, "Unknown pair_style ubmd keyword: {} (keywords: {})", arg[iarg], known);
    }
    std::string kw = k->name;
    if (strcmp(arg[iarg], k->name) != 0) kw += fmt::format(" (given as {})", arg[iarg]);
    int n = k->nvalues;
    if (n < 0)
      for (n = 0; iarg + 1 + n < narg && !find(arg[iarg + 1 + n]);) n++;
    if (n == 0 || iarg + 1 + n > narg)
      utils::missing_cmd_args(FLERR, std::string("pair_style ubmd ") + arg[iarg], error);
    k->parse(kw, arg + iarg + 1, n);
    iarg += 1 + n;
  }

  try {
    bias = ubmd::Bias(bs);    // per-species weights once the model is known (map_weights)
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style ubmd: {}", e.what());
  }
  if (bias.active() && !(unc_request & UNC_TOTAL))
    error->all(FLERR, "pair_style ubmd {}/{} need uncertainty {} (the default; the bias acts "
               "through the total uncertainty)", keys::PAIR_KW_TAU_FORCES,
               keys::PAIR_KW_TAU_STRESS, keys::UNCERTAINTY_MODE_BOTH);
  if (bs.fixed_scales && !bias.active())
    error->all(FLERR, "pair_style ubmd {} only makes sense with {} or {}",
               keys::PAIR_KW_FIXED_SCALES, keys::PAIR_KW_TAU_FORCES, keys::PAIR_KW_TAU_STRESS);

  // re-issuing pair_style ubmd keeps the loaded model (LAMMPS's convention: pair_coeff need not
  // be repeated), unless it was loaded for another device or dtype
  if (model && (device != model_device || dtype != model_dtype)) {
    model.reset();
    eval.reset();
    if (comm->me == 0)
      utils::logmesg(lmp, "pair ubmd: device/dtype changed, repeat pair_coeff * * model.pt ...\n");
  }
  // a new pair_style command starts a new trajectory: the bias starts unbiased again
  reset_trajectory();
}

/* ---------------------------------------------------------------------- */

void PairUBMD::map_weights()
{
  std::vector<double> w(model->num_species(), 1.0);
  for (const auto &kv : weight_by_element) {
    const int s = model->species_index(kv.first);
    if (s < 0)
      error->all(FLERR, "pair_style ubmd {}: element {} is not in the model (species:{})",
                 ubmd::keys::PAIR_KW_WEIGHTS, kv.first, model_species());
    w[s] = kv.second;
  }
  try {
    bias.set_weights(w);    // keeps the adaptive-scale windows
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style ubmd: {}", e.what());
  }
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt El1 ... ElN: the element (or NULL) of each type -> type2species,
   setflag
------------------------------------------------------------------------- */

void PairUBMD::map_types(char **elements)
{
  const int ntypes = atom->ntypes;
  const bool hybrid = (force->pair != this);
  type2species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string el = elements[t - 1];
    if (el == "NULL") {
      if (!hybrid)
        error->all(FLERR, "pair_coeff ubmd: NULL for type {} is only allowed under pair_style "
                   "hybrid or hybrid/overlay", t);
      continue;
    }
    int s = model->species_index(el);
    if (s < 0)
      error->all(FLERR, "pair_coeff ubmd: element {} (type {}) is not in the model {} "
                 "(species:{})", el, t, model->path(), model_species());
    type2species[t] = s;
  }

  int count = 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) {
      setflag[i][j] = 0;
      if (type2species[i] >= 0 && type2species[j] >= 0) {
        setflag[i][j] = 1;
        count++;
      }
    }
  if (count == 0) error->all(FLERR, "Incorrect args for pair coefficients: no element mapped");
}

/* " H C O": the model's species, for messages */

std::string PairUBMD::model_species() const
{
  std::string known;
  for (const auto &sp : model->metadata().species) known += " " + sp;
  return known;
}
