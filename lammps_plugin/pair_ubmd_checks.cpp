/* ----------------------------------------------------------------------
   pair_style ubmd: checks of the input deck (members of PairUBMD; see pair_ubmd.cpp).
   The model needs every atom pair within its cutoff and a type map that fits the data:
   settings that silently change its energies and forces are refused with an error that says
   what to change, doubtful ones (type masses, hybrid sub-style assignments) give a warning.
------------------------------------------------------------------------- */

#include "pair_ubmd.h"

#include "element_masses.h"
#include "ubmd_core.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   init_style(): what the style needs of the deck (units, newton, IDs, a model), pair_modify
   settings without effect, and no bias under minimize
------------------------------------------------------------------------- */

void PairUBMD::check_init_style()
{
  namespace keys = ubmd::keys;
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "Pair style ubmd requires 'units metal' (models are in eV and Angstrom), "
               "not units {}", update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "Pair style ubmd requires newton pair on (ghost-atom forces are summed "
               "by reverse communication)");
  if (atom->tag_enable == 0) error->all(FLERR, "Pair style ubmd requires atom IDs");
  if (!model) error->all(FLERR, "Pair style ubmd: pair_coeff * * model.pt El ... was not given");
  // under hybrid, pair_modify shift/tail go to every sub-style (meant for the others): no warning
  if ((tail_flag || offset_flag) && force->pair == this && !tailshift_warned && comm->me == 0)
    error->warning(FLERR, "Pair style ubmd: pair_modify {} has no effect on pair_style ubmd (a "
                   "strictly local many-body model: no energy shift at the cutoff, no tail "
                   "correction)", tail_flag && offset_flag ? "shift yes and tail yes"
                   : tail_flag ? "tail yes" : "shift yes");
  if (tail_flag || offset_flag) tailshift_warned = 1;
  if (bias.active() && update->whichflag == 2)
    error->all(FLERR, "Pair style ubmd: a bias ({}/{}) cannot be used with minimize (the biased "
               "forces are not the gradient of the reported energy, and the adaptive scale "
               "changes on every evaluation); minimize with `pair_style ubmd` without {} and {}, "
               "then re-issue the biased pair_style before run", keys::PAIR_KW_TAU_FORCES,
               keys::PAIR_KW_TAU_STRESS, keys::PAIR_KW_TAU_FORCES, keys::PAIR_KW_TAU_STRESS);
}

/* the UNC_* mode to compute: the requested one, limited by what the model has; an explicit
   request the model cannot serve (and any bias without an uncertainty) is an error */

int PairUBMD::uncertainty_mode() const
{
  namespace keys = ubmd::keys;
  int mode = unc_request;
  if (!model->has_uncertainty()) {
    if (bias.active())
      error->all(FLERR, "Pair style ubmd: {}/{} need a model with uncertainty, but {} has "
                 "uncertainty '{}'", keys::PAIR_KW_TAU_FORCES, keys::PAIR_KW_TAU_STRESS,
                 model->path(), model->metadata().uncertainty);
    if (unc_mode_set && mode != UNC_NONE)
      error->all(FLERR, "Pair style ubmd: model {} has no uncertainty; use {} {}", model->path(),
                 keys::PAIR_KW_UNCERTAINTY, keys::UNCERTAINTY_MODE_NONE);
    return UNC_NONE;
  }
  if ((mode & UNC_ATOMIC) && !model->has_atomic_uncertainty()) {
    if (unc_mode_set)
      error->all(FLERR, "Pair style ubmd: model {} has no method {}", model->path(),
                 keys::METHOD_ATOMIC_UNCERTAINTY);
    mode &= ~UNC_ATOMIC;
  }
  return mode;
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

