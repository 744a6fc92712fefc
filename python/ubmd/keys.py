"""Names shared across the package and with the C++ side (mirrored in ``cpp/ubmd_keys.h``).

Shapes: N atoms in a batch, E edges, B structures, K feature dimension.
"""

# --- batch / graph tensors (python side) ---------------------------------------------------
POSITIONS = "positions"  # [N, 3] float, Å
SPECIES = "species"  # [N] int64, model species index 0..S-1
ATOMIC_NUMBERS = "atomic_numbers"  # [N] int64
EDGE_INDEX = "edge_index"  # [2, E] int64, (centre i, neighbour j)
SHIFTS = "shifts"  # [E, 3] int64 or float, integer cell shifts S: r_ij = r_j - r_i + S @ cell
CELL = "cell"  # [B, 3, 3] float, Å (rows are lattice vectors)
PBC = "pbc"  # [B, 3] bool
BATCH = "batch"  # [N] int64, structure index of each atom
N_ATOMS = "n_atoms"  # [B] int64

# --- labels / predictions -----------------------------------------------------------------
ENERGY = "energy"  # [B] eV
FORCES = "forces"  # [N, 3] eV/Å
STRESS = "stress"  # [B, 3, 3] eV/Å^3 (ASE sign convention: positive = tensile)
VIRIAL = "virial"  # [B, 3, 3] eV  (W = -dE/deps = -V * stress)
# label masks of a batch (python side only): which structures / atoms carry the label; the
# label tensors are zero-filled where the mask is False
ENERGY_MASK = "energy_mask"  # [B] bool
FORCES_MASK = "forces_mask"  # [N] bool (per atom: all atoms of a structure with forces)
VIRIAL_MASK = "virial_mask"  # [B] bool
ATOMIC_ENERGIES = "atomic_energies"  # [N] eV
FEATURES = "features"  # [N, K] per-atom gradient features
STRUCTURE_FEATURES = "structure_features"  # [B, K] mean over atoms

# --- uncertainty / bias results (ASE calculator extra results) ----------------------------
UNCERTAINTY = "uncertainty"  # float, calibrated total uncertainty u (eV/atom)
ATOMIC_UNCERTAINTY = "atomic_uncertainty"  # [N] calibrated per-atom uncertainty
BIAS_ENERGY = "bias_energy"  # float, -tau_F * s_F * u (eV); NOT included in "energy"
BIAS_FORCES = "bias_forces"  # [N, 3] eV/Å, already included in "forces" when bias is on
BIAS_STRESS = "bias_stress"  # [6] Voigt, eV/Å^3, already included in "stress" when on
UNBIASED_FORCES = "unbiased_forces"
UNBIASED_STRESS = "unbiased_stress"
SCALE_FORCES = "bias_scale_forces"  # s_F
SCALE_STRESS = "bias_scale_stress"  # s_sigma

# --- model file (TorchScript extra files; see docs/model_file.md) ---------------------------
MODEL_FORMAT_VERSION = 1
META_FORMAT_VERSION = "format_version"
META_CUTOFF = "cutoff"
META_SPECIES = "species"
META_ATOMIC_NUMBERS = "atomic_numbers"
META_DTYPE = "dtype"
META_UNITS = "units"
META_UNCERTAINTY = "uncertainty"
META_FEATURE_DIM = "feature_dim"
META_ATOMIC_FEATURE_DIM = "atomic_feature_dim"
META_MODEL_HASH = "model_hash"
META_JSON = "metadata.json"
META_KEYS = (
    META_FORMAT_VERSION,
    META_CUTOFF,
    META_SPECIES,
    META_ATOMIC_NUMBERS,
    META_DTYPE,
    META_UNITS,
    META_UNCERTAINTY,
    META_FEATURE_DIM,
    META_ATOMIC_FEATURE_DIM,
    META_MODEL_HASH,
    META_JSON,
)

UNCERTAINTY_KINDS = ("none", "posterior", "distance", "ensemble")
FEATURE_KINDS = ("last_layer", "sketch")

# --- choices of the config schema (names only; the code that implements each lives in its layer)
DTYPES = ("float32", "float64")  # training and export dtypes
CALIBRATION_METHODS = ("conformal", "max_likelihood", "log_regression")  # ubmd.uncertainty.calibration
SELECTION_METHODS = ("random", "max_diag", "max_det", "max_dist", "lcmd")  # ubmd.selection
ENSEMBLE_FEATURES = "energies"  # feature map of ensemble uncertainty: the members' atomic energies
