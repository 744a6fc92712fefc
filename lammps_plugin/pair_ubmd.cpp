/* ----------------------------------------------------------------------
   pair_style ubmd: evaluates a ubmd model file (docs/model_file.md) through the LAMMPS-free
   core in cpp/, adds uncertainty bias forces and bias virial. See docs/pair_ubmd.rst.

   One step (every rank, also a rank that owns no atoms, makes the same collective calls):
   1. graph of the local centres from the full neighbour list (edge vectors r_j - r_i);
   2. model: per-atom energies, unbiased forces on local+ghost atoms, virial (edge derivatives);
   3. if uncertainty/bias is needed: Allreduce of the local feature sums and atom count, the
      model's total_uncertainty gives u and du/dphi_sum, backprop gives du/dR and du/deps;
   4. the unbiased forces and du/dR of ghosts are reverse-communicated to their owners, the
      global norms (ubmd::GlobalNorms) are Allreduced, ubmd::Bias updates the adaptive scales
      s_F, s_sigma, and owners get F + tau_F s_F w_Z du/dR; the virial gets the bias term
      tau_sigma s_sigma du/deps.
   The pair_style / pair_coeff arguments are read in pair_ubmd_settings.cpp, the checks of the
   input deck are in pair_ubmd_checks.cpp.
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
    Pair(lmp), unc_request(UNC_BOTH), unc_mode(UNC_BOTH), unc_mode_set(0), every(1),
    device("cpu"), cutoff(0.0), nmax_node(0), node_of(nullptr), nmax_atom(0), fbuf(nullptr),
    ubuf(nullptr), uncatom(nullptr), globals(), unc_trigger(0), unc_step(-1), skip_warned(0),
    setup_checked(0), tailshift_warned(0), mass_warned(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;
  comm_reverse = 6;

  // compute ID all pair ubmd -> [u, bias energy, s_F, s_sigma, max atomic uncertainty]
  nextra = ubmd::keys::PAIR_NUM_COLUMNS;
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

/* ---------------------------------------------------------------------- */

void PairUBMD::reset_trajectory()
{
  bias.reset();
  for (double &v : globals) v = 0.0;
  unc_step = -1;
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

  map_types(arg + 3);    // type2species, setflag
  map_weights();

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
                           m.species[type2species[t]], type2species[t],
                           bias.weight(type2species[t]));
    }
    // which BLAS libtorch's float64 matrix products reach (see cpp/blas_binding.h)
    const auto blas = ubmd::symbol_binding("libtorch_cpu", "dgemm_");
    auto base = [](const std::string &p) { return p.substr(p.find_last_of('/') + 1); };
    if (blas.found)
      msg += fmt::format("  libtorch dgemm_ -> {}\n", blas.resolved ? base(blas.provider)
                                                                     : std::string("unresolved"));
    msg += fmt::format("  torch threads {} per process, styles from {}\n", at::get_num_threads(),
                       styles_path());
    if (eval->uses_one_pass())
      msg += fmt::format("  forces{} in one pass through atomic_state / state_gradients\n",
                         model->has_uncertainty() ? " and bias gradient" : "");
    else if (model->has_uncertainty())
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

void PairUBMD::init_style()
{
  check_init_style();    // units, newton, atom IDs, pair_coeff, pair_modify, minimize
  map_weights();         // weights may have changed with a re-issued pair_style
  check_neighbor_exclusions();
  check_type_masses();
  unc_mode = uncertainty_mode();
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
  const bool bias_on = bias.active();
  // also on a run's setup and last step and on every output step, which thermo and dump use
  // whether or not they are multiples of N
  const bool monitor = (step % every == 0) || unc_trigger || update->setupflag ||
      step == update->laststep || step == output->next;
  const bool need_total = bias_on || ((unc_mode & UNC_TOTAL) && monitor);
  const bool need_atomic = (unc_mode & UNC_ATOMIC) && monitor;

  try {
    eval->forward(g, need_total || need_atomic, /*keep_graph=*/bias_on,
                  /*atomic_features=*/need_atomic);
  } catch (std::exception &e) {
    error->one(FLERR, "Pair style ubmd: model evaluation failed on step {}: {}", step, what_of(e));
  }

  const auto &eat = eval->atomic_energies();
  if (eflag_global) eng_vdwl += eval->energy();
  if (eflag_atom)
    for (int n = 0; n < g.n_local; n++) eatom[node_atom[n]] += eat[n];

  double &u_total = global_value(ubmd::keys::PAIR_COLUMN_UNCERTAINTY);

  if (need_total) {
    // collective on every rank; the du/dR back-propagation only when a bias uses it
    try {
      u_total = eval->total_uncertainty(reducer, /*with_gradient=*/bias_on);
    } catch (std::exception &e) {
      error->one(FLERR, "Pair style ubmd: total uncertainty failed on step {}: {}", step,
                 what_of(e));
    }
  }

  // after total_uncertainty: with a one-pass model the forces and du/dR come from one traversal;
  // the first reader of the energy gradient may run it (virial() and node_virial() below then
  // read what it left), so a failure is reported here and never thrown through LAMMPS
  const std::vector<double> *fn_ptr = nullptr;
  try {
    fn_ptr = &eval->forces();
  } catch (std::exception &e) {
    error->one(FLERR, "Pair style ubmd: forces failed on step {}: {}", step, what_of(e));
  }
  const auto &fn = *fn_ptr;
  if (!bias_on) {
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

    // global norms ||F||^2, ||du/dR||^2, virial W and du/deps: one Allreduce
    ubmd::GlobalNorms norms;
    norms.add_atoms(fbuf, ubuf, nlocal);
    norms.virial = eval->virial();
    norms.strain_derivative = eval->uncertainty_strain_derivative();
    double buf[ubmd::GlobalNorms::size];
    norms.pack(buf);
    reducer.allreduce_sum(buf, ubmd::GlobalNorms::size);
    norms.unpack(buf);

    // s_F, s_sigma (a step evaluated again, a new run's setup or fix numdiff: the same scales)
    bias.update(norms, step);
    global_value(ubmd::keys::PAIR_COLUMN_SCALE_FORCES) = bias.scale_forces();
    global_value(ubmd::keys::PAIR_COLUMN_SCALE_STRESS) = bias.scale_stress();
    global_value(ubmd::keys::PAIR_COLUMN_BIAS_ENERGY) = bias.energy(u_total);

    int *type = atom->type;
    for (int i = 0; i < nlocal; i++) {
      const int s = type2species[type[i]];
      if (s < 0) continue;    // NULL type under hybrid: not in the graph, nothing to add
      const double c = bias.force_coefficient(s);
      f[i][0] += fbuf[i][0] + c * ubuf[i][0];
      f[i][1] += fbuf[i][1] + c * ubuf[i][1];
      f[i][2] += fbuf[i][2] + c * ubuf[i][2];
    }
  }

  const double cs = bias.stress_coefficient();    // tau_sigma s_sigma, 0 without a bias
  if (vflag_global) {
    const auto &w = eval->virial();
    const auto &dd = eval->uncertainty_strain_derivative();    // zeros without uncertainty
    static const int vi[6][2] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {0, 2}, {1, 2}};
    for (int k = 0; k < 6; k++) {
      const int a = vi[k][0], b = vi[k][1];
      virial[k] += w[3 * a + b] + cs * dd[3 * a + b];
    }
  }
  if (vflag_atom) {
    eval->node_virial(1.0, cs, node_vir);
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
    global_value(ubmd::keys::PAIR_COLUMN_MAX_ATOMIC_UNCERTAINTY) = mx;
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
  for (int k = 0; k < nextra; k++) pvector[k] = (comm->me == 0) ? globals[k] : 0.0;
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
   global values (all ranks identical): the columns of compute pair ubmd by their names
   (keys::PAIR_COLUMNS: uncertainty, bias_energy, bias_scale_forces, bias_scale_stress,
   max_atomic_uncertainty) and cutoff; the trigger uncertainty_flag for fix pair
------------------------------------------------------------------------- */

void *PairUBMD::extract(const char *str, int &dim)
{
  namespace keys = ubmd::keys;
  dim = 0;
  for (int k = 0; k < keys::PAIR_NUM_COLUMNS; k++)
    if (strcmp(str, keys::PAIR_COLUMNS[k]) == 0) return &globals[k];
  if (strcmp(str, keys::EXTRACT_CUTOFF) == 0) return &cutoff;
  if (strcmp(str, keys::EXTRACT_UNCERTAINTY_FLAG) == 0) return &unc_trigger;
  return nullptr;
}

void *PairUBMD::extract_peratom(const char *str, int &ncol)
{
  ncol = 0;
  if (strcmp(str, ubmd::keys::EXTRACT_PERATOM_UNCERTAINTY) == 0) {
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
