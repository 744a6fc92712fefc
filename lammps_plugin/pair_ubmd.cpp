/* ----------------------------------------------------------------------
   pair_style ubmd: evaluates a ubmd model file (docs/model_file.md) through the LAMMPS-free
   core in cpp/, adds uncertainty bias forces and bias virial. See docs/pair_ubmd.rst.

   One step (every rank, also a rank that owns no atoms, makes the same collective calls):
   1. graph of the local centres from the full neighbour list (edge vectors r_j - r_i);
   2. model: per-atom energies, unbiased forces on local+ghost atoms, virial (edge derivatives);
   3. if uncertainty/bias is needed: Allreduce of the local feature sums and atom count, the
      model's total_uncertainty gives u and du/dphi_sum, backprop gives du/dR and du/deps;
   4. the unbiased forces and du/dR of ghosts are reverse-communicated to their owners, global
      norms are Allreduced, the adaptive scales s_F, s_sigma are updated, and owners get
      F + tau_F s_F w_Z du/dR; the virial gets the bias term tau_sigma s_sigma du/deps.
------------------------------------------------------------------------- */

#include "pair_ubmd.h"

#include "blas_binding.h"
#include "element_masses.h"
#include "ubmd_core.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "output.h"
#include "update.h"

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <exception>

using namespace LAMMPS_NS;

namespace {

// the file this code was loaded from (libubmd_lammps.so), for the log
std::string styles_path()
{
  Dl_info self;
  if (dladdr(reinterpret_cast<void *>(&styles_path), &self) && self.dli_fname) return self.dli_fname;
  return "?";
}

class MPIReducer : public ubmd::Reducer {
 public:
  explicit MPIReducer(MPI_Comm comm) : comm_(comm) {}
  void allreduce_sum(double *data, int n) override
  {
    MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_DOUBLE, MPI_SUM, comm_);
  }
  void allreduce_max(double *data, int n) override
  {
    MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_DOUBLE, MPI_MAX, comm_);
  }

 private:
  MPI_Comm comm_;
};

// message of an exception from the core or from libtorch, without the C++ backtrace
std::string what_of(const std::exception &e)
{
  if (auto *c = dynamic_cast<const c10::Error *>(&e)) return c->what_without_backtrace();
  return e.what();
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairUBMD::PairUBMD(LAMMPS *lmp) :
    Pair(lmp), tau_f(0.0), tau_s(0.0), window(100), fixed_scale(0), fixed_sf(0.0),
    fixed_ss(0.0), unc_request(UNC_BOTH), unc_mode(UNC_BOTH), unc_mode_set(0), every(1), device("cpu"), cutoff(0.0),
    nmax_node(0), node_of(nullptr), nmax_atom(0), fbuf(nullptr), ubuf(nullptr),
    uncatom(nullptr), u_total(0.0), bias_energy(0.0), s_f(0.0), s_s(0.0), max_atomic_unc(0.0),
    unc_trigger(0), unc_step(-1), scale_step(-1), skip_warned(0), setup_checked(0), tailshift_warned(0), mass_warned(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;
  comm_reverse = 6;

  // compute ID all pair ubmd -> [u, bias energy, s_F, s_sigma, max atomic uncertainty]
  nextra = 5;
  pvector = new double[nextra];
  for (int i = 0; i < nextra; i++) pvector[i] = 0.0;
}

PairUBMD::~PairUBMD()
{
  delete[] pvector;
  memory->destroy(node_of);
  memory->destroy(fbuf);
  memory->destroy(ubuf);
  memory->destroy(uncatom);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

/* ---------------------------------------------------------------------- */

void PairUBMD::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

/* ----------------------------------------------------------------------
   pair_style ubmd [bias_forces tau_F] [bias_stress tau_sigma] [window W]
     [fixed_scales s_F s_sigma] [weights El w ...] [uncertainty total|atomic|none]
     [every N] [device cpu|cuda] [dtype float32|float64]
------------------------------------------------------------------------- */

void PairUBMD::settings(int narg, char **arg)
{
  tau_f = tau_s = 0.0;
  window = 100;
  fixed_scale = 0;
  fixed_sf = fixed_ss = 0.0;
  unc_request = UNC_BOTH;
  unc_mode_set = 0;
  every = 1;
  device = "cpu";
  dtype.clear();
  weight_by_element.clear();

  static const char *keywords[] = {"bias_forces", "bias_stress", "window", "fixed_scales",
                                   "weights", "uncertainty", "every", "device", "dtype"};
  auto is_keyword = [](const char *s) {
    for (const char *k : keywords)
      if (strcmp(s, k) == 0) return true;
    return false;
  };

  int iarg = 0;
  while (iarg < narg) {
    const std::string kw = arg[iarg];
    if (kw == "bias_forces") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd bias_forces", error);
      tau_f = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (tau_f < 0.0) error->all(FLERR, "pair_style ubmd bias_forces tau_F must be >= 0");
      iarg += 2;
    } else if (kw == "bias_stress") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd bias_stress", error);
      tau_s = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (tau_s < 0.0) error->all(FLERR, "pair_style ubmd bias_stress tau_sigma must be >= 0");
      iarg += 2;
    } else if (kw == "window") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd window", error);
      window = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (window < 1) error->all(FLERR, "pair_style ubmd window W must be >= 1");
      iarg += 2;
    } else if (kw == "fixed_scales") {
      if (iarg + 3 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd fixed_scales", error);
      fixed_scale = 1;
      fixed_sf = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      fixed_ss = utils::numeric(FLERR, arg[iarg + 2], false, lmp);
      if (fixed_sf < 0.0 || fixed_ss < 0.0)
        error->all(FLERR, "pair_style ubmd fixed_scales values must be >= 0");
      iarg += 3;
    } else if (kw == "weights") {
      iarg++;
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd weights", error);
      while (iarg < narg && !is_keyword(arg[iarg])) {
        if (iarg + 2 > narg)
          error->all(FLERR, "pair_style ubmd weights needs element/weight pairs: El w El w ...");
        double w = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
        if (w < 0.0) error->all(FLERR, "pair_style ubmd weight for {} must be >= 0", arg[iarg]);
        weight_by_element[arg[iarg]] = w;
        iarg += 2;
      }
    } else if (kw == "uncertainty") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd uncertainty", error);
      const std::string v = arg[iarg + 1];
      if (v == "total") unc_request = UNC_BOTH;
      else if (v == "atomic") unc_request = UNC_ATOMIC;
      else if (v == "none") unc_request = UNC_NONE;
      else
        error->all(FLERR, "pair_style ubmd uncertainty must be total, atomic or none, not {}", v);
      unc_mode_set = 1;
      iarg += 2;
    } else if (kw == "every") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd every", error);
      every = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (every < 1) error->all(FLERR, "pair_style ubmd every N must be >= 1");
      iarg += 2;
    } else if (kw == "device") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd device", error);
      device = arg[iarg + 1];
      if (device != "cpu" && device.rfind("cuda", 0) != 0)
        error->all(FLERR, "pair_style ubmd device must be cpu or cuda, not {}", device);
      iarg += 2;
    } else if (kw == "dtype") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style ubmd dtype", error);
      dtype = arg[iarg + 1];
      if (dtype != "float32" && dtype != "float64")
        error->all(FLERR, "pair_style ubmd dtype must be float32 or float64, not {}", dtype);
      iarg += 2;
    } else {
      error->all(FLERR, "Unknown pair_style ubmd keyword: {}", kw);
    }
  }

  const bool bias = (tau_f > 0.0 || tau_s > 0.0);
  if (bias && !(unc_request & UNC_TOTAL))
    error->all(FLERR, "pair_style ubmd bias_forces/bias_stress needs uncertainty total");
  if (fixed_scale && !bias)
    error->all(FLERR, "pair_style ubmd fixed_scales only makes sense with bias_forces or bias_stress");

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

void PairUBMD::reset_trajectory()
{
  scale_f = std::make_unique<ubmd::AdaptiveScale>(window);
  scale_s = std::make_unique<ubmd::AdaptiveScale>(window);
  u_total = bias_energy = s_f = s_s = max_atomic_unc = 0.0;
  unc_step = scale_step = -1;
  unc_tags.clear();
}

/* the per-atom uncertainties of unc_step belong to the current local atoms (rank-local) */

bool PairUBMD::atomic_uncertainty_current() const
{
  const int nlocal = atom->nlocal;
  if ((int) unc_tags.size() != nlocal) return false;
  const tagint *tag = atom->tag;
  for (int i = 0; i < nlocal; i++)
    if (tag[i] != unc_tags[i]) return false;
  return true;
}

/* per-atom uncertainties can exist: requested, and the model (once loaded) has them */

bool PairUBMD::atomic_uncertainty_possible() const
{
  if (!(unc_request & UNC_ATOMIC)) return false;
  return !model || (model->has_uncertainty() && model->has_atomic_uncertainty());
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt El1 El2 ... (one element or NULL per atom type)
------------------------------------------------------------------------- */

void PairUBMD::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff for ubmd needs: * * model.pt followed by {} element "
               "symbols (one per atom type), got {} arguments", ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for ubmd must start with * *");

  // torch (and MKL) threads per process = LAMMPS's (comm->nthreads: OMP_NUM_THREADS, or 1 when
  // it is unset). libtorch has its own OpenMP runtime under the plugin's loader, which LAMMPS's
  // omp_set_num_threads does not reach.
  at::set_num_threads(comm->nthreads > 0 ? comm->nthreads : 1);
  // every rank loads the model; a failure on some ranks only (a file missing on one node, no
  // GPU on one node) must not leave the others waiting in a collective error->all
  // device cuda (no index) with several GPUs on a node: one GPU per node-local rank, round robin
  std::string rank_device = device;
  int n_gpu = 0, local_rank = 0, local_size = 1;
  if (device == "cuda") {
    n_gpu = static_cast<int>(torch::cuda::device_count());
    MPI_Comm node;
    MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    if (n_gpu > 1) rank_device = fmt::format("cuda:{}", local_rank % n_gpu);
  }
  std::string load_error;
  try {
    model = std::make_unique<ubmd::Model>(arg[2], rank_device, dtype);
  } catch (std::exception &e) {
    load_error = what_of(e);
    model.reset();
  }
  int failed = load_error.empty() ? 0 : 1, n_failed = 0;
  MPI_Allreduce(&failed, &n_failed, 1, MPI_INT, MPI_SUM, world);
  if (n_failed == comm->nprocs) error->all(FLERR, "pair_style ubmd: {}", load_error);
  if (n_failed > 0) {
    if (failed) error->one(FLERR, "pair_style ubmd (rank {}): {}", comm->me, load_error);
    error->all(FLERR, "pair_style ubmd: the model {} failed to load on {} of {} ranks", arg[2],
               n_failed, comm->nprocs);
  }
  model_device = device;
  model_dtype = dtype;
  eval = std::make_unique<ubmd::Evaluation>(*model);
  cutoff = model->cutoff();
  reset_trajectory();    // a new model starts a new trajectory
  skip_warned = 0;
  mass_warned = 0;

  const bool hybrid = (force->pair != this);
  type2species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string el = arg[2 + t];
    if (el == "NULL") {
      if (!hybrid)
        error->all(FLERR, "pair_coeff ubmd: NULL for type {} is only allowed under pair_style "
                   "hybrid or hybrid/overlay", t);
      continue;
    }
    int s = model->species_index(el);
    if (s < 0) {
      std::string known;
      for (const auto &sp : model->metadata().species) known += " " + sp;
      error->all(FLERR, "pair_coeff ubmd: element {} (type {}) is not in the model {} "
                 "(species:{})", el, t, arg[2], known);
    }
    type2species[t] = s;
  }
  map_weights();

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

  if (comm->me == 0) {
    const auto &m = model->metadata();
    std::string msg = fmt::format("pair ubmd: model {} (format {}, {}{}, cutoff {} A, "
                                  "uncertainty {}, {} features, device {})\n", arg[2],
                                  m.format_version, model->dtype_name(),
                                  m.dtype == model->dtype_name() ? "" : " cast from " + m.dtype,
                                  m.cutoff,
                                  m.uncertainty, m.feature_dim, device);
    if (n_gpu > 1)
      msg += fmt::format("  device cuda: {} ranks on this node over {} GPUs (node-local rank % {}; "
                         "device cuda:K pins every rank to GPU K)\n", local_size, n_gpu, n_gpu);
    else if (device.rfind("cuda", 0) == 0 && local_size > 1)
      msg += fmt::format("  device {}: {} ranks on this node share one GPU\n", device, local_size);
    for (int t = 1; t <= ntypes; t++) {
      if (type2species[t] < 0) msg += fmt::format("  type {} -> NULL (not handled by ubmd)\n", t);
      else
        msg += fmt::format("  type {} -> {} (model species {}, bias weight {})\n", t,
                           m.species[type2species[t]], type2species[t], type2weight[t]);
    }
    // which BLAS libtorch's float64 matrix products reach (see cpp/blas_binding.h)
    const auto blas = ubmd::symbol_binding("libtorch_cpu", "dgemm_");
    auto base = [](const std::string &p) { return p.substr(p.find_last_of('/') + 1); };
    if (blas.found)
      msg += fmt::format("  libtorch dgemm_ -> {}\n", blas.resolved ? base(blas.provider)
                                                                     : std::string("unresolved"));
    msg += fmt::format("  torch threads {} per process, styles from {}\n", at::get_num_threads(),
                       styles_path());
    if (model->has_uncertainty())
      msg += fmt::format("  feature sum and bias gradient through {}\n",
                         eval->uses_contraction() ? "atomic_parts / feature_contraction"
                                                  : "per-atom features of atomic");
    utils::logmesg(lmp, msg);
    if (blas.found && blas.resolved && !blas.own)
      error->warning(FLERR, "pair ubmd: libtorch's dgemm_ is bound to {} instead of {}, so float64 "
                     "models run up to 3.8x slower. Load ubmd with `plugin load "
                     ".../ubmdplugin.so` (not libubmd_lammps.so) and leave UBMD_NO_DEEPBIND "
                     "unset; when LAMMPS runs inside Python, import torch before lammps",
                     blas.provider, blas.expected.empty() ? "libtorch's own BLAS" : blas.expected);
  }
}

/* ---------------------------------------------------------------------- */

void PairUBMD::map_weights()
{
  for (const auto &kv : weight_by_element) {
    if (model->species_index(kv.first) < 0)
      error->all(FLERR, "pair_style ubmd weights: element {} is not in the model", kv.first);
  }
  type2weight.assign(atom->ntypes + 1, 1.0);
  for (int t = 1; t <= atom->ntypes && t < (int) type2species.size(); t++)
    if (type2species[t] >= 0) {
      auto it = weight_by_element.find(model->metadata().species[type2species[t]]);
      if (it != weight_by_element.end()) type2weight[t] = it->second;
    }
}

/* ----------------------------------------------------------------------
   the model needs every atom pair within its cutoff: special_bonds and neigh_modify exclude
   remove pairs from the neighbour list, which silently changes energies and forces
------------------------------------------------------------------------- */

/* the error for special_bonds weights 0 of 1-(k+1) neighbours; under hybrid with the recipe
   that keeps the exclusions for the other sub-styles */

static std::string special_bonds_message(int k, const char *what, bool hybrid)
{
  return fmt::format("Pair style ubmd: special_bonds lj/coul 0 for 1-{} neighbours removes bonded "
                     "{} from the neighbour lists, which changes the model's energies and forces; "
                     "use special_bonds lj/coul 1.0 1.0 1.0{}", k + 1, what,
                     hybrid ? " (or, for other sub-styles that need the exclusions, weights other "
                              "than 0 and 1, e.g. special_bonds lj/coul 0.5 0.5 0.5, and "
                              "pair_modify pair <style> special lj/coul 0.0 0.0 0.0)"
                            : "");
}

void PairUBMD::check_neighbor_exclusions()
{
  const bool hybrid = (force->pair != this);
  if (atom->molecular != Atom::ATOMIC && atom->nbonds > 0) {
    // under hybrid the removed pairs may all belong to other sub-styles (bonded molecules of
    // NULL types): setup() checks the actual bonded pairs of ubmd types where it can
    const bool exact = hybrid && atom->molecular == Atom::MOLECULAR && atom->special &&
        atom->nspecial && atom->map_style != Atom::MAP_NONE;
    for (int k = 1; k <= 3 && !exact; k++) {
      if (force->special_lj[k] != 0.0 || force->special_coul[k] != 0.0) continue;
      if (force->kspace) continue;    // LAMMPS keeps all special pairs in the lists with kspace
      const std::string msg = special_bonds_message(k, "pairs", hybrid);
      if (hybrid) {
        if (comm->me == 0) error->warning(FLERR, msg);
      } else {
        error->all(FLERR, msg);
      }
      break;
    }
  }
  if (neighbor->includegroup) {
    // neigh_modify include: only atoms of the group are centres and neighbours in every list
    const int bit = group->bitmask[neighbor->includegroup];
    int out = 0, any_out = 0;
    for (int i = 0; i < atom->nlocal && !out; i++) {
      if (is_model_type(atom->type[i]) && !(atom->mask[i] & bit)) out = 1;
    }
    MPI_Allreduce(&out, &any_out, 1, MPI_INT, MPI_MAX, world);
    if (any_out)
      error->all(FLERR, "Pair style ubmd: neigh_modify include {} leaves atoms that the model "
                 "describes out of the neighbour lists (they would get no energy and no "
                 "neighbours); remove the include, or put every atom of the ubmd types into "
                 "group {}", group->names[neighbor->includegroup],
                 group->names[neighbor->includegroup]);
  }
  for (int k = 0; k < neighbor->nex_type; k++) {
    const int a = neighbor->ex1_type[k], b = neighbor->ex2_type[k];
    if (is_model_type(a) && is_model_type(b))
      error->all(FLERR, "Pair style ubmd: neigh_modify exclude type {} {} removes pairs of atoms "
                 "that the model describes; remove the exclusion", a, b);
  }
  if (neighbor->nex_group > 0 || neighbor->nex_mol > 0) {
    const std::string msg = "Pair style ubmd: neigh_modify exclude group/molecule removes pairs "
                            "from the neighbour list the model uses; energies and forces change";
    if (hybrid) {
      if (comm->me == 0) error->warning(FLERR, msg);
    } else {
      error->all(FLERR, msg + "; remove the exclusion");
    }
  }
}

/* ---------------------------------------------------------------------- */

void PairUBMD::init_style()
{
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "Pair style ubmd requires 'units metal' (models are in eV and Angstrom), "
               "not units {}", update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "Pair style ubmd requires newton pair on (ghost-atom forces are summed "
               "by reverse communication)");
  if (atom->tag_enable == 0) error->all(FLERR, "Pair style ubmd requires atom IDs");
  if (!model) error->all(FLERR, "Pair style ubmd: pair_coeff * * model.pt El ... was not given");
  map_weights();    // weights may have changed with a re-issued pair_style
  check_neighbor_exclusions();
  check_type_masses();
  // under hybrid, pair_modify shift/tail go to every sub-style (meant for the others): no warning
  if ((tail_flag || offset_flag) && force->pair == this && !tailshift_warned && comm->me == 0)
    error->warning(FLERR, "Pair style ubmd: pair_modify {} has no effect on pair_style ubmd (a "
                   "strictly local many-body model: no energy shift at the cutoff, no tail "
                   "correction)", tail_flag && offset_flag ? "shift yes and tail yes"
                   : tail_flag ? "tail yes" : "shift yes");
  if (tail_flag || offset_flag) tailshift_warned = 1;

  const bool bias = (tau_f > 0.0 || tau_s > 0.0);
  if (bias && update->whichflag == 2)
    error->all(FLERR, "Pair style ubmd: bias_forces/bias_stress cannot be used with minimize "
               "(the biased forces are not the gradient of the reported energy, and the adaptive "
               "scale changes on every evaluation); minimize with `pair_style ubmd` without bias "
               "keywords, then re-issue the biased pair_style before run");
  unc_mode = unc_request;
  if (!model->has_uncertainty()) {
    if (bias)
      error->all(FLERR, "Pair style ubmd: bias_forces/bias_stress need a model with "
                 "uncertainty, but {} has uncertainty '{}'", model->path(),
                 model->metadata().uncertainty);
    if (unc_mode_set && unc_mode != UNC_NONE)
      error->all(FLERR, "Pair style ubmd: model {} has no uncertainty; use uncertainty none",
                 model->path());
    unc_mode = UNC_NONE;
  } else if ((unc_mode & UNC_ATOMIC) && !model->has_atomic_uncertainty()) {
    if (unc_mode_set)
      error->all(FLERR, "Pair style ubmd: model {} has no method atomic_uncertainty",
                 model->path());
    unc_mode &= ~UNC_ATOMIC;
  }

  neighbor->add_request(this, NeighConst::REQ_FULL);
  setup_checked = 0;    // run_setup_checks() from setup() or the first compute()
}

/* ---------------------------------------------------------------------- */

double PairUBMD::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return cutoff;
}

/* ---------------------------------------------------------------------- */

void PairUBMD::setup()
{
  run_setup_checks();
}

/* ----------------------------------------------------------------------
   checks that need the run's neighbour lists and ghost atoms: from setup(), or from the first
   compute() after init() where no setup() comes (rerun: init(), then setup_minimal() per
   frame). Marked done only once they passed, so an evaluation after a refused one checks again.
------------------------------------------------------------------------- */

void PairUBMD::run_setup_checks()
{
  // ghost atoms must cover the model's interaction range
  double cutghost = comm->get_comm_cutoff();
  if (cutghost < cutoff)
    error->all(FLERR, "Pair style ubmd: communication cutoff {} is smaller than the model "
               "cutoff {}; increase it with comm_modify cutoff", cutghost, cutoff);
  check_special_pairs();
  check_hybrid_skips();
  setup_checked = 1;
}

/* ----------------------------------------------------------------------
   per-type masses that do not fit the element pair_coeff maps the type to (by more than 10 %)
   are most often a pair_coeff element list in the wrong order: a warning (once per pair_coeff)
   that names the element the mass belongs to. Isotopes and hydrogen mass repartitioning are
   legitimate, hence no error.
------------------------------------------------------------------------- */

void PairUBMD::check_type_masses()
{
  if (mass_warned || comm->me != 0 || !atom->mass || !atom->mass_setflag) return;
  const auto &z_of = model->metadata().atomic_numbers;
  const auto &el_of = model->metadata().species;
  std::string bad;
  for (int t = 1; t <= atom->ntypes; t++) {
    const int s = type2species[t];
    if (s < 0 || !atom->mass_setflag[t] || s >= static_cast<int>(z_of.size())) continue;
    const double m = atom->mass[t], m_el = ubmd_plugin::element_mass(z_of[s]);
    if (m_el <= 0.0 || std::fabs(m - m_el) <= 0.1 * m_el) continue;
    const int z = ubmd_plugin::closest_element(m);
    const std::string whose =
        z == z_of[s] ? "" : fmt::format(" (closest to {})", ubmd_plugin::ELEMENT_SYMBOLS[z]);
    bad += fmt::format(" type {} has mass {:.4g}{} but is mapped to {} (mass {:.4g});", t, m,
                       whose, el_of[s], m_el);
  }
  if (bad.empty()) return;
  mass_warned = 1;
  error->warning(FLERR, "Pair style ubmd: atom masses do not fit the elements of pair_coeff:{} "
                 "check that pair_coeff * * model.pt lists one element per atom type in type "
                 "order; ignore this if the masses are intended (isotopes, hydrogen mass "
                 "repartitioning)", bad);
}

/* ----------------------------------------------------------------------
   pair_style hybrid (not overlay): a later pair_coeff I J <other style> takes the pairs of
   ubmd types I, J away from the model's neighbour list. That can be intended (two separately
   described subsystems), but silently changes the model's energies otherwise: a warning.
------------------------------------------------------------------------- */

void PairUBMD::check_hybrid_skips()
{
  if (force->pair == this || !list || !list->ijskip || skip_warned) return;
  std::string pairs;
  const int ntypes = atom->ntypes;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++)
      if (is_model_type(i) && is_model_type(j) && list->ijskip[i][j])
        pairs += fmt::format(" {}-{}", i, j);
  if (pairs.empty()) return;
  skip_warned = 1;
  if (comm->me == 0)
    error->warning(FLERR, "Pair style ubmd: pairs of atom types{} are mapped to ubmd by pair_coeff "
                   "* * but assigned to another sub-style by a later pair_coeff: the model does "
                   "not see them (its atoms' energies, forces and uncertainties are those of "
                   "separate subsystems). Use pair_style hybrid/overlay if the model should "
                   "describe these pairs", pairs);
}

/* ----------------------------------------------------------------------
   under hybrid: bonded pairs (1-2, 1-3, 1-4) that the neighbour lists leave out
   (special_bonds weights 0, no kspace) are an error when both atoms are of ubmd types and
   closer than the model cutoff. Runs after Neighbor::init() (special_flag is current) and
   after the ghost atoms of the run were built (atom->map finds the partners).
------------------------------------------------------------------------- */

void PairUBMD::check_special_pairs()
{
  if (force->pair == this || atom->molecular != Atom::MOLECULAR || atom->nbonds == 0 ||
      !atom->special || !atom->nspecial || atom->map_style == Atom::MAP_NONE)
    return;
  if (neighbor->special_flag[1] != 0 && neighbor->special_flag[2] != 0 &&
      neighbor->special_flag[3] != 0)
    return;
  int *type = atom->type;
  int **nspecial = atom->nspecial;
  tagint **special = atom->special;
  double **x = atom->x;
  const double cutsq_model = cutoff * cutoff;
  int found[4] = {0, 0, 0, 0}, any[4] = {0, 0, 0, 0};
  for (int i = 0; i < atom->nlocal; i++) {
    if (!is_model_type(type[i])) continue;
    int lo = 0;
    for (int k = 1; k <= 3; k++) {
      const int hi = nspecial[i][k - 1];
      if (neighbor->special_flag[k] == 0 && !found[k]) {
        for (int s = lo; s < hi; s++) {
          int j = atom->map(special[i][s]);
          if (j < 0 || !is_model_type(type[j])) continue;
          j = domain->closest_image(i, j);
          const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
          if (dx * dx + dy * dy + dz * dz < cutsq_model) {
            found[k] = 1;
            break;
          }
        }
      }
      lo = hi;
    }
  }
  MPI_Allreduce(found, any, 4, MPI_INT, MPI_MAX, world);
  for (int k = 1; k <= 3; k++)
    if (any[k])
      error->all(FLERR, special_bonds_message(k, "pairs of atoms that the model describes", true));
}

/* ---------------------------------------------------------------------- */

void PairUBMD::grow_atom_arrays()
{
  if (atom->nmax > nmax_atom) {
    nmax_atom = atom->nmax;
    memory->destroy(node_of);
    memory->destroy(fbuf);
    memory->destroy(ubuf);
    memory->grow(uncatom, nmax_atom, "pair:ubmd:uncatom");
    for (int i = 0; i < nmax_atom; i++) uncatom[i] = 0.0;    // never hand out uninitialised memory
    memory->create(node_of, nmax_atom, "pair:ubmd:node_of");
    memory->create(fbuf, nmax_atom, 3, "pair:ubmd:fbuf");
    memory->create(ubuf, nmax_atom, 3, "pair:ubmd:ubuf");
  }
}

/* ----------------------------------------------------------------------
   graph: nodes 0..inum-1 = local centres of the list, then every other atom that appears
   as a neighbour within the model cutoff (ghosts / periodic images)
------------------------------------------------------------------------- */

void PairUBMD::build_graph()
{
  double **x = atom->x;
  int *type = atom->type;
  const int nall = atom->nlocal + atom->nghost;
  const int inum = list->inum;
  int *ilist = list->ilist;
  int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cutsq_model = cutoff * cutoff;

  for (int i = 0; i < nall; i++) node_of[i] = -1;
  node_atom.clear();
  edge_vec.clear();
  edge_c.clear();
  edge_n.clear();

  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    if (!std::isfinite(x[i][0]) || !std::isfinite(x[i][1]) || !std::isfinite(x[i][2]))
      error->one(FLERR, "Pair style ubmd: non-finite position of atom {} on step {} (the "
                 "simulation has blown up)", atom->tag[i], update->ntimestep);
    node_of[i] = ii;
    node_atom.push_back(i);
  }
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      if (type2species[type[j]] < 0) continue;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_model) continue;
      if (node_of[j] < 0) {
        node_of[j] = static_cast<int>(node_atom.size());
        node_atom.push_back(j);
      }
      edge_vec.push_back(dx);
      edge_vec.push_back(dy);
      edge_vec.push_back(dz);
      edge_c.push_back(ii);
      edge_n.push_back(node_of[j]);
    }
  }
  node_species.resize(node_atom.size());
  for (size_t n = 0; n < node_atom.size(); n++) node_species[n] = type2species[type[node_atom[n]]];
}

/* ---------------------------------------------------------------------- */

void PairUBMD::compute(int eflag, int vflag)
{
  if (!setup_checked) run_setup_checks();    // rerun calls init() but no setup()
  ev_init(eflag, vflag);
  grow_atom_arrays();

  double **f = atom->f;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const bigint step = update->ntimestep;
  MPIReducer reducer(world);

  build_graph();
  ubmd::Graph g;
  g.n_local = list->inum;
  g.n_nodes = static_cast<int64_t>(node_atom.size());
  g.n_edges = static_cast<int64_t>(edge_c.size());
  g.edge_vec = edge_vec.data();
  g.centre = edge_c.data();
  g.neighbour = edge_n.data();
  g.species = node_species.data();

  // what is needed on this step: identical decision on every rank (collective calls follow)
  const bool bias = (tau_f > 0.0 || tau_s > 0.0);
  // also on a run's setup and last step and on every output step, which thermo and dump use
  // whether or not they are multiples of N
  const bool monitor = (step % every == 0) || unc_trigger || update->setupflag ||
      step == update->laststep || step == output->next;
  const bool need_total = bias || ((unc_mode & UNC_TOTAL) && monitor);
  const bool need_atomic = (unc_mode & UNC_ATOMIC) && monitor;

  try {
    eval->forward(g, need_total || need_atomic, /*keep_graph=*/bias,
                  /*atomic_features=*/need_atomic);
  } catch (std::exception &e) {
    error->one(FLERR, "Pair style ubmd: model evaluation failed on step {}: {}", step, what_of(e));
  }

  const auto &eat = eval->atomic_energies();
  if (eflag_global) eng_vdwl += eval->energy();
  if (eflag_atom)
    for (int n = 0; n < g.n_local; n++) eatom[node_atom[n]] += eat[n];

  const auto &fn = eval->forces();
  double sf_now = 0.0, ss_now = 0.0;

  if (need_total) {
    // collective on every rank; the du/dR back-propagation only when a bias uses it
    try {
      u_total = eval->total_uncertainty(reducer, /*with_gradient=*/bias);
    } catch (std::exception &e) {
      error->one(FLERR, "Pair style ubmd: total uncertainty failed on step {}: {}", step,
                 what_of(e));
    }
  }

  if (!bias) {
    // plain forces on local and ghost atoms, LAMMPS sums the ghosts (newton on)
    for (int64_t n = 0; n < g.n_nodes; n++) {
      const int i = node_atom[n];
      f[i][0] += fn[3 * n];
      f[i][1] += fn[3 * n + 1];
      f[i][2] += fn[3 * n + 2];
    }
  } else {
    const auto &du = eval->uncertainty_gradient();

    // unbiased forces and du/dR on every atom, ghosts summed into their owners
    for (int i = 0; i < nall; i++)
      for (int d = 0; d < 3; d++) fbuf[i][d] = ubuf[i][d] = 0.0;
    for (int64_t n = 0; n < g.n_nodes; n++) {
      const int i = node_atom[n];
      for (int d = 0; d < 3; d++) {
        fbuf[i][d] += fn[3 * n + d];
        ubuf[i][d] += du[3 * n + d];
      }
    }
    comm->reverse_comm(this);

    // global norms: ||F||^2, ||du/dR||^2, virial W and du/deps
    double red[20] = {0.0};
    for (int i = 0; i < nlocal; i++)
      for (int d = 0; d < 3; d++) {
        red[0] += fbuf[i][d] * fbuf[i][d];
        red[1] += ubuf[i][d] * ubuf[i][d];
      }
    const auto &w = eval->virial();
    const auto &dd = eval->uncertainty_strain_derivative();
    for (int k = 0; k < 9; k++) {
      red[2 + k] = w[k];
      red[11 + k] = dd[k];
    }
    reducer.allreduce_sum(red, 20);

    if (fixed_scale) {
      sf_now = fixed_sf;
      ss_now = fixed_ss;
    } else {
      // Frobenius norms of the unbiased virial and of du/deps (as the Python reference)
      double w2 = 0.0, d2 = 0.0;
      for (int k = 0; k < 9; k++) {
        w2 += red[2 + k] * red[2 + k];
        d2 += red[11 + k] * red[11 + k];
      }
      if (step != scale_step) {
        if (tau_f > 0.0) sf_now = scale_f->update(red[0], red[1]);
        if (tau_s > 0.0) ss_now = scale_s->update(w2, d2);
        scale_step = step;
      } else {
        // the same step again (a new run's setup, fix numdiff): one window entry per step
        sf_now = s_f;
        ss_now = s_s;
      }
    }
    s_f = sf_now;
    s_s = ss_now;
    bias_energy = -tau_f * s_f * u_total;

    int *type = atom->type;
    const double cf = tau_f * s_f;
    for (int i = 0; i < nlocal; i++) {
      const double c = cf * type2weight[type[i]];
      f[i][0] += fbuf[i][0] + c * ubuf[i][0];
      f[i][1] += fbuf[i][1] + c * ubuf[i][1];
      f[i][2] += fbuf[i][2] + c * ubuf[i][2];
    }
  }

  if (vflag_global) {
    const auto &w = eval->virial();
    const double cs = tau_s * ss_now;
    const auto &dd = eval->uncertainty_strain_derivative();    // zeros without uncertainty
    static const int vi[6][2] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {0, 2}, {1, 2}};
    for (int k = 0; k < 6; k++) {
      const int a = vi[k][0], b = vi[k][1];
      virial[k] += w[3 * a + b] + cs * dd[3 * a + b];
    }
  }
  if (vflag_atom) {
    eval->node_virial(1.0, tau_s * ss_now, node_vir);
    for (int64_t n = 0; n < g.n_nodes; n++) {
      const int i = node_atom[n];
      for (int k = 0; k < 6; k++) vatom[i][k] += node_vir[6 * n + k];
    }
  }

  // per-atom uncertainties of the local atoms
  if (need_atomic) {
    try {
      eval->atomic_uncertainty(au_buf);
    } catch (std::exception &e) {
      error->one(FLERR, "Pair style ubmd: atomic uncertainty failed on step {}: {}", step,
                 what_of(e));
    }
    for (int i = 0; i < nlocal; i++) uncatom[i] = 0.0;
    double mx = 0.0;
    for (int n = 0; n < g.n_local; n++) {
      uncatom[node_atom[n]] = au_buf[n];
      if (au_buf[n] > mx) mx = au_buf[n];
    }
    reducer.allreduce_max(&mx, 1);
    max_atomic_unc = mx;
    unc_step = step;
    // not atom->natoms: with thermo_modify lost ignore it is updated after this step's forces
    unc_tags.assign(atom->tag, atom->tag + nlocal);
  } else if (unc_mode & UNC_ATOMIC) {
    // not monitored on this step: no stale values under indices that sorting may have moved
    // (compute ubmd/atom refuses such steps; compute pair keeps the last maximum)
    for (int i = 0; i < nlocal; i++) uncatom[i] = 0.0;
  }
  unc_trigger = 0;

  // compute pair sums pvector over ranks: global values on rank 0 only
  const double vals[5] = {u_total, bias_energy, s_f, s_s, max_atomic_unc};
  for (int k = 0; k < 5; k++) pvector[k] = (comm->me == 0) ? vals[k] : 0.0;
}

/* ---------------------------------------------------------------------- */

int PairUBMD::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  const int last = first + n;
  for (int i = first; i < last; i++) {
    buf[m++] = fbuf[i][0];
    buf[m++] = fbuf[i][1];
    buf[m++] = fbuf[i][2];
    buf[m++] = ubuf[i][0];
    buf[m++] = ubuf[i][1];
    buf[m++] = ubuf[i][2];
  }
  return m;
}

void PairUBMD::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    const int j = list[i];
    fbuf[j][0] += buf[m++];
    fbuf[j][1] += buf[m++];
    fbuf[j][2] += buf[m++];
    ubuf[j][0] += buf[m++];
    ubuf[j][1] += buf[m++];
    ubuf[j][2] += buf[m++];
  }
}

/* ----------------------------------------------------------------------
   global values (all ranks identical): uncertainty, bias_energy, bias_scale_forces,
   bias_scale_stress, max_atomic_uncertainty, cutoff; trigger "uncertainty_flag" for fix pair
------------------------------------------------------------------------- */

void *PairUBMD::extract(const char *str, int &dim)
{
  dim = 0;
  if (strcmp(str, "uncertainty") == 0) return &u_total;
  if (strcmp(str, "bias_energy") == 0) return &bias_energy;
  if (strcmp(str, "bias_scale_forces") == 0) return &s_f;
  if (strcmp(str, "bias_scale_stress") == 0) return &s_s;
  if (strcmp(str, "max_atomic_uncertainty") == 0) return &max_atomic_unc;
  if (strcmp(str, "cutoff") == 0) return &cutoff;
  if (strcmp(str, "uncertainty_flag") == 0) return &unc_trigger;
  return nullptr;
}

void *PairUBMD::extract_peratom(const char *str, int &ncol)
{
  ncol = 0;
  if (strcmp(str, "uncertainty") == 0) {
    // nullptr (fix pair: "cannot extract") when no per-atom uncertainty will ever be computed
    if (!atomic_uncertainty_possible()) return nullptr;
    grow_atom_arrays();
    return uncatom;
  }
  return nullptr;
}

/* ---------------------------------------------------------------------- */

double PairUBMD::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) nmax_atom * (sizeof(int) + 7 * sizeof(double));
  bytes += (double) edge_vec.size() * sizeof(double) + (double) edge_c.size() * 2 * sizeof(int64_t);
  return bytes;
}
