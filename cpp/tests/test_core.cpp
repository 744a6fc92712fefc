/* Unit tests of the ubmd core (no LAMMPS, no MPI). usage: test_ubmd_core MODELDIR
   MODELDIR is written by cpp/tests/make_models.py (a ctest fixture). */

#include "blas_binding.h"
#include "ubmd_core.h"

#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace ubmd;

static int failures = 0;
static int checks = 0;

#define EXPECT(cond)                                                                     \
  do {                                                                                  \
    checks++;                                                                           \
    if (!(cond)) {                                                                      \
      failures++;                                                                       \
      std::cerr << __FILE__ << ":" << __LINE__ << ": EXPECT failed: " #cond << "\n";     \
    }                                                                                   \
  } while (0)

static bool close(double a, double b, double rtol, double atol = 1e-12)
{
  return std::fabs(a - b) <= atol + rtol * std::fabs(b);
}

static bool all_close(const std::vector<double> &a, const std::vector<double> &b, double rtol,
                      double atol = 1e-12)
{
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (!close(a[i], b[i], rtol, atol)) {
      std::cerr << "  mismatch at " << i << ": " << a[i] << " vs " << b[i] << "\n";
      return false;
    }
  return true;
}

template <class F> static std::string error_of(F f)
{
  try {
    f();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

struct Reference {
  int n = 0, n_edges = 0;
  std::vector<double> pos;
  std::vector<int64_t> species;
  double energy = 0, u = 0;
  std::vector<double> forces, virial, dudr, dudeps, atomic_unc, eatom;
};

static Reference read_reference(const std::string &file)
{
  std::ifstream in(file);
  Reference r;
  in >> r.n >> r.n_edges;
  for (int i = 0; i < r.n; i++) {
    double x, y, z;
    int64_t s;
    in >> x >> y >> z >> s;
    r.pos.insert(r.pos.end(), {x, y, z});
    r.species.push_back(s);
  }
  auto vec = [&](std::vector<double> &v, int count) {
    v.resize(count);
    for (auto &x : v) in >> x;
  };
  in >> r.energy;
  vec(r.forces, 3 * r.n);
  vec(r.virial, 9);
  in >> r.u;
  vec(r.dudr, 3 * r.n);
  vec(r.dudeps, 9);
  vec(r.atomic_unc, r.n);
  vec(r.eatom, r.n);
  if (!in) throw std::runtime_error("cannot read " + file);
  return r;
}

/* graph of the centres `centres` (renumbered first), other atoms within the cutoff as ghosts */
struct OwnedGraph {
  std::vector<double> ev;
  std::vector<int64_t> c, nb, species, node_atom;
  Graph g;
};

static OwnedGraph build_graph(const Reference &r, const std::vector<int> &centres, double rc)
{
  OwnedGraph o;
  std::map<int, int64_t> node_of;
  for (int a : centres) {
    node_of[a] = static_cast<int64_t>(o.node_atom.size());
    o.node_atom.push_back(a);
  }
  for (int a : centres)
    for (int b = 0; b < r.n; b++) {
      if (a == b) continue;
      double d[3], d2 = 0;
      for (int k = 0; k < 3; k++) {
        d[k] = r.pos[3 * b + k] - r.pos[3 * a + k];
        d2 += d[k] * d[k];
      }
      if (d2 >= rc * rc) continue;
      if (!node_of.count(b)) {
        node_of[b] = static_cast<int64_t>(o.node_atom.size());
        o.node_atom.push_back(b);
      }
      o.ev.insert(o.ev.end(), d, d + 3);
      o.c.push_back(node_of[a]);
      o.nb.push_back(node_of[b]);
    }
  for (int64_t a : o.node_atom) o.species.push_back(r.species[a]);
  o.g.n_local = static_cast<int64_t>(centres.size());
  o.g.n_nodes = static_cast<int64_t>(o.node_atom.size());
  o.g.n_edges = static_cast<int64_t>(o.c.size());
  o.g.edge_vec = o.ev.data();
  o.g.centre = o.c.data();
  o.g.neighbour = o.nb.data();
  o.g.species = o.species.data();
  return o;
}

/* reducer that records what it is given and adds another partition's contribution */
struct AddReducer : Reducer {
  std::vector<double> seen, other;
  void allreduce_sum(double *d, int n) override
  {
    seen.assign(d, d + n);
    if (!other.empty())
      for (int i = 0; i < n; i++) d[i] += other[i];
  }
  void allreduce_max(double *, int) override {}
};

// two partitions of one cluster as two ranks: ra sees what partition b adds to the Allreduce,
// rb what partition a adds (each partition's local sums from one evaluation)
static void cross_sums(Model &m, const Graph &a, const Graph &b, AddReducer &ra, AddReducer &rb)
{
  Evaluation t(m);
  AddReducer rec;
  t.forward(a, true, false, false);
  t.total_uncertainty(rec, false);
  rb.other = rec.seen;
  t.forward(b, true, false, false);
  t.total_uncertainty(rec, false);
  ra.other = rec.seen;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    std::cerr << "usage: test_ubmd_core MODELDIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  const Reference ref = read_reference(dir + "/reference.txt");

  // --- BLAS binding check: without LAMMPS in the process, libtorch's dgemm_ is the one its own
  // dependency tree gives. Under lazy binding the entry is unresolved until the first call:
  // one float64 matrix product binds it.
  {
    SymbolBinding b = symbol_binding("libtorch_cpu", "dgemm_");
    EXPECT(b.found);
    if (b.found && !b.resolved) {
      EXPECT(!b.own && b.provider.empty());
      auto a = torch::ones({64, 64}, torch::kFloat64);
      EXPECT(close(torch::mm(a, a).sum().item<double>(), 64.0 * 64.0 * 64.0, 1e-12));
      b = symbol_binding("libtorch_cpu", "dgemm_");
    }
    EXPECT(b.resolved);
    EXPECT(b.own);
    EXPECT(!b.provider.empty() && b.provider == b.expected);
    EXPECT(!symbol_binding("libtorch_cpu", "no_such_symbol_ubmd").found);
    EXPECT(!symbol_binding("no_such_library_ubmd", "dgemm_").found);
  }

  // --- loading and metadata
  Model model(dir + "/toy.pt");
  EXPECT(model.cutoff() == 4.0);
  EXPECT(model.num_species() == 3);
  EXPECT(model.species_index("C") == 1);
  EXPECT(model.species_index("Xx") == -1);
  EXPECT(model.metadata().atomic_numbers == std::vector<int>({1, 6, 8}));
  EXPECT(model.metadata().feature_dim == 8);
  EXPECT(model.has_uncertainty());
  EXPECT(model.has_atomic_uncertainty());
  EXPECT(model.dtype_name() == "float64");

  // --- full evaluation vs Python autograd
  std::vector<int> all(ref.n);
  for (int i = 0; i < ref.n; i++) all[i] = i;
  OwnedGraph full = build_graph(ref, all, 4.0);
  EXPECT(full.g.n_edges == ref.n_edges);
  Evaluation ev(model);
  ev.forward(full.g, true);
  EXPECT(close(ev.energy(), ref.energy, 1e-12));
  EXPECT(all_close(ev.atomic_energies(), ref.eatom, 1e-12));
  EXPECT(all_close(ev.forces(), ref.forces, 1e-10));
  EXPECT(all_close(std::vector<double>(ev.virial().begin(), ev.virial().end()), ref.virial, 1e-10));
  std::vector<double> au;
  ev.atomic_uncertainty(au);
  EXPECT(all_close(au, ref.atomic_unc, 1e-12));
  SerialReducer serial;
  double u = ev.total_uncertainty(serial);
  EXPECT(close(u, ref.u, 1e-12));
  EXPECT(ev.global_atoms() == ref.n);
  EXPECT(all_close(ev.uncertainty_gradient(), ref.dudr, 1e-10));
  EXPECT(all_close(std::vector<double>(ev.uncertainty_strain_derivative().begin(),
                                      ev.uncertainty_strain_derivative().end()),
                  ref.dudeps, 1e-10));

  // per-node virial sums to the global one (energy part and uncertainty part)
  std::vector<double> nv;
  ev.node_virial(1.0, 0.5, nv);
  const int vi[6] = {0, 4, 8, 1, 2, 5};
  for (int k = 0; k < 6; k++) {
    double s = 0;
    for (int64_t i = 0; i < full.g.n_nodes; i++) s += nv[6 * i + k];
    EXPECT(close(s, ev.virial()[vi[k]] + 0.5 * ev.uncertainty_strain_derivative()[vi[k]], 1e-10));
  }

  // --- domain decomposition: two partitions (+ one with no atoms) reproduce the full result
  {
    std::vector<int> pa = {0, 2, 4}, pb = {1, 3, 5, 6};
    OwnedGraph ga = build_graph(ref, pa, 4.0), gb = build_graph(ref, pb, 4.0);
    Evaluation ea(model), eb(model), ee(model);
    ea.forward(ga.g, true);
    eb.forward(gb.g, true);
    Graph empty;
    ee.forward(empty, true);
    // record local sums
    AddReducer ra, rb, re;
    {
      Evaluation t(model);
      t.forward(ga.g, true);
      AddReducer rec;
      t.total_uncertainty(rec);
      rb.other = rec.seen;
      t.forward(gb.g, true);
      t.total_uncertainty(rec);
      ra.other = rec.seen;
    }
    re.other = ra.other;
    for (size_t i = 0; i < re.other.size(); i++) re.other[i] += rb.other[i];
    double uA = ea.total_uncertainty(ra), uB = eb.total_uncertainty(rb), uE = ee.total_uncertainty(re);
    EXPECT(close(uA, ref.u, 1e-13));
    EXPECT(close(uB, ref.u, 1e-13));
    EXPECT(close(uE, ref.u, 1e-13));
    EXPECT(ea.global_atoms() == ref.n && ee.global_atoms() == ref.n);
    EXPECT(close(ea.energy() + eb.energy(), ref.energy, 1e-12));
    std::vector<double> f(3 * ref.n, 0.0), g(3 * ref.n, 0.0);
    for (auto *p : {&ga, &gb}) {
      const Evaluation &e = (p == &ga) ? ea : eb;
      for (int64_t node = 0; node < p->g.n_nodes; node++)
        for (int k = 0; k < 3; k++) {
          f[3 * p->node_atom[node] + k] += e.forces()[3 * node + k];
          g[3 * p->node_atom[node] + k] += e.uncertainty_gradient()[3 * node + k];
        }
    }
    EXPECT(all_close(f, ref.forces, 1e-10));
    EXPECT(all_close(g, ref.dudr, 1e-10));
    EXPECT(ee.forces().empty() && ee.energy() == 0.0);
  }

  // --- sketched features: atomic_parts / feature_contraction against the per-atom path of the
  // same file (plain autograd of v . sum_i phi_i), whole cluster and partitions; the first
  // layer takes the per-atom route for 3-4 atoms and the U diag(v) V^T route for 7 (K = 64)
  {
    Model ms(dir + "/sketch.pt");
    EXPECT(ms.has_feature_contraction());
    EXPECT(!model.has_feature_contraction());    // the toy model has only the required methods
    Evaluation on(ms), off(ms);
    on.set_use_one_pass(false);    // this block compares the two autograd paths
    off.set_use_one_pass(false);
    off.set_use_contraction(false);
    EXPECT(on.uses_contraction() && !off.uses_contraction());
    SerialReducer sr;
    for (bool atomic : {false, true}) {
      on.forward(full.g, true, true, atomic);
      off.forward(full.g, true, true, true);
      EXPECT(close(on.energy(), off.energy(), 1e-13));
      EXPECT(all_close(on.forces(), off.forces(), 1e-12));
      const double u_on = on.total_uncertainty(sr), u_off = off.total_uncertainty(sr);
      EXPECT(u_on > 0 && close(u_on, u_off, 1e-12));
      EXPECT(all_close(on.uncertainty_gradient(), off.uncertainty_gradient(), 1e-10));
      EXPECT(all_close(std::vector<double>(on.uncertainty_strain_derivative().begin(),
                                          on.uncertainty_strain_derivative().end()),
                      std::vector<double>(off.uncertainty_strain_derivative().begin(),
                                          off.uncertainty_strain_derivative().end()), 1e-10));
      std::vector<double> a_on, a_off;
      on.atomic_uncertainty(a_on);
      off.atomic_uncertainty(a_off);
      if (atomic) EXPECT(all_close(a_on, a_off, 1e-12));
      else EXPECT(a_on == std::vector<double>(ref.n, 0.0));    // not requested: zeros
    }
    // two partitions through the contraction: the global u and the summed du/dR are the
    // full-cluster ones (total_uncertainty's reduction seen through AddReducer)
    off.forward(full.g, true, true, true);
    const double u_full = off.total_uncertainty(sr);
    std::vector<int> pa = {0, 2, 4}, pb = {1, 3, 5, 6};
    OwnedGraph ga = build_graph(ref, pa, 4.0), gb = build_graph(ref, pb, 4.0);
    Evaluation ea(ms), eb(ms);
    AddReducer ra, rb;
    cross_sums(ms, ga.g, gb.g, ra, rb);
    ea.set_use_one_pass(false);
    eb.set_use_one_pass(false);
    ea.forward(ga.g, true, true, false);
    eb.forward(gb.g, true, true, false);
    EXPECT(close(ea.total_uncertainty(ra), u_full, 1e-12));
    EXPECT(close(eb.total_uncertainty(rb), u_full, 1e-12));
    std::vector<double> g(3 * ref.n, 0.0);
    for (auto *p : {&ga, &gb}) {
      const Evaluation &e = (p == &ga) ? ea : eb;
      for (int64_t node = 0; node < p->g.n_nodes; node++)
        for (int k = 0; k < 3; k++)
          g[3 * p->node_atom[node] + k] += e.uncertainty_gradient()[3 * node + k];
    }
    EXPECT(all_close(g, off.uncertainty_gradient(), 1e-10));

    // misuse is an error on both paths: a gradient without the kept graph, or twice per forward
    for (bool contraction : {true, false}) {
      Evaluation e(ms);
      e.set_use_one_pass(false);
      e.set_use_contraction(contraction);
      e.forward(full.g, true, /*keep_graph=*/false, false);
      EXPECT(error_of([&] { e.total_uncertainty(sr, true); }).find("keep_graph") != std::string::npos);
      e.forward(full.g, true, true, false);
      e.total_uncertainty(sr, true);
      EXPECT(!error_of([&] { e.total_uncertainty(sr, true); }).empty());
    }
  }

  // --- the one-pass path (atomic_state / state_gradients, no autograd) against the autograd
  // path of the same file: energies, forces, virial, u, du/dR, du/deps, per-atom u, on the whole
  // cluster and on two partitions; forces read before total_uncertainty (the energy gradient
  // alone, then du/dR alone); the same misuse errors
  for (const char *name : {"/sketch.pt", "/lastlayer.pt", "/ensemble.pt"}) {
    Model ms(dir + name);
    EXPECT(ms.has_state_methods());
    Evaluation one(ms), two(ms);
    two.set_use_one_pass(false);
    EXPECT(one.uses_one_pass() && !two.uses_one_pass());
    SerialReducer sr;
    for (bool atomic : {false, true}) {
      one.forward(full.g, true, true, atomic);
      two.forward(full.g, true, true, atomic);
      EXPECT(close(one.energy(), two.energy(), 1e-13));
      const double u1 = one.total_uncertainty(sr), u2 = two.total_uncertainty(sr);
      EXPECT(u1 > 0 && close(u1, u2, 1e-12));
      EXPECT(all_close(one.forces(), two.forces(), 1e-11));
      EXPECT(all_close(std::vector<double>(one.virial().begin(), one.virial().end()),
                       std::vector<double>(two.virial().begin(), two.virial().end()), 1e-11));
      EXPECT(all_close(one.uncertainty_gradient(), two.uncertainty_gradient(), 1e-10));
      EXPECT(all_close(std::vector<double>(one.uncertainty_strain_derivative().begin(),
                                           one.uncertainty_strain_derivative().end()),
                       std::vector<double>(two.uncertainty_strain_derivative().begin(),
                                           two.uncertainty_strain_derivative().end()), 1e-10));
      std::vector<double> a1, a2;
      one.atomic_uncertainty(a1);
      two.atomic_uncertainty(a2);
      if (atomic) EXPECT(all_close(a1, a2, 1e-11));
      // forces first (the energy gradient alone), then du/dR (a second traversal): the same
      one.forward(full.g, true, true, atomic);
      EXPECT(all_close(one.forces(), two.forces(), 1e-11));
      EXPECT(close(one.total_uncertainty(sr), u2, 1e-12));
      EXPECT(all_close(one.uncertainty_gradient(), two.uncertainty_gradient(), 1e-10));
      // no bias gradient asked for: forces at once, u without du/dR
      one.forward(full.g, true, /*keep_graph=*/false, atomic);
      EXPECT(all_close(one.forces(), two.forces(), 1e-11));
      EXPECT(close(one.total_uncertainty(sr, false), u2, 1e-12));
      EXPECT(error_of([&] { one.total_uncertainty(sr, true); }).find("keep_graph") != std::string::npos);
    }
    // partitions: per-rank one-pass evaluations sum to the whole cluster's
    std::vector<int> pa = {0, 2, 4}, pb = {1, 3, 5, 6};
    OwnedGraph ga = build_graph(ref, pa, 4.0), gb = build_graph(ref, pb, 4.0);
    AddReducer ra, rb;
    cross_sums(ms, ga.g, gb.g, ra, rb);
    Evaluation ea(ms), eb(ms);
    ea.forward(ga.g, true, true, false);
    eb.forward(gb.g, true, true, false);
    two.forward(full.g, true, true, false);
    const double u_full = two.total_uncertainty(sr);
    EXPECT(close(ea.total_uncertainty(ra), u_full, 1e-12));
    EXPECT(close(eb.total_uncertainty(rb), u_full, 1e-12));
    std::vector<double> f(3 * ref.n, 0.0), g(3 * ref.n, 0.0);
    for (auto *p : {&ga, &gb}) {
      const Evaluation &e = (p == &ga) ? ea : eb;
      for (int64_t node = 0; node < p->g.n_nodes; node++)
        for (int k = 0; k < 3; k++) {
          f[3 * p->node_atom[node] + k] += e.forces()[3 * node + k];
          g[3 * p->node_atom[node] + k] += e.uncertainty_gradient()[3 * node + k];
        }
    }
    EXPECT(all_close(f, two.forces(), 1e-10));
    EXPECT(all_close(g, two.uncertainty_gradient(), 1e-10));
    EXPECT(!error_of([&] { ea.total_uncertainty(ra, true); }).empty());    // once per forward
  }

  // --- float32 evaluation of a float64 file
  {
    Model m32(dir + "/toy.pt", "cpu", "float32");
    EXPECT(m32.dtype_name() == "float32");
    Evaluation e32(m32);
    e32.forward(full.g, true);
    EXPECT(close(e32.energy(), ref.energy, 1e-5));
    EXPECT(all_close(e32.forces(), ref.forces, 1e-3, 1e-4));
  }

  // --- model without uncertainty
  {
    Model mn(dir + "/toy_none.pt");
    EXPECT(!mn.has_uncertainty());
    Evaluation en(mn);
    en.forward(full.g, true);
    EXPECT(close(en.energy(), ref.energy, 1e-12));
  }

  // --- errors
  std::string msg = error_of([&] { Model m(dir + "/toy_v99.pt"); });
  EXPECT(msg.find("format_version 99") != std::string::npos);
  EXPECT(msg.find("ubmd export") != std::string::npos);
  msg = error_of([&] { Model m(dir + "/does_not_exist.pt"); });
  EXPECT(msg.find("cannot open model file") != std::string::npos);
  msg = error_of([&] { Model m(dir + "/not_a_model.pt"); });
  EXPECT(msg.find("is not a ubmd model file") != std::string::npos);
  msg = error_of([&] { Model m(dir); });
  EXPECT(msg.find("is a directory, not a model file") != std::string::npos);
  msg = error_of([&] { Model m(dir + "/toy.pt", "tpu"); });
  EXPECT(msg.find("unknown device") != std::string::npos);
  if (!torch::cuda::is_available()) {
    msg = error_of([&] { Model m(dir + "/toy.pt", "cuda"); });
    EXPECT(msg.find("CUDA") != std::string::npos);
  }
  msg = error_of([&] { Model m(dir + "/toy.pt", "cpu", "float16"); });
  EXPECT(msg.find("unsupported dtype") != std::string::npos);
  {
    std::unordered_map<std::string, std::string> meta = {
        {"format_version", "1"}, {"cutoff", "5.0"}, {"species", "H C"},
        {"atomic_numbers", "1 6"}, {"dtype", "float64"}, {"units", "real"},
        {"uncertainty", "posterior"}, {"feature_dim", "4"}};
    msg = error_of([&] { Model::parse_metadata(meta); });
    EXPECT(msg.find("units") != std::string::npos);
    meta["units"] = "metal";
    meta["atomic_numbers"] = "1";
    msg = error_of([&] { Model::parse_metadata(meta); });
    EXPECT(msg.find("atomic numbers") != std::string::npos);
    meta["atomic_numbers"] = "1 6";
    meta.erase("cutoff");
    msg = error_of([&] { Model::parse_metadata(meta); });
    EXPECT(msg.find("'cutoff'") != std::string::npos);
  }

  std::cout << checks - failures << "/" << checks << " checks passed\n";
  return failures ? 1 : 0;
}
