/* -*- c++ -*- ----------------------------------------------------------
   pair_style ubmd: a ubmd machine-learned potential (TorchScript model file) with
   uncertainty-biased forces and stress. See docs/pair_ubmd.rst.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_UBMD_H
#define LMP_PAIR_UBMD_H

#include "pair.h"

#include "ubmd_bias.h"
#include "ubmd_keys.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ubmd {
class Model;
class Evaluation;
}    // namespace ubmd

namespace LAMMPS_NS {

class PairUBMD : public Pair {
 public:
  PairUBMD(class LAMMPS *);
  ~PairUBMD() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void setup() override;

  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

  void *extract(const char *, int &) override;
  void *extract_peratom(const char *, int &) override;
  double memory_usage() override;

  // read by compute ubmd/atom
  double *atomic_uncertainty_array() { return uncatom; }
  bigint atomic_uncertainty_step() const { return unc_step; }
  // the local atoms are still the ones (same IDs, same order) of that step on this rank
  bool atomic_uncertainty_current() const;
  bool atomic_uncertainty_enabled() const { return (unc_mode & UNC_ATOMIC) != 0; }

 protected:
  // uncertainty both = u and per-atom u_i (UNC_BOTH); atomic = u_i only; none
  enum { UNC_NONE = 0, UNC_TOTAL = 1, UNC_ATOMIC = 2, UNC_BOTH = 3 };

  // settings
  ubmd::Bias bias;              // tau_forces, tau_stress, window, fixed scales, weights per
                                // model species; the adaptive scales of this trajectory
  int unc_request;              // UNC_* asked for by the uncertainty keyword
  int unc_mode;                 // UNC_* computed (unc_request limited by the model, init_style)
  int unc_mode_set;             // 1 if given explicitly
  int every;                    // uncertainty monitoring interval (timesteps), bias off only
  std::string device, dtype;
  std::string model_device, model_dtype;  // device / dtype the loaded model was made for
  std::map<std::string, double> weight_by_element;   // weights keyword (map_weights: -> bias)

  // model
  std::unique_ptr<ubmd::Model> model;
  std::unique_ptr<ubmd::Evaluation> eval;
  double cutoff;
  std::vector<int> type2species;    // [ntypes+1], -1 for NULL

  // graph buffers
  int nmax_node;
  int *node_of;                     // LAMMPS atom -> graph node, -1 if not in graph
  std::vector<int> node_atom;       // graph node -> LAMMPS atom
  std::vector<double> edge_vec;
  std::vector<int64_t> edge_c, edge_n, node_species;

  // per-atom buffers
  int nmax_atom;
  double **fbuf, **ubuf;            // unbiased force, du/dR (with ghosts; reverse-communicated)
  double *uncatom;                  // per-atom calibrated uncertainty of local atoms
  std::vector<double> node_vir, au_buf;

  // global outputs: the columns of compute pair ubmd (keys::PAIR_COLUMN_*), also read by extract()
  double globals[ubmd::keys::PAIR_NUM_COLUMNS];
  double &global_value(int column) { return globals[column - 1]; }
  int unc_trigger;                  // set by fix pair (extract uncertainty_flag), compute ubmd/atom
  bigint unc_step;                  // last timestep with atomic uncertainties computed
  std::vector<tagint> unc_tags;     // IDs of the local atoms on that step (uncatom is indexed
                                    // like them; delete_atoms/create_atoms since: stale)
  int skip_warned;                  // hybrid pairs taken from ubmd: warned once per pair_coeff
  int setup_checked;                // run_setup_checks() done since the last init_style()
  int tailshift_warned;             // pair_modify tail/shift: warned once
  int mass_warned;                  // type masses that do not fit their elements: warned once

  void allocate();
  void grow_atom_arrays();
  void build_graph();
  void reset_trajectory();
  // pair_style / pair_coeff arguments (pair_ubmd_settings.cpp)
  void map_types(char **elements);
  void map_weights();
  std::string model_species() const;
  bool atomic_uncertainty_possible() const;
  // LAMMPS type t is mapped to a model species (not NULL)
  bool is_model_type(int t) const
  {
    return t > 0 && t < (int) type2species.size() && type2species[t] >= 0;
  }
  // input-deck checks (pair_ubmd_checks.cpp)
  void check_init_style();
  int uncertainty_mode() const;
  void check_neighbor_exclusions();
  void check_special_pairs();
  void check_hybrid_skips();
  void check_type_masses();
  void run_setup_checks();
};

}    // namespace LAMMPS_NS

#endif
