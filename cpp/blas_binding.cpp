/* see blas_binding.h */

#include "blas_binding.h"

#if defined(__linux__)
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>
#endif

namespace ubmd {

#if defined(__linux__)
namespace {

struct Search {
  const char *substring;
  const char *symbol;
  bool found = false;
  std::string caller;
  const void *target = nullptr;                          // the GOT entry's value
  std::vector<std::pair<uintptr_t, uintptr_t>> segments; // the caller's PT_LOAD ranges
};

#if defined(__LP64__)
inline size_t sym_index(ElfW(Xword) info) { return ELF64_R_SYM(info); }
#else
inline size_t sym_index(ElfW(Word) info) { return ELF32_R_SYM(info); }
#endif

// a d_ptr entry as an address: glibc relocates them when the dynamic section is writable, not
// otherwise (and musl never does); an unrelocated value is below the load base
template <class T> const T *dyn_ptr(ElfW(Addr) base, ElfW(Addr) p)
{
  if (p == 0) return nullptr;
  return reinterpret_cast<const T *>(p < base ? base + p : p);
}

// walk one relocation table (Rel or Rela) for an entry importing `symbol`; the GOT slot or 0
template <class R>
ElfW(Addr) find_slot(ElfW(Addr) base, const R *rel, size_t bytes, const ElfW(Sym) *symtab,
                     const char *strtab, const char *symbol)
{
  if (!rel || !symtab || !strtab) return 0;
  const size_t n = bytes / sizeof(R);
  for (size_t k = 0; k < n; k++) {
    const size_t si = sym_index(rel[k].r_info);
    if (si == 0) continue;
    if (std::strcmp(strtab + symtab[si].st_name, symbol) == 0) return base + rel[k].r_offset;
  }
  return 0;
}

// runs under the loader's lock: no dladdr/dlopen/dlsym here
int visit(struct dl_phdr_info *info, size_t, void *data)
{
  auto *s = static_cast<Search *>(data);
  if (s->found || !info->dlpi_name || !std::strstr(info->dlpi_name, s->substring)) return 0;
  const ElfW(Addr) base = info->dlpi_addr;
  const ElfW(Dyn) *dyn = nullptr;
  std::vector<std::pair<uintptr_t, uintptr_t>> segments;
  for (int p = 0; p < info->dlpi_phnum; p++) {
    const auto &ph = info->dlpi_phdr[p];
    if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn) *>(base + ph.p_vaddr);
    if (ph.p_type == PT_LOAD) segments.emplace_back(base + ph.p_vaddr, base + ph.p_vaddr + ph.p_memsz);
  }
  if (!dyn) return 0;
  ElfW(Addr) jmprel = 0, rela = 0, rel = 0;
  size_t jmprel_sz = 0, rela_sz = 0, rel_sz = 0;
  long pltrel = DT_RELA;
  ElfW(Addr) symtab_p = 0, strtab_p = 0;
  for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
      case DT_JMPREL: jmprel = d->d_un.d_ptr; break;
      case DT_PLTRELSZ: jmprel_sz = d->d_un.d_val; break;
      case DT_PLTREL: pltrel = static_cast<long>(d->d_un.d_val); break;
      case DT_RELA: rela = d->d_un.d_ptr; break;
      case DT_RELASZ: rela_sz = d->d_un.d_val; break;
      case DT_REL: rel = d->d_un.d_ptr; break;
      case DT_RELSZ: rel_sz = d->d_un.d_val; break;
      case DT_SYMTAB: symtab_p = d->d_un.d_ptr; break;
      case DT_STRTAB: strtab_p = d->d_un.d_ptr; break;
      default: break;
    }
  }
  const auto *symtab = dyn_ptr<ElfW(Sym)>(base, symtab_p);
  const auto *strtab = dyn_ptr<char>(base, strtab_p);
  ElfW(Addr) slot = 0;
  if (pltrel == DT_REL)
    slot = find_slot(base, dyn_ptr<ElfW(Rel)>(base, jmprel), jmprel_sz, symtab, strtab, s->symbol);
  else
    slot = find_slot(base, dyn_ptr<ElfW(Rela)>(base, jmprel), jmprel_sz, symtab, strtab, s->symbol);
  if (!slot) slot = find_slot(base, dyn_ptr<ElfW(Rela)>(base, rela), rela_sz, symtab, strtab, s->symbol);
  if (!slot) slot = find_slot(base, dyn_ptr<ElfW(Rel)>(base, rel), rel_sz, symtab, strtab, s->symbol);
  if (!slot) return 0;
  s->found = true;
  s->caller = info->dlpi_name;
  s->target = *reinterpret_cast<void *const *>(slot);
  s->segments = std::move(segments);
  return 1;
}

std::string object_of(const void *addr)
{
  Dl_info where;
  if (addr && dladdr(addr, &where) && where.dli_fname) return where.dli_fname;
  return "";
}

}    // namespace

SymbolBinding symbol_binding(const std::string &caller_substring, const std::string &symbol)
{
  Search s;
  s.substring = caller_substring.c_str();
  s.symbol = symbol.c_str();
  dl_iterate_phdr(visit, &s);
  SymbolBinding b;
  if (!s.found) return b;
  b.found = true;
  b.caller = s.caller;
  // the definition the caller's own dependency tree gives (the caller first, then its needs)
  const void *expected = nullptr;
  if (void *h = dlopen(s.caller.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
    expected = dlsym(h, s.symbol);
    dlclose(h);
  }
  b.expected = object_of(expected);
  const auto t = reinterpret_cast<uintptr_t>(s.target);
  bool inside_caller = false;
  for (const auto &seg : s.segments) inside_caller = inside_caller || (t >= seg.first && t < seg.second);
  b.resolved = s.target && (s.target == expected || !inside_caller);
  if (b.resolved) b.provider = object_of(s.target);
  b.own = b.resolved && expected && s.target == expected;
  return b;
}

#else

SymbolBinding symbol_binding(const std::string &, const std::string &) { return {}; }

#endif

}    // namespace ubmd
