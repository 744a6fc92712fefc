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
    Compute(lmp, narg, arg), pair(nullptr), nmax(0), unc(nullptr)
{
  if (narg != 3) error->all(FLERR, "Illegal compute ubmd/atom command: compute ID group ubmd/atom");
  peratom_flag = 1;
  size_peratom_cols = 0;
}

ComputeUBMDAtom::~ComputeUBMDAtom()
{
  memory->destroy(unc);
}

void ComputeUBMDAtom::init()
{
  pair = dynamic_cast<PairUBMD *>(force->pair_match("ubmd", 1, 0));
  if (!pair) error->all(FLERR, "Compute ubmd/atom requires pair_style ubmd");
  int dim = 0;
  if (!pair->extract("uncertainty", dim)) error->all(FLERR, "Compute ubmd/atom: bad pair style");
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
  if (pair->atomic_uncertainty_natoms() != atom->natoms)
    error->all(FLERR, "Compute ubmd/atom: atoms were added or deleted since pair ubmd computed "
               "the uncertainties of step {}; run 0 first", update->ntimestep);

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
