/* Names shared with the Python side: mirror of python/ubmd/keys.py (model-file part).
   See docs/model_file.md for the contract. */
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

// uncertainty kinds
constexpr const char *UNCERTAINTY_NONE = "none";
constexpr const char *UNCERTAINTY_KINDS[] = {"none", "posterior", "distance", "ensemble"};

// result names shared with the ASE calculator (keys.py)
constexpr const char *UNCERTAINTY = "uncertainty";
constexpr const char *ATOMIC_UNCERTAINTY = "atomic_uncertainty";
constexpr const char *BIAS_ENERGY = "bias_energy";
constexpr const char *SCALE_FORCES = "bias_scale_forces";
constexpr const char *SCALE_STRESS = "bias_scale_stress";

}    // namespace keys
}    // namespace ubmd

#endif
