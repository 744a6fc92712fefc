/* ubmd core implementation: see ubmd_core.h and docs/model_file.md */

#include "ubmd_core.h"
#include "ubmd_keys.h"

#include <torch/autograd.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

namespace ubmd {

namespace {

std::string trim(const std::string &s)
{
  const char *ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string &s)
{
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

const std::string reexport = "; re-export the model with `ubmd export`";

long parse_int(const std::string &key, const std::string &val)
{
  std::string t = trim(val);
  char *end = nullptr;
  long v = std::strtol(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0')
    throw Error("model metadata '" + key + "' is not an integer: '" + t + "'" + reexport);
  return v;
}

double parse_double(const std::string &key, const std::string &val)
{
  std::string t = trim(val);
  char *end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v))
    throw Error("model metadata '" + key + "' is not a number: '" + t + "'" + reexport);
  return v;
}

torch::Dtype dtype_from_name(const std::string &name)
{
  if (name == "float64" || name == "double") return torch::kFloat64;
  if (name == "float32" || name == "float") return torch::kFloat32;
  throw Error("unsupported dtype '" + name + "' (use float32 or float64)");
}

// copy a tensor to a host vector of doubles
void to_host(const torch::Tensor &t, std::vector<double> &out)
{
  auto h = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  out.resize(h.numel());
  if (h.numel()) std::copy(h.data_ptr<double>(), h.data_ptr<double>() + h.numel(), out.begin());
}

}    // namespace

std::string version_string() { return "ubmd core 0.1.0 (model format " + std::to_string(keys::MODEL_FORMAT_VERSION) + ")"; }

/* ---------------------------------------------------------------------- */

Metadata Model::parse_metadata(const std::unordered_map<std::string, std::string> &extra)
{
  auto get = [&](const char *key) -> std::string {
    auto it = extra.find(key);
    if (it == extra.end() || trim(it->second).empty())
      throw Error(std::string("model file has no metadata '") + key +
                  "' (not a ubmd model file, or written by an incompatible version)" + reexport);
    return trim(it->second);
  };

  Metadata m;
  m.format_version = static_cast<int>(parse_int(keys::META_FORMAT_VERSION, get(keys::META_FORMAT_VERSION)));
  if (m.format_version != keys::MODEL_FORMAT_VERSION)
    throw Error("model file format_version " + std::to_string(m.format_version) +
                " is not supported by this build of ubmd (it reads format_version " +
                std::to_string(keys::MODEL_FORMAT_VERSION) + ")" + reexport);
  m.cutoff = parse_double(keys::META_CUTOFF, get(keys::META_CUTOFF));
  if (m.cutoff <= 0.0) throw Error("model metadata cutoff must be > 0" + reexport);
  m.species = split(get(keys::META_SPECIES));
  for (const auto &z : split(get(keys::META_ATOMIC_NUMBERS)))
    m.atomic_numbers.push_back(static_cast<int>(parse_int(keys::META_ATOMIC_NUMBERS, z)));
  if (m.species.size() != m.atomic_numbers.size())
    throw Error("model metadata: " + std::to_string(m.species.size()) + " species but " +
                std::to_string(m.atomic_numbers.size()) + " atomic numbers" + reexport);
  m.dtype = get(keys::META_DTYPE);
  dtype_from_name(m.dtype);
  m.units = get(keys::META_UNITS);
  if (m.units != "metal")
    throw Error("model file units '" + m.units + "' are not supported (ubmd models use metal units)");
  m.uncertainty = get(keys::META_UNCERTAINTY);
  bool known = false;
  for (const char *k : keys::UNCERTAINTY_KINDS) known = known || (m.uncertainty == k);
  if (!known) throw Error("model metadata: unknown uncertainty kind '" + m.uncertainty + "'" + reexport);
  m.feature_dim = parse_int(keys::META_FEATURE_DIM, get(keys::META_FEATURE_DIM));
  auto it = extra.find(keys::META_ATOMIC_FEATURE_DIM);
  m.atomic_feature_dim = (it != extra.end() && !trim(it->second).empty())
      ? parse_int(keys::META_ATOMIC_FEATURE_DIM, it->second) : m.feature_dim;
  it = extra.find(keys::META_MODEL_HASH);
  if (it != extra.end()) m.model_hash = trim(it->second);
  if (m.feature_dim < 0) throw Error("model metadata feature_dim must be >= 0" + reexport);
  return m;
}

/* ---------------------------------------------------------------------- */

Model::Model(const std::string &path, const std::string &device, const std::string &dtype) :
    path_(path), device_(torch::kCPU), dtype_(torch::kFloat64)
{
  if (device == "cpu") {
    device_ = torch::Device(torch::kCPU);
  } else if (device.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error("device '" + device + "' requested but this libtorch has no usable CUDA device "
                  "(CPU-only build or no GPU visible); use device cpu");
    try {
      device_ = torch::Device(device);
    } catch (const c10::Error &e) {
      throw Error("invalid device '" + device + "': " + e.what_without_backtrace());
    }
  } else {
    throw Error("unknown device '" + device + "' (use cpu or cuda)");
  }

  {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw Error("'" + path + "' is a directory, not a model file: give the file written by "
                  "`ubmd export` (a training run directory holds it as model.pt)");
    std::ifstream probe(path);
    if (!probe.good()) throw Error("cannot open model file '" + path + "'");
  }

  std::unordered_map<std::string, std::string> extra;
  for (const char *k : {keys::META_FORMAT_VERSION, keys::META_CUTOFF, keys::META_SPECIES,
                        keys::META_ATOMIC_NUMBERS, keys::META_DTYPE, keys::META_UNITS,
                        keys::META_UNCERTAINTY, keys::META_FEATURE_DIM,
                        keys::META_ATOMIC_FEATURE_DIM, keys::META_MODEL_HASH})
    extra[k] = "";
  try {
    module_ = torch::jit::load(path, device_, extra);
  } catch (const c10::Error &e) {
    std::string why = e.what_without_backtrace();
    why = why.substr(0, std::min(why.find('\n'), why.find(". ")));    // libtorch's first sentence
    throw Error("'" + path + "' is not a ubmd model file (a TorchScript archive written by `ubmd "
                "export`; members.pt and training checkpoints are not): " + why);
  }
  meta_ = parse_metadata(extra);

  dtype_ = dtype_from_name(dtype.empty() ? meta_.dtype : dtype);
  module_.eval();
  if (dtype_ != dtype_from_name(meta_.dtype)) {
    // cast floating-point parameters and buffers only (Module::to(dtype) would also turn
    // integer index buffers into floats)
    for (auto sub : module_.modules()) {
      for (const auto &b : sub.named_buffers(false))
        if (b.value.is_floating_point()) sub.register_buffer(b.name, b.value.to(dtype_));
      for (const auto &p : sub.named_parameters(false))
        if (p.value.is_floating_point())
          sub.register_parameter(p.name, p.value.detach().to(dtype_), false);
    }
  }

  if (!module_.find_method(keys::METHOD_ATOMIC))
    throw Error("model file has no TorchScript method 'atomic'" + reexport);
  if (has_uncertainty() && !module_.find_method(keys::METHOD_TOTAL_UNCERTAINTY))
    throw Error("model file declares uncertainty '" + meta_.uncertainty +
                "' but has no method 'total_uncertainty'" + reexport);
  has_atomic_unc_method_ = static_cast<bool>(module_.find_method(keys::METHOD_ATOMIC_UNCERTAINTY));
  has_parts_methods_ = module_.find_method(keys::METHOD_ATOMIC_PARTS).has_value() &&
                       module_.find_method(keys::METHOD_FEATURE_CONTRACTION).has_value();
  has_state_methods_ = module_.find_method(keys::METHOD_ATOMIC_STATE).has_value() &&
                       module_.find_method(keys::METHOD_STATE_GRADIENTS).has_value();
}

/* ---------------------------------------------------------------------- */

Evaluation::Evaluation(Model &model) : model_(model)
{
  const char *env = std::getenv("UBMD_FEATURE_CONTRACTION");
  if (env && std::string(env) == "0") use_contraction_ = false;
  env = std::getenv("UBMD_ONE_PASS");
  if (env && std::string(env) == "0") use_one_pass_ = false;
}

int Model::species_index(const std::string &symbol) const
{
  for (size_t i = 0; i < meta_.species.size(); i++)
    if (meta_.species[i] == symbol) return static_cast<int>(i);
  return -1;
}

std::string Model::dtype_name() const { return dtype_ == torch::kFloat32 ? "float32" : "float64"; }

/* ---------------------------------------------------------------------- */

void Evaluation::edges_to_nodes(const std::vector<double> &g, std::vector<double> &nodes,
                                double sign) const
{
  // nodes = sign * dX/dr with dX/dr_i = sum_{e: nb_e = i} g_e - sum_{e: c_e = i} g_e
  nodes.assign(3 * graph_.n_nodes, 0.0);
  for (int64_t e = 0; e < graph_.n_edges; e++) {
    const int64_t i = graph_.centre[e], j = graph_.neighbour[e];
    for (int d = 0; d < 3; d++) {
      const double v = sign * g[3 * e + d];
      nodes[3 * j + d] += v;
      nodes[3 * i + d] -= v;
    }
  }
}

void Evaluation::forward(const Graph &graph, bool with_features, bool keep_graph,
                         bool atomic_features)
{
  graph_ = graph;
  have_features_ = false;
  contracted_ = false;
  graph_kept_ = false;
  one_pass_ = false;
  energy_pending_ = false;
  state_ = c10::IValue();
  features_ = torch::Tensor();
  local_sum_ = torch::Tensor();
  parts_.clear();
  u_ = 0.0;
  n_global_ = 0.0;
  dudr_.assign(3 * graph.n_nodes, 0.0);
  dudeps_.fill(0.0);
  gU_.assign(3 * graph.n_edges, 0.0);
  virial_.fill(0.0);
  energy_ = 0.0;
  eatom_.assign(graph.n_local, 0.0);
  forces_.assign(3 * graph.n_nodes, 0.0);
  gE_.assign(3 * graph.n_edges, 0.0);

  const auto dev = model_.device();
  const auto dt = model_.dtype();
  const int64_t K = model_.metadata().feature_dim;
  with_features = with_features && model_.has_uncertainty();

  if (graph.n_local == 0) {
    // nothing to evaluate here; features of zero atoms
    if (with_features) {
      features_ = torch::zeros({0, K}, torch::TensorOptions().dtype(dt).device(dev));
      have_features_ = true;
    }
    edge_vec_ = torch::Tensor();
    return;
  }

  for (int64_t s = 0; s < graph.n_nodes; s++)
    if (graph.species[s] < 0 || graph.species[s] >= model_.num_species())
      throw Error("species index " + std::to_string(graph.species[s]) + " out of range");

  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  // from_blob does not copy: clone through .to()
  torch::Tensor ev = torch::from_blob(const_cast<double *>(graph.edge_vec), {graph.n_edges, 3}, f64)
                         .to(dev, dt, false, true);
  torch::Tensor idx = torch::empty({2, graph.n_edges}, i64);
  if (graph.n_edges) {
    std::copy(graph.centre, graph.centre + graph.n_edges, idx.data_ptr<int64_t>());
    std::copy(graph.neighbour, graph.neighbour + graph.n_edges, idx.data_ptr<int64_t>() + graph.n_edges);
  }
  idx = idx.to(dev);
  torch::Tensor species = torch::from_blob(const_cast<int64_t *>(graph.species), {graph.n_nodes}, i64)
                              .to(dev, torch::kInt64, false, true);
  if (uses_one_pass()) {
    edge_vec_ = ev;
    forward_one_pass(ev, idx, species, with_features, keep_graph, atomic_features);
    return;
  }
  ev.requires_grad_(true);
  edge_vec_ = ev;

  auto check_features = [&](const char *method) {
    if (features_.dim() != 2 || features_.size(0) != graph.n_local || features_.size(1) != K)
      throw Error(std::string("model method '") + method + "' returned features of shape " +
                  c10::str(features_.sizes()) + ", expected [" + std::to_string(graph.n_local) +
                  ", " + std::to_string(K) + "] (feature_dim in the metadata)");
    have_features_ = true;
  };
  torch::Tensor energies;
  contracted_ = with_features && uses_contraction();
  if (contracted_) {
    auto out = model_.module()
                   .get_method(keys::METHOD_ATOMIC_PARTS)(
                       {ev, idx, species, graph.n_local, atomic_features})
                   .toTuple();
    if (out->elements().size() != 4)
      throw Error("model method 'atomic_parts' must return (energies, feature sum, per-atom "
                  "features, parts)");
    energies = out->elements()[0].toTensor();
    local_sum_ = out->elements()[1].toTensor().detach();
    if (local_sum_.numel() != K)
      throw Error("model method 'atomic_parts' returned a feature sum of " +
                  std::to_string(local_sum_.numel()) + " values, expected feature_dim = " +
                  std::to_string(K));
    if (atomic_features) {
      features_ = out->elements()[2].toTensor().detach();
      check_features(keys::METHOD_ATOMIC_PARTS);
    }
    if (keep_graph) parts_ = out->elements()[3].toTensorVector();
  } else {
    auto out = model_.module()
                   .get_method(keys::METHOD_ATOMIC)({ev, idx, species, graph.n_local, with_features})
                   .toTuple();
    energies = out->elements()[0].toTensor();
    if (with_features) {
      features_ = out->elements()[1].toTensor();
      check_features(keys::METHOD_ATOMIC);
    }
  }
  if (energies.dim() != 1 || energies.size(0) != graph.n_local)
    throw Error("model method '" +
                std::string(contracted_ ? keys::METHOD_ATOMIC_PARTS : keys::METHOD_ATOMIC) +
                "' returned energies of shape " + c10::str(energies.sizes()) + ", expected [" +
                std::to_string(graph.n_local) + "]");

  to_host(energies, eatom_);
  energy_ = std::accumulate(eatom_.begin(), eatom_.end(), 0.0);
  if (!std::isfinite(energy_))
    throw Error("the model returned a non-finite energy (atoms too close or outside the "
                "training domain?)");

  if (graph.n_edges > 0 && energies.requires_grad()) {
    graph_kept_ = with_features && keep_graph;
    auto grads = torch::autograd::grad({energies.sum()}, {ev}, {}, /*retain_graph=*/graph_kept_,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    if (grads[0].defined()) to_host(grads[0], gE_);
  }
  finish_energy_gradient();
}

void Evaluation::finish_energy_gradient() const
{
  edges_to_nodes(gE_, forces_, -1.0);
  virial_.fill(0.0);
  for (int64_t e = 0; e < graph_.n_edges; e++)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) virial_[3 * a + b] -= graph_.edge_vec[3 * e + a] * gE_[3 * e + b];
}

/* The one-pass path: atomic_state without autograd, the gradients from its state (one
   state_gradients call for the energy and, with a bias, du/dR). */
void Evaluation::forward_one_pass(const torch::Tensor &ev, const torch::Tensor &idx,
                                  const torch::Tensor &species, bool with_features,
                                  bool keep_graph, bool atomic_features)
{
  const int64_t K = model_.metadata().feature_dim;
  torch::NoGradGuard no_grad;
  auto out = model_.module()
                 .get_method(keys::METHOD_ATOMIC_STATE)(
                     {ev, idx, species, graph_.n_local, with_features, atomic_features && with_features})
                 .toTuple();
  if (out->elements().size() != 4)
    throw Error("model method 'atomic_state' must return (energies, feature sum, per-atom "
                "features, state)");
  torch::Tensor energies = out->elements()[0].toTensor();
  if (energies.dim() != 1 || energies.size(0) != graph_.n_local)
    throw Error("model method 'atomic_state' returned energies of shape " +
                c10::str(energies.sizes()) + ", expected [" + std::to_string(graph_.n_local) + "]");
  state_ = out->elements()[3];
  one_pass_ = true;
  if (with_features) {
    local_sum_ = out->elements()[1].toTensor();
    if (local_sum_.numel() != K)
      throw Error("model method 'atomic_state' returned a feature sum of " +
                  std::to_string(local_sum_.numel()) + " values, expected feature_dim = " +
                  std::to_string(K));
    contracted_ = true;    // total_uncertainty takes local_sum_
    if (atomic_features) {
      features_ = out->elements()[2].toTensor();
      if (features_.dim() != 2 || features_.size(0) != graph_.n_local || features_.size(1) != K)
        throw Error("model method 'atomic_state' returned features of shape " +
                    c10::str(features_.sizes()) + ", expected [" + std::to_string(graph_.n_local) +
                    ", " + std::to_string(K) + "] (feature_dim in the metadata)");
      have_features_ = true;
    }
  }
  to_host(energies, eatom_);
  energy_ = std::accumulate(eatom_.begin(), eatom_.end(), 0.0);
  if (!std::isfinite(energy_))
    throw Error("the model returned a non-finite energy (atoms too close or outside the "
                "training domain?)");
  graph_kept_ = with_features && keep_graph;
  energy_pending_ = true;
  if (!graph_kept_) settle_energy_gradient();    // no bias gradient will follow
}

void Evaluation::settle_energy_gradient() const
{
  if (!energy_pending_) return;
  energy_pending_ = false;
  torch::NoGradGuard no_grad;
  auto empty = torch::zeros({0}, torch::TensorOptions().dtype(model_.dtype()).device(model_.device()));
  auto g = model_.module().get_method(keys::METHOD_STATE_GRADIENTS)({state_, empty}).toTensor();
  if (g.dim() != 3 || g.size(0) < 1 || g.size(1) != graph_.n_edges || g.size(2) != 3)
    throw Error("model method 'state_gradients' returned gradients of shape " +
                c10::str(g.sizes()) + ", expected [1, " + std::to_string(graph_.n_edges) + ", 3]");
  to_host(g[0], gE_);
  if (!graph_kept_) state_ = c10::IValue();
  finish_energy_gradient();
}

void Evaluation::atomic_uncertainty(std::vector<double> &out)
{
  out.assign(graph_.n_local, 0.0);
  if (!have_features_ || graph_.n_local == 0 || !model_.has_atomic_uncertainty()) return;
  torch::NoGradGuard ng;
  auto au = model_.module()
                .get_method(keys::METHOD_ATOMIC_UNCERTAINTY)({features_.detach()})
                .toTensor();
  if (au.numel() != graph_.n_local)
    throw Error("model method 'atomic_uncertainty' returned " + std::to_string(au.numel()) +
                " values for " + std::to_string(graph_.n_local) + " atoms");
  to_host(au, out);
}

double Evaluation::total_uncertainty(Reducer &reducer, bool with_gradient)
{
  if (!have_features_ && !contracted_)    // the sum comes from features_ or from atomic_parts
    throw Error("total_uncertainty needs forward(..., with_features=true)");
  const int64_t K = model_.metadata().feature_dim;
  std::vector<double> buf(K + 1, 0.0);
  torch::Tensor local_sum;
  if (graph_.n_local > 0) {
    local_sum = contracted_ ? local_sum_ : features_.sum(0);
    std::vector<double> h;
    to_host(local_sum, h);
    std::copy(h.begin(), h.end(), buf.begin());
  }
  buf[K] = static_cast<double>(graph_.n_local);
  reducer.allreduce_sum(buf.data(), static_cast<int>(K + 1));
  n_global_ = buf[K];
  if (n_global_ <= 0.0) return u_ = 0.0;

  auto phi_sum = torch::from_blob(buf.data(), {K}, torch::TensorOptions().dtype(torch::kFloat64))
                     .to(model_.device(), model_.dtype(), false, true);
  auto out = model_.module()
                 .get_method(keys::METHOD_TOTAL_UNCERTAINTY)({phi_sum, n_global_})
                 .toTuple();
  torch::Tensor u = out->elements()[0].toTensor();
  torch::Tensor v = out->elements()[1].toTensor().detach();
  if (v.numel() != K)
    throw Error("model method 'total_uncertainty' returned a gradient of " +
                std::to_string(v.numel()) + " values, expected feature_dim = " + std::to_string(K));
  u_ = u.detach().to(torch::kCPU, torch::kFloat64).item<double>();

  if (!with_gradient) return u_;
  if (one_pass_ && graph_.n_local > 0) {
    if (!graph_kept_)
      throw Error("total_uncertainty with a gradient needs forward(..., keep_graph=true), once "
                  "per forward");
    torch::NoGradGuard no_grad;
    auto g = model_.module()
                 .get_method(keys::METHOD_STATE_GRADIENTS)({state_, v.reshape({K})})
                 .toTensor();
    if (g.dim() != 3 || g.size(0) != 2 || g.size(1) != graph_.n_edges || g.size(2) != 3)
      throw Error("model method 'state_gradients' returned gradients of shape " +
                  c10::str(g.sizes()) + ", expected [2, " + std::to_string(graph_.n_edges) +
                  ", 3]");
    to_host(g[1], gU_);
    if (energy_pending_) {
      energy_pending_ = false;
      to_host(g[0], gE_);
      finish_energy_gradient();
    }
    graph_kept_ = false;
    state_ = c10::IValue();
  } else if (graph_.n_local > 0 && graph_.n_edges > 0 && (contracted_ || local_sum.requires_grad())) {
    // the graph (and atomic_parts' parts) exist only after forward(..., keep_graph=true) and
    // are used up by one back-propagation
    if (!graph_kept_ || (contracted_ && parts_.empty()))
      throw Error("total_uncertainty with a gradient needs forward(..., keep_graph=true), once "
                  "per forward");
    torch::Tensor target =
        contracted_ ? model_.module()
                          .get_method(keys::METHOD_FEATURE_CONTRACTION)({parts_, v.reshape({K})})
                          .toTensor()
                    : (local_sum * v.reshape({K})).sum();
    if (target.requires_grad()) {
      auto g = torch::autograd::grad({target}, {edge_vec_}, {}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
      if (g[0].defined()) to_host(g[0], gU_);
    }
    graph_kept_ = false;
    parts_.clear();
  }
  edges_to_nodes(gU_, dudr_, 1.0);
  dudeps_.fill(0.0);
  for (int64_t e = 0; e < graph_.n_edges; e++)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) dudeps_[3 * a + b] += graph_.edge_vec[3 * e + a] * gU_[3 * e + b];
  return u_;
}

void Evaluation::node_virial(double c_energy, double c_unc, std::vector<double> &out) const
{
  settle_energy_gradient();
  out.assign(6 * graph_.n_nodes, 0.0);
  static const int ia[6] = {0, 1, 2, 0, 0, 1}, ib[6] = {0, 1, 2, 1, 2, 2};
  for (int64_t e = 0; e < graph_.n_edges; e++) {
    const double *r = graph_.edge_vec + 3 * e;
    const double *ge = gE_.data() + 3 * e;
    const double *gu = gU_.data() + 3 * e;
    const int64_t i = graph_.centre[e], j = graph_.neighbour[e];
    for (int k = 0; k < 6; k++) {
      const double w = 0.5 * (-c_energy * r[ia[k]] * ge[ib[k]] + c_unc * r[ia[k]] * gu[ib[k]]);
      out[6 * i + k] += w;
      out[6 * j + k] += w;
    }
  }
}

}    // namespace ubmd
