/* -*- c++ -*- ----------------------------------------------------------
   compute ID group ubmd/atom: per-atom calibrated uncertainty computed by pair_style ubmd
------------------------------------------------------------------------- */

#ifndef LMP_COMPUTE_UBMD_ATOM_H
#define LMP_COMPUTE_UBMD_ATOM_H

#include "compute.h"

namespace LAMMPS_NS {

class ComputeUBMDAtom : public Compute {
 public:
  ComputeUBMDAtom(class LAMMPS *, int, char **);
  ~ComputeUBMDAtom() override;
  void init() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  class PairUBMD *pair;
  int nsub;    // 0, or the instance of pair ubmd under hybrid
  int nmax;
  double *unc;
};

}    // namespace LAMMPS_NS

#endif
