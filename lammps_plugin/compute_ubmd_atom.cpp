/* ----------------------------------------------------------------------
   compute ID group ubmd/atom
   per-atom calibrated uncertainty (pair_style ubmd), 0 for atoms outside the group or not
   handled by ubmd. Usable by dump custom, compute reduce max, variables and fix halt.
------------------------------------------------------------------------- */

#include "compute_ubmd_atom.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "pair_ubmd.h"
#include "update.h"

using namespace LAMMPS_NS;

ComputeUBMDAtom::ComputeUBMDAtom(LAMMPS *lmp, int narg, char **arg) :
    Compute(lmp, narg, arg), pair(nullptr), nsub(0), nmax(0), unc(nullptr)
{
  if (narg != 3 && narg != 4)
    error->all(FLERR, "Illegal compute ubmd/atom command: compute ID group ubmd/atom [N]");
  // N: which pair ubmd instance under pair_style hybrid with several ubmd sub-styles
  if (narg == 4) {
    nsub = utils::inumeric(FLERR, arg[3], false, lmp);
    if (nsub < 1) error->all(FLERR, "Compute ubmd/atom: instance N must be >= 1");
  }
  peratom_flag = 1;
  size_peratom_cols = 0;
}

ComputeUBMDAtom::~ComputeUBMDAtom()
{
  memory->destroy(unc);
}

void ComputeUBMDAtom::init()
{
  // pair_match ignores N when there is a single ubmd style: N > 1 must name one of several
  if (nsub > 1 && force->pair_match("ubmd", 1, 0))
    error->all(FLERR, "Compute ubmd/atom: instance {} given, but pair_style {} has a single ubmd "
               "style (N is for pair_style hybrid with several ubmd sub-styles)", nsub,
               force->pair_style);
  pair = dynamic_cast<PairUBMD *>(force->pair_match("ubmd", 1, nsub));
  if (!pair) {
    if (nsub == 0 && force->pair_match("ubmd", 1, 1))
      error->all(FLERR, "Compute ubmd/atom: pair_style hybrid has several ubmd sub-styles; give "
                 "the instance: compute ID group ubmd/atom N (N = 1, 2, ... as in pair_coeff "
                 "* * ubmd N)");
    if (nsub > 0)
      error->all(FLERR, "Compute ubmd/atom: pair_style hybrid has no ubmd sub-style {}", nsub);
    error->all(FLERR, "Compute ubmd/atom requires pair_style ubmd");
  }
  int dim = 0;
  if (!pair->extract(ubmd::keys::EXTRACT_UNCERTAINTY, dim))
    error->all(FLERR, "Compute ubmd/atom: bad pair style");
  if (!pair->atomic_uncertainty_enabled())
    error->all(FLERR, "Compute ubmd/atom: pair ubmd computes no per-atom uncertainties (the model "
               "has no atomic uncertainty, or pair_style ubmd uncertainty none was given)");
}

void ComputeUBMDAtom::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  if (pair->atomic_uncertainty_step() != update->ntimestep)
    error->all(FLERR, "Compute ubmd/atom: pair ubmd did not compute atomic uncertainties on "
               "step {} (with pair_style ubmd every N, request it on multiples of N only)",
               update->ntimestep);
  // values are indexed like the local atoms of that step: refuse if atoms were added, deleted
  // or reordered since (delete_atoms, create_atoms, reset_atoms after run 0); atoms lost through
  // thermo_modify lost ignore are gone before the forces of the step and do not count
  int stale = pair->atomic_uncertainty_current() ? 0 : 1, any_stale = 0;
  MPI_Allreduce(&stale, &any_stale, 1, MPI_INT, MPI_MAX, world);
  if (any_stale)
    error->all(FLERR, "Compute ubmd/atom: atoms were added or deleted (or reordered) since pair "
               "ubmd computed the uncertainties of step {}; run 0 first", update->ntimestep);

  if (atom->nmax > nmax) {
    nmax = atom->nmax;
    memory->destroy(unc);
    memory->create(unc, nmax, "ubmd/atom:unc");
    vector_atom = unc;
  }
  const double *src = pair->atomic_uncertainty_array();
  const int *mask = atom->mask;
  for (int i = 0; i < atom->nlocal; i++) unc[i] = (mask[i] & groupbit) ? src[i] : 0.0;
}

double ComputeUBMDAtom::memory_usage()
{
  return (double) nmax * sizeof(double);
}
