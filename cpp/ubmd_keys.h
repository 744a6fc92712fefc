/* Names shared with the Python side: mirror of python/ubmd/keys.py (model-file part, the
   LAMMPS-facing names of pair_style ubmd). See docs/model_file.md for the contract and
   docs/pair_ubmd.rst for the pair style. tests/test_keys_mirror.py checks that every constant
   here is in keys.py with the same value: add a name on both sides. */
#ifndef UBMD_KEYS_H
#define UBMD_KEYS_H

namespace ubmd {
namespace keys {

constexpr int MODEL_FORMAT_VERSION = 1;

// TorchScript extra files (metadata strings)
constexpr const char *META_FORMAT_VERSION = "format_version";
constexpr const char *META_CUTOFF = "cutoff";
constexpr const char *META_SPECIES = "species";
constexpr const char *META_ATOMIC_NUMBERS = "atomic_numbers";
constexpr const char *META_DTYPE = "dtype";
constexpr const char *META_UNITS = "units";
constexpr const char *META_UNCERTAINTY = "uncertainty";
constexpr const char *META_FEATURE_DIM = "feature_dim";
constexpr const char *META_ATOMIC_FEATURE_DIM = "atomic_feature_dim";
constexpr const char *META_MODEL_HASH = "model_hash";
constexpr const char *META_JSON = "metadata.json";

// TorchScript methods
constexpr const char *METHOD_ATOMIC = "atomic";
constexpr const char *METHOD_TOTAL_UNCERTAINTY = "total_uncertainty";
constexpr const char *METHOD_ATOMIC_UNCERTAINTY = "atomic_uncertainty";
// optional pair: feature sum + parts, and v . sum_i phi_i from the parts (cheaper bias gradient)
constexpr const char *METHOD_ATOMIC_PARTS = "atomic_parts";
constexpr const char *METHOD_FEATURE_CONTRACTION = "feature_contraction";
// optional pair: the one-pass path (no autograd): energies, feature sum and a state, then the
// energy gradient and the bias gradient from the state in one traversal (issue #25)
constexpr const char *METHOD_ATOMIC_STATE = "atomic_state";
constexpr const char *METHOD_STATE_GRADIENTS = "state_gradients";

// uncertainty kinds
constexpr const char *UNCERTAINTY_NONE = "none";
constexpr const char *UNCERTAINTY_KINDS[] = {"none", "posterior", "distance", "ensemble"};

// result names shared with the ASE calculator (keys.py)
constexpr const char *UNCERTAINTY = "uncertainty";
constexpr const char *ATOMIC_UNCERTAINTY = "atomic_uncertainty";
constexpr const char *BIAS_ENERGY = "bias_energy";
constexpr const char *SCALE_FORCES = "bias_scale_forces";
constexpr const char *SCALE_STRESS = "bias_scale_stress";

// pair_style ubmd: Pair::extract() names (global scalars, identical on every rank)
constexpr const char *EXTRACT_UNCERTAINTY = UNCERTAINTY;           // u, eV/atom
constexpr const char *EXTRACT_BIAS_ENERGY = BIAS_ENERGY;           // -tau_F s_F u, eV
constexpr const char *EXTRACT_SCALE_FORCES = SCALE_FORCES;         // s_F
constexpr const char *EXTRACT_SCALE_STRESS = SCALE_STRESS;         // s_sigma
constexpr const char *EXTRACT_MAX_ATOMIC_UNCERTAINTY = "max_atomic_uncertainty";
constexpr const char *EXTRACT_CUTOFF = "cutoff";                   // model cutoff, Å
// int trigger: fix pair sets it to ask for the per-atom uncertainties on its steps
constexpr const char *EXTRACT_UNCERTAINTY_FLAG = "uncertainty_flag";
// Pair::extract_peratom() name: per-atom calibrated uncertainty u_i of the local atoms
constexpr const char *EXTRACT_PERATOM_UNCERTAINTY = "uncertainty";

// compute ID all pair ubmd: global vector, column k of c_ID[k] (1-based, as LAMMPS writes it)
constexpr int PAIR_COLUMN_UNCERTAINTY = 1;
constexpr int PAIR_COLUMN_BIAS_ENERGY = 2;
constexpr int PAIR_COLUMN_SCALE_FORCES = 3;
constexpr int PAIR_COLUMN_SCALE_STRESS = 4;
constexpr int PAIR_COLUMN_MAX_ATOMIC_UNCERTAINTY = 5;
constexpr int PAIR_NUM_COLUMNS = 5;
// the extract() name of each column, in column order
constexpr const char *PAIR_COLUMNS[] = {EXTRACT_UNCERTAINTY, EXTRACT_BIAS_ENERGY,
                                        EXTRACT_SCALE_FORCES, EXTRACT_SCALE_STRESS,
                                        EXTRACT_MAX_ATOMIC_UNCERTAINTY};

// pair_style ubmd uncertainty MODE: what is computed
constexpr const char *UNCERTAINTY_MODE_BOTH = "both";      // total u and per-atom u_i (default)
constexpr const char *UNCERTAINTY_MODE_ATOMIC = "atomic";  // per-atom u_i only
constexpr const char *UNCERTAINTY_MODE_NONE = "none";      // plain potential
constexpr const char *UNCERTAINTY_MODE_TOTAL = "total";    // older name of both, kept as alias
constexpr const char *UNCERTAINTY_MODES[] = {UNCERTAINTY_MODE_BOTH, UNCERTAINTY_MODE_ATOMIC,
                                             UNCERTAINTY_MODE_NONE};

// pair_style ubmd keywords (docs/pair_ubmd.rst)
constexpr const char *PAIR_KW_TAU_FORCES = "tau_forces";
constexpr const char *PAIR_KW_TAU_STRESS = "tau_stress";
constexpr const char *PAIR_KW_TAU_FORCES_ALIAS = "bias_forces";    // older name, kept
constexpr const char *PAIR_KW_TAU_STRESS_ALIAS = "bias_stress";    // older name, kept
constexpr const char *PAIR_KW_WINDOW = "window";
constexpr const char *PAIR_KW_FIXED_SCALES = "fixed_scales";
constexpr const char *PAIR_KW_WEIGHTS = "weights";
constexpr const char *PAIR_KW_UNCERTAINTY = "uncertainty";
constexpr const char *PAIR_KW_EVERY = "every";
constexpr const char *PAIR_KW_DEVICE = "device";
constexpr const char *PAIR_KW_DTYPE = "dtype";
constexpr const char *PAIR_KEYWORDS[] = {PAIR_KW_TAU_FORCES, PAIR_KW_TAU_STRESS, PAIR_KW_WINDOW,
                                         PAIR_KW_FIXED_SCALES, PAIR_KW_WEIGHTS,
                                         PAIR_KW_UNCERTAINTY, PAIR_KW_EVERY, PAIR_KW_DEVICE,
                                         PAIR_KW_DTYPE};

}    // namespace keys
}    // namespace ubmd

#endif
