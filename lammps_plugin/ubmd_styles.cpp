/* Styles of libubmd_lammps.so (pair ubmd, compute ubmd/atom), registered with LAMMPS by
   ubmd_register_styles. LAMMPS never loads this library itself: the loader ubmdplugin.so
   (ubmdplugin.cpp) opens it with its own symbol scope and forwards lammpsplugin_init here. */

#include "lammps.h"
#include "pair_ubmd.h"
#include "compute_ubmd_atom.h"

using namespace LAMMPS_NS;

// the C interface of LAMMPS's plugin loader (lammpsplugin.h is not shipped with the wheel)
extern "C" {
typedef void *(lammpsplugin_factory1)(LAMMPS *);
typedef void *(lammpsplugin_factory2)(LAMMPS *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

static void *pair_ubmd_creator(LAMMPS *lmp)
{
  return new PairUBMD(lmp);
}

static void *compute_ubmd_atom_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new ComputeUBMDAtom(lmp, argc, argv);
}

extern "C" __attribute__((visibility("default"))) void ubmd_register_styles(void *lmp, void *handle,
                                                                          void *regfunc)
{
  auto reg = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  // the host's own version string: the plugin is built against the headers of this LAMMPS
  plugin.version = ((LAMMPS *) lmp)->version;
  plugin.author = "ubmd developers";
  plugin.handle = handle;

  plugin.style = "pair";
  plugin.name = "ubmd";
  plugin.info = "ubmd ML potential with uncertainty-biased forces and stress";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_ubmd_creator;
  (*reg)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "ubmd/atom";
  plugin.info = "per-atom calibrated uncertainty of pair_style ubmd";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &compute_ubmd_atom_creator;
  (*reg)(&plugin, lmp);
}
