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

# uncertainty kinds (metadata "uncertainty")
UNCERTAINTY_NONE = "none"
UNCERTAINTY_KINDS = ("none", "posterior", "distance", "ensemble")
FEATURE_KINDS = ("last_layer", "sketch")

# --- TorchScript methods of a model file (docs/model_file.md) -----------------------------
METHOD_ATOMIC = "atomic"
METHOD_TOTAL_UNCERTAINTY = "total_uncertainty"
METHOD_ATOMIC_UNCERTAINTY = "atomic_uncertainty"
# optional pair: feature sum + parts, and v . sum_i phi_i from the parts (cheaper bias gradient)
METHOD_ATOMIC_PARTS = "atomic_parts"
METHOD_FEATURE_CONTRACTION = "feature_contraction"
# optional pair: the one-pass path (no autograd): energies, feature sum and a state, then the
# energy gradient and the bias gradient from the state in one traversal (issue #25)
METHOD_ATOMIC_STATE = "atomic_state"
METHOD_STATE_GRADIENTS = "state_gradients"

# --- pair_style ubmd (LAMMPS; docs/pair_ubmd.rst) -------------------------------------------
# Pair::extract() names (global scalars, identical on every rank)
EXTRACT_UNCERTAINTY = UNCERTAINTY  # u, eV/atom
EXTRACT_BIAS_ENERGY = BIAS_ENERGY  # -tau_F s_F u, eV
EXTRACT_SCALE_FORCES = SCALE_FORCES  # s_F
EXTRACT_SCALE_STRESS = SCALE_STRESS  # s_sigma
EXTRACT_MAX_ATOMIC_UNCERTAINTY = "max_atomic_uncertainty"
EXTRACT_CUTOFF = "cutoff"  # model cutoff, Å
# int trigger: fix pair sets it to ask for the per-atom uncertainties on its steps
EXTRACT_UNCERTAINTY_FLAG = "uncertainty_flag"
# Pair::extract_peratom() name: per-atom calibrated uncertainty u_i (fix pair N ubmd uncertainty 1)
EXTRACT_PERATOM_UNCERTAINTY = "uncertainty"

# compute ID all pair ubmd: global vector, column k of c_ID[k] (1-based, as LAMMPS writes it)
PAIR_COLUMN_UNCERTAINTY = 1
PAIR_COLUMN_BIAS_ENERGY = 2
PAIR_COLUMN_SCALE_FORCES = 3
PAIR_COLUMN_SCALE_STRESS = 4
PAIR_COLUMN_MAX_ATOMIC_UNCERTAINTY = 5
PAIR_NUM_COLUMNS = 5
# the extract() name of each column, in column order
PAIR_COLUMNS = (EXTRACT_UNCERTAINTY, EXTRACT_BIAS_ENERGY, EXTRACT_SCALE_FORCES,
                EXTRACT_SCALE_STRESS, EXTRACT_MAX_ATOMIC_UNCERTAINTY)

# pair_style ubmd uncertainty MODE: what is computed
UNCERTAINTY_MODE_BOTH = "both"  # total u and per-atom u_i (default)
UNCERTAINTY_MODE_ATOMIC = "atomic"  # per-atom u_i only
UNCERTAINTY_MODE_NONE = "none"  # plain potential
UNCERTAINTY_MODE_TOTAL = "total"  # older name of both, kept as alias
UNCERTAINTY_MODES = (UNCERTAINTY_MODE_BOTH, UNCERTAINTY_MODE_ATOMIC, UNCERTAINTY_MODE_NONE)

# pair_style ubmd keywords
PAIR_KW_TAU_FORCES = "tau_forces"
PAIR_KW_TAU_STRESS = "tau_stress"
PAIR_KW_TAU_FORCES_ALIAS = "bias_forces"  # older name, kept
PAIR_KW_TAU_STRESS_ALIAS = "bias_stress"  # older name, kept
PAIR_KW_WINDOW = "window"
PAIR_KW_FIXED_SCALES = "fixed_scales"
PAIR_KW_WEIGHTS = "weights"
PAIR_KW_UNCERTAINTY = "uncertainty"
PAIR_KW_EVERY = "every"
PAIR_KW_DEVICE = "device"
PAIR_KW_DTYPE = "dtype"
PAIR_KEYWORDS = (PAIR_KW_TAU_FORCES, PAIR_KW_TAU_STRESS, PAIR_KW_WINDOW, PAIR_KW_FIXED_SCALES,
                 PAIR_KW_WEIGHTS, PAIR_KW_UNCERTAINTY, PAIR_KW_EVERY, PAIR_KW_DEVICE,
                 PAIR_KW_DTYPE)


def pair_column(name: str, compute_id: str = "ubmd") -> str:
    """The LAMMPS reference to one value of ``compute <compute_id> all pair ubmd``, by its
    extract() name: ``pair_column(EXTRACT_SCALE_FORCES)`` -> ``"c_ubmd[3]"``."""
    if name not in PAIR_COLUMNS:
        raise ValueError(f"no compute pair ubmd column {name!r} (columns: "
                         f"{', '.join(PAIR_COLUMNS)})")
    return f"c_{compute_id}[{PAIR_COLUMNS.index(name) + 1}]"


# --- choices of the config schema (names only; the code that implements each lives in its layer)
DTYPES = ("float32", "float64")  # training and export dtypes
CALIBRATION_METHODS = ("conformal", "max_likelihood", "log_regression")  # ubmd.uncertainty.calibration
SELECTION_METHODS = ("random", "max_diag", "max_det", "max_dist", "lcmd")  # ubmd.selection
ENSEMBLE_FEATURES = "energies"  # feature map of ensemble uncertainty: the members' atomic energies
