/* Plugin entry of ubmdplugin.so: registers every style of this shared object.
   Load in an input deck with `plugin load /path/to/ubmdplugin.so` (or put the file in a
   directory named by LAMMPS_PLUGIN_PATH). */

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
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

/* Every MD step allocates and frees tensors of tens to hundreds of MB. With glibc's default
   (dynamic) mmap threshold they are unmapped and page-faulted again each step; keeping freed
   memory in the process measured 8-10 % faster steps at the same peak RSS
   (benchmarks/NOTES.md, P3). Opt out with UBMD_NO_MALLOPT=1. */
static void tune_malloc()
{
#if defined(__GLIBC__)
  const char *off = std::getenv("UBMD_NO_MALLOPT");
  if (off && off[0] && off[0] != '0') return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
#endif
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  tune_malloc();
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
