/* ubmd core: LAMMPS- and MPI-independent evaluation of a ubmd model file (docs/model_file.md)
   on a caller-given neighbour graph, with the global-uncertainty arithmetic of the bias
   (the bias itself, its scales and coefficients: ubmd_bias.h).

   Typical step (see lammps_plugin/pair_ubmd.cpp):
     Evaluation ev(model);
     ev.forward(graph, with_features);        // energies, unbiased forces, virial, features
     ev.total_uncertainty(reducer);          // global u, du/dr, du/deps (one Allreduce)
     ... caller sums ghost contributions, then the bias arithmetic of ubmd_bias.h:
     GlobalNorms (one Allreduce), Bias::update   // s_F, s_sigma over a window

   All errors are reported by throwing ubmd::Error (never through LAMMPS: the plugin catches). */
#ifndef UBMD_CORE_H
#define UBMD_CORE_H

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/script.h>

namespace ubmd {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string &msg) : std::runtime_error(msg) {}
};

/* Collective reductions over all processes that hold part of the system. The core only calls
   these; a serial caller uses SerialReducer, the LAMMPS plugin wraps MPI_Allreduce on world.
   Every process must make the same sequence of calls (also a process that owns no atoms). */
class Reducer {
 public:
  virtual ~Reducer() = default;
  virtual void allreduce_sum(double *data, int n) = 0;
  virtual void allreduce_max(double *data, int n) = 0;
};

class SerialReducer : public Reducer {
 public:
  void allreduce_sum(double *, int) override {}
  void allreduce_max(double *, int) override {}
};

struct Metadata {
  int format_version = 0;
  double cutoff = 0.0;
  std::vector<std::string> species;      // model species order
  std::vector<int> atomic_numbers;       // same order
  std::string dtype;                     // dtype the file was exported in
  std::string units;
  std::string uncertainty;               // none, posterior, distance, ensemble
  int64_t feature_dim = 0;
  int64_t atomic_feature_dim = 0;
  std::string model_hash;
};

/* A loaded, validated model file. */
class Model {
 public:
  // device: "cpu" or "cuda" (or "cuda:N"); dtype: "float32", "float64" or "" (as exported)
  Model(const std::string &path, const std::string &device = "cpu", const std::string &dtype = "");

  const Metadata &metadata() const { return meta_; }
  double cutoff() const { return meta_.cutoff; }
  int num_species() const { return static_cast<int>(meta_.species.size()); }
  // index of an element symbol in the model's species list, -1 if absent
  int species_index(const std::string &symbol) const;
  bool has_uncertainty() const { return meta_.uncertainty != "none" && meta_.feature_dim > 0; }
  bool has_atomic_uncertainty() const { return has_uncertainty() && has_atomic_unc_method_; }
  // the optional atomic_parts / feature_contraction pair (docs/model_file.md)
  bool has_feature_contraction() const { return has_uncertainty() && has_parts_methods_; }
  // the optional atomic_state / state_gradients pair: the one-pass path (docs/model_file.md)
  bool has_state_methods() const { return has_state_methods_; }
  const std::string &path() const { return path_; }
  torch::Device device() const { return device_; }
  torch::Dtype dtype() const { return dtype_; }
  std::string dtype_name() const;
  torch::jit::script::Module &module() { return module_; }

  // parse and validate the metadata strings (exposed for unit tests)
  static Metadata parse_metadata(const std::unordered_map<std::string, std::string> &extra);

 private:
  std::string path_;
  Metadata meta_;
  torch::jit::script::Module module_;
  torch::Device device_;
  torch::Dtype dtype_;
  bool has_atomic_unc_method_ = false;
  bool has_parts_methods_ = false;
  bool has_state_methods_ = false;
};

/* The neighbour graph of one process: nodes 0..n_local-1 are the centres (atoms whose energy
   this process computes), nodes n_local..n_nodes-1 are other atoms (ghosts / images) that appear
   as neighbours. Edge e = (centre[e], neighbour[e]) with edge_vec[e] = r_neighbour - r_centre. */
struct Graph {
  int64_t n_local = 0;
  int64_t n_nodes = 0;
  int64_t n_edges = 0;
  const double *edge_vec = nullptr;     // [n_edges][3], Å
  const int64_t *centre = nullptr;      // [n_edges]
  const int64_t *neighbour = nullptr;   // [n_edges]
  const int64_t *species = nullptr;     // [n_nodes], model species index
};

/* One evaluation of the model on one process's graph. Reuses its buffers between steps.

   With a model that has atomic_state / state_gradients (every model exported since issue #25)
   the evaluation runs without autograd: forward() evaluates energies and features and keeps a
   state; the energy gradient (forces, virial) and the bias gradient (du/dR) come from that
   state in ONE traversal of the model. With keep_graph (a bias) the energy gradient waits for
   total_uncertainty(), which computes both at once; reading forces(), virial() or
   node_virial() before that computes the energy gradient alone (then the bias gradient costs
   a second traversal). UBMD_ONE_PASS=0 in the environment makes new Evaluations use the
   older autograd paths (atomic_parts / atomic), e.g. for comparisons. */
class Evaluation {
 public:
  explicit Evaluation(Model &model);

  /* Runs the model, back-propagates the local energy: fills energies, forces, virial.
     with_features: also evaluate the features (needed for any uncertainty).
     keep_graph: keep the autograd graph for the du/dR back-propagation of total_uncertainty
     (needed only for a bias; false saves the memory and lets total_uncertainty skip it).
     atomic_features: keep the per-atom features for atomic_uncertainty. When false and the
     model has atomic_parts / feature_contraction, only the feature sum is formed and the bias
     gradient goes through feature_contraction (cheaper for sketched features). */
  void forward(const Graph &graph, bool with_features, bool keep_graph = true,
               bool atomic_features = true);
  /* Use the model's atomic_parts / feature_contraction when it has them (default true; the
     environment variable UBMD_FEATURE_CONTRACTION=0 turns it off for new Evaluations). */
  void set_use_contraction(bool on) { use_contraction_ = on; }
  bool uses_contraction() const { return use_contraction_ && model_.has_feature_contraction(); }
  /* Use the model's atomic_state / state_gradients when it has them (default true;
     UBMD_ONE_PASS=0 turns it off for new Evaluations). */
  void set_use_one_pass(bool on) { use_one_pass_ = on; }
  bool uses_one_pass() const { return use_one_pass_ && model_.has_state_methods(); }

  double energy() const { return energy_; }                        // sum of local E_i, eV
  const std::vector<double> &atomic_energies() const { return eatom_; }   // [n_local]
  // [n_nodes][3] = -dE/dr, eV/Å (computes the energy gradient if it is still pending)
  const std::vector<double> &forces() const { settle_energy_gradient(); return forces_; }
  // -sum_e r_e (x) dE/dr_e, eV
  const std::array<double, 9> &virial() const { settle_energy_gradient(); return virial_; }

  /* Per-atom calibrated uncertainties of the centres (after forward with features; zeros when
     forward went through atomic_parts without atomic_features). */
  void atomic_uncertainty(std::vector<double> &out);

  /* Global total uncertainty: one allreduce_sum of (local feature sum, n_local), the model's
     total_uncertainty on the global sum, then back-propagation of v . (local feature sum).
     Every process must call it (also with n_local == 0). Returns u.
     with_gradient = false: u only (no backward pass; du/dR and du/deps stay zero). */
  double total_uncertainty(Reducer &reducer, bool with_gradient = true);

  double uncertainty() const { return u_; }
  double global_atoms() const { return n_global_; }
  const std::vector<double> &uncertainty_gradient() const { return dudr_; }   // [n_nodes][3]
  // local sum_e r_e (x) du/dr_e (the derivative of u w.r.t. a homogeneous strain), eV
  const std::array<double, 9> &uncertainty_strain_derivative() const { return dudeps_; }

  /* Per-node virial (xx,yy,zz,xy,xz,yz), each edge's term split half/half between its ends:
       W_e = -c_energy * r_e (x) dE/dr_e + c_unc * r_e (x) du/dr_e
     out is resized to n_nodes*6 and overwritten. */
  void node_virial(double c_energy, double c_unc, std::vector<double> &out) const;

  const Graph &graph() const { return graph_; }

 private:
  void edges_to_nodes(const std::vector<double> &g, std::vector<double> &nodes, double sign) const;
  void forward_one_pass(const torch::Tensor &ev, const torch::Tensor &idx,
                        const torch::Tensor &species, bool with_features, bool keep_graph,
                        bool atomic_features);
  void finish_energy_gradient() const;    // forces_ and virial_ from gE_
  // the deferred energy gradient of the one-pass path (const: the results are computed lazily)
  void settle_energy_gradient() const;

  Model &model_;
  Graph graph_;
  torch::Tensor edge_vec_, features_, local_sum_;
  std::vector<torch::Tensor> parts_;    // atomic_parts' graph-carrying parts (contraction path)
  bool have_features_ = false;          // per-atom features_ available
  bool contracted_ = false;             // this step went through atomic_parts (local_sum_ set)
  bool use_contraction_ = true;
  bool use_one_pass_ = true;
  bool one_pass_ = false;         // this step went through atomic_state (state_ set)
  // one-pass energy gradient deferred to total_uncertainty (computed lazily by the accessors)
  mutable bool energy_pending_ = false;
  mutable c10::IValue state_;     // atomic_state's state (one-pass path)
  bool graph_kept_ = false;    // autograd graph retained after the energy backward
  double energy_ = 0.0;
  std::vector<double> eatom_, gU_, dudr_;
  mutable std::vector<double> forces_, gE_;
  std::array<double, 9> dudeps_{};
  mutable std::array<double, 9> virial_{};
  double u_ = 0.0, n_global_ = 0.0;
};

std::string version_string();

}    // namespace ubmd

#endif
