/* see blas_binding.h */

#include "blas_binding.h"

#if defined(__linux__)
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <cstring>
#endif

namespace ubmd {

#if defined(__linux__)
namespace {

struct Search {
  const char *substring;
  const char *symbol;
  SymbolBinding result;
};

// walk one relocation table for an entry importing `symbol`; returns the GOT slot or 0
ElfW(Addr) find_slot(ElfW(Addr) base, const ElfW(Rela) *rela, size_t bytes, const ElfW(Sym) *symtab,
                     const char *strtab, const char *symbol)
{
  if (!rela || !symtab || !strtab) return 0;
  const size_t n = bytes / sizeof(ElfW(Rela));
  for (size_t k = 0; k < n; k++) {
#if defined(__LP64__)
    const size_t si = ELF64_R_SYM(rela[k].r_info);
#else
    const size_t si = ELF32_R_SYM(rela[k].r_info);
#endif
    if (si == 0) continue;
    if (std::strcmp(strtab + symtab[si].st_name, symbol) == 0) return base + rela[k].r_offset;
  }
  return 0;
}

int visit(struct dl_phdr_info *info, size_t, void *data)
{
  auto *s = static_cast<Search *>(data);
  if (s->result.found || !info->dlpi_name || !std::strstr(info->dlpi_name, s->substring)) return 0;
  const ElfW(Dyn) *dyn = nullptr;
  for (int p = 0; p < info->dlpi_phnum; p++)
    if (info->dlpi_phdr[p].p_type == PT_DYNAMIC)
      dyn = reinterpret_cast<const ElfW(Dyn) *>(info->dlpi_addr + info->dlpi_phdr[p].p_vaddr);
  if (!dyn) return 0;
  const ElfW(Rela) *jmprel = nullptr, *rela = nullptr;
  size_t jmprel_sz = 0, rela_sz = 0;
  const ElfW(Sym) *symtab = nullptr;
  const char *strtab = nullptr;
  // glibc relocates these d_ptr entries to absolute addresses in the loaded image
  for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
      case DT_JMPREL: jmprel = reinterpret_cast<const ElfW(Rela) *>(d->d_un.d_ptr); break;
      case DT_PLTRELSZ: jmprel_sz = d->d_un.d_val; break;
      case DT_RELA: rela = reinterpret_cast<const ElfW(Rela) *>(d->d_un.d_ptr); break;
      case DT_RELASZ: rela_sz = d->d_un.d_val; break;
      case DT_SYMTAB: symtab = reinterpret_cast<const ElfW(Sym) *>(d->d_un.d_ptr); break;
      case DT_STRTAB: strtab = reinterpret_cast<const char *>(d->d_un.d_ptr); break;
      default: break;
    }
  }
  ElfW(Addr) slot = find_slot(info->dlpi_addr, jmprel, jmprel_sz, symtab, strtab, s->symbol);
  if (!slot) slot = find_slot(info->dlpi_addr, rela, rela_sz, symtab, strtab, s->symbol);
  if (!slot) return 0;
  s->result.found = true;
  s->result.caller = info->dlpi_name;
  const void *target = *reinterpret_cast<void *const *>(slot);
  Dl_info where;
  if (target && dladdr(target, &where) && where.dli_fname) {
    s->result.provider = where.dli_fname;
    // compare by load address (names may differ: symlinks, relative paths)
    Dl_info self;
    s->result.self = dladdr(dyn, &self) && self.dli_fbase == where.dli_fbase;
  }
  return 1;
}

}    // namespace

SymbolBinding symbol_binding(const std::string &caller_substring, const std::string &symbol)
{
  Search s{caller_substring.c_str(), symbol.c_str(), {}};
  dl_iterate_phdr(visit, &s);
  return s.result;
}

#else

SymbolBinding symbol_binding(const std::string &, const std::string &) { return {}; }

#endif

}    // namespace ubmd
