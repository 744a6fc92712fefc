"""pair_style ubmd in LAMMPS decks beyond the single-point tests: lost atoms, neighbour-list
include groups, molecular systems under hybrid/overlay, sub-style assignments under plain hybrid,
several ubmd instances, pair_modify keywords that do not apply. Each case was a silent wrong
number or a wrong/misleading error before."""

from __future__ import annotations

import pytest

from lammps_helpers import (ELEMENTS_HCO, PLUGIN, mpirun, new_lammps, random_cell,
                            real_model_file, requires_plugin, run_lmp, write_data)

pytestmark = requires_plugin


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ubmd_decks")
    atoms = random_cell(ELEMENTS_HCO, 24, (7.0, 7.5, 8.0), seed=1, min_dist=1.1)
    write_data(d / "data.lmp", atoms, ELEMENTS_HCO)
    return {"dir": d, "atoms": atoms, "model": real_model_file(d / "model.pt"),
            "sketch": real_model_file(d / "sketch.pt", features="sketch", seed=3)}


def run_deck(text, log=None):
    """(lmp, error message or ""); the caller closes lmp."""
    lmp = new_lammps(log=str(log) if log else None)
    try:
        lmp.commands_string(text)
    except Exception as exc:  # noqa: BLE001  (the lammps module raises a plain Exception)
        return lmp, str(exc)
    return lmp, ""


def warnings_of(log) -> list[str]:
    return [line for line in open(log) if line.startswith("WARNING") and "ubmd" in line]


def atomic_deck(files, style="ubmd", coeff=None, body="run 0"):
    coeff = coeff if coeff is not None else f"pair_coeff * * {files['model']} H C O"
    return f"""units metal
atom_style atomic
read_data {files['dir'] / 'data.lmp'}
pair_style {style}
{coeff}
{body}
"""


# ------------------------------------------------------------------ lost atoms

def test_compute_ubmd_atom_with_lost_atoms(files):
    """boundary f f f + thermo_modify lost ignore: an atom leaves the box. LAMMPS removes it
    before the forces of that step but updates the atom count only at the thermo output: the
    per-atom uncertainties of that step are valid and compute ubmd/atom must not refuse them
    (it stopped with 'atoms were added or deleted')."""
    lmp, err = run_deck(f"""units metal
atom_style atomic
boundary f f f
region box block 0 10 0 10 0 10
create_box 3 box
create_atoms 1 single 1.0 1.0 1.0
create_atoms 2 single 2.1 1.0 1.0
create_atoms 3 single 2.1 2.2 1.0
create_atoms 1 single 3.0 2.5 2.0
create_atoms 1 single 9.9 5.0 5.0
mass * 1.0
pair_style ubmd bias_forces 0.2 window 1
pair_coeff * * {files['model']} H C O
group fly id 5
velocity fly set 500.0 0 0
compute ua all ubmd/atom
compute mx all reduce max c_ua
thermo_style custom step pe atoms c_mx
thermo_modify lost ignore
thermo 1
timestep 0.001
fix 1 all nve
run 10
""")
    try:
        assert err == "", err
        assert lmp.get_natoms() == 4
        mx_run = lmp.extract_compute("mx", 0, 0)
        lmp.command("run 0")
        assert mx_run == pytest.approx(lmp.extract_compute("mx", 0, 0), rel=1e-12)
        assert mx_run > 0
    finally:
        lmp.close()


# ------------------------------------------------------------------ neigh_modify include

def test_neigh_modify_include_leaving_out_model_atoms_is_refused(files):
    """neigh_modify include GROUP builds the lists for the group's atoms only: the model's
    other atoms got no energy and no neighbours (a silently wrong energy). Refused unless every
    atom of the ubmd types is in the group."""
    lmp, _ = run_deck(atomic_deck(files))
    pe_ref = lmp.get_thermo("pe")
    lmp.close()
    text = atomic_deck(files, body="neigh_modify include sub\nrun 0").replace(
        "pair_style", "group sub type 1 2\natom_modify first sub\npair_style")
    lmp, err = run_deck(text)
    lmp.close()
    assert "neigh_modify include sub" in err and "leaves atoms" in err, err
    # a group with every atom: accepted, same energy
    lmp, err = run_deck(text.replace("type 1 2", "type 1 2 3"))
    try:
        assert err == "", err
        assert lmp.get_thermo("pe") == pytest.approx(pe_ref, rel=1e-12)
    finally:
        lmp.close()


# ------------------------------------------------------------------ masses vs elements

def test_masses_that_do_not_fit_the_elements_warn(files, tmp_path):
    """pair_coeff elements in the wrong order (types H C O mapped to O C H): a warning that names
    the element each mass belongs to; the right order, and a hydrogen mass within 10 %, none."""
    log = tmp_path / "log.swapped"
    lmp, err = run_deck(atomic_deck(files, coeff=f"pair_coeff * * {files['model']} O C H"), log=log)
    lmp.close()
    assert err == "", err
    text = " ".join(line.strip() for line in open(log))
    assert "atom masses do not fit the elements of pair_coeff" in text, text[-2000:]
    assert "type 1 has mass 1.008 (closest to H) but is mapped to O (mass 16)" in text
    assert "type 3 has mass 16 (closest to O) but is mapped to H (mass 1.008)" in text
    assert "type 2 has mass" not in text
    for name, extra in (("right", ""), ("heavier_h", "mass 1 1.05\n")):
        log = tmp_path / f"log.{name}"
        lmp, err = run_deck(atomic_deck(files, body=f"{extra}run 0"), log=log)
        lmp.close()
        assert err == "" and "masses do not fit" not in log.read_text(), err


# ------------------------------------------------------------------ molecular systems, hybrid

def _molecular_deck(files, bonds, special="", pair="hybrid/overlay ubmd coul/cut 5.0",
                    coeff2="pair_coeff * * coul/cut", null_type4=True, extra=""):
    """Four model atoms (types 1-3) and a two-atom molecule of type 4 (NULL for ubmd or H)."""
    el4 = "NULL" if null_type4 else "H"
    return f"""units metal
atom_style full
region box block 0 10 0 10 0 10
create_box 4 box bond/types 1 extra/bond/per/atom 2 extra/special/per/atom 4
create_atoms 1 single 1.0 1.0 1.0
create_atoms 2 single 2.1 1.0 1.0
create_atoms 3 single 2.1 2.2 1.0
create_atoms 1 single 3.0 2.5 2.0
create_atoms 4 single 6.0 6.0 6.0
create_atoms 4 single 6.9 6.0 6.0
set type 1 charge 0.2
set type 2 charge -0.1
set type 3 charge -0.3
mass 1 1.008
mass 2 12.011
mass 3 15.999
mass 4 1.008
bond_style zero
bond_coeff 1 1.1
{bonds}
{special}
pair_style {pair}
pair_coeff * * ubmd {files['model']} H C O {el4}
{coeff2}
{extra}
compute pu all pair ubmd
thermo_style custom step pe c_pu
run 0
"""


MODEL_BONDS = "create_bonds single/bond 1 1 2\ncreate_bonds single/bond 1 2 3\n" \
              "create_bonds single/bond 1 3 4"
NULL_BONDS = "create_bonds single/bond 1 5 6"


def _ubmd_energy(files, tmp_path, name, **kw):
    log = tmp_path / f"log.{name}"
    lmp, err = run_deck(_molecular_deck(files, **kw), log=log)
    e = lmp.extract_compute("pu", 0, 0) if not err else None
    lmp.close()
    return e, err, warnings_of(log)


def test_hybrid_special_bonds_checked_on_the_model_pairs(files, tmp_path):
    """Under hybrid/overlay, special_bonds 0 (LAMMPS's default) takes bonded pairs out of every
    neighbour list. For bonded model atoms the model's energy was wrong with only a warning; it
    is now an error. Bonds between NULL-type atoms only, or kspace (LAMMPS then keeps the
    special pairs), leave the model's pairs alone: no error and no warning. The recipe of the
    message (weights other than 0 and 1, pair_modify special 0 for the other sub-style) gives the
    model's energy of the same atoms without bonds."""
    e_free, err, _ = _ubmd_energy(files, tmp_path, "free", bonds="")
    assert err == "" and e_free != 0.0

    _, err, _ = _ubmd_energy(files, tmp_path, "bonded", bonds=MODEL_BONDS)
    assert "removes bonded pairs of atoms that the model describes" in err, err
    assert "special_bonds lj/coul 1.0 1.0 1.0" in err

    e, err, warns = _ubmd_energy(files, tmp_path, "null", bonds=NULL_BONDS)
    assert err == "" and warns == [], (err, warns)
    assert e == pytest.approx(e_free, rel=1e-12)

    e, err, warns = _ubmd_energy(
        files, tmp_path, "kspace", bonds=MODEL_BONDS, pair="hybrid/overlay ubmd coul/long 5.0",
        coeff2="pair_coeff * * coul/long", extra="kspace_style ewald 1e-4")
    assert err == "" and warns == [], (err, warns)
    assert e == pytest.approx(e_free, rel=1e-12)

    e, err, warns = _ubmd_energy(
        files, tmp_path, "recipe", bonds=MODEL_BONDS, special="special_bonds lj/coul 0.5 0.5 0.5",
        extra="pair_modify pair coul/cut special lj/coul 0.0 0.0 0.0")
    assert err == "" and warns == [], (err, warns)
    assert e == pytest.approx(e_free, rel=1e-12)


def test_hybrid_special_bonds_checked_under_rerun(files, tmp_path):
    """rerun calls no Pair::setup(): the checks that need the run's neighbour lists and ghost
    atoms run from the first compute() instead, so a rerun deck that drops bonded model pairs is
    refused as a run deck is, and an allowed deck reruns with the run's energy."""
    atoms = [(1, 1.0, 1.0, 1.0), (2, 2.1, 1.0, 1.0), (3, 2.1, 2.2, 1.0), (4, 3.0, 2.5, 2.0),
             (5, 6.0, 6.0, 6.0), (6, 6.9, 6.0, 6.0)]
    dump = tmp_path / "frames.dump"
    with open(dump, "w") as fh:
        for step, shift in ((0, 0.0), (10, 0.05)):
            fh.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(atoms)}\n"
                     "ITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n0 10\nITEM: ATOMS id x y z\n")
            for i, x, y, z in atoms:
                fh.write(f"{i} {x + shift * (i % 2)} {y} {z}\n")
    rerun = f"thermo_modify format float %.15g\nrerun {dump} dump x y z"

    text = _molecular_deck(files, bonds=MODEL_BONDS).replace("run 0", rerun)
    lmp, err = run_deck(text, log=tmp_path / "log.rerun_bonded")
    lmp.close()
    assert "removes bonded pairs of atoms that the model describes" in err, err

    e_run, err, _ = _ubmd_energy(files, tmp_path, "free", bonds="")
    assert err == ""
    text = _molecular_deck(files, bonds="").replace("run 0", rerun)
    lmp, err = run_deck(text, log=tmp_path / "log.rerun_free")
    try:
        assert err == "", err
        # frame 0 has the positions of the run
        pe_lines = [line.split() for line in open(tmp_path / "log.rerun_free")
                    if line.split()[:1] == ["0"] and len(line.split()) == 3]
        assert pe_lines and float(pe_lines[0][2]) == pytest.approx(e_run, rel=1e-10)
    finally:
        lmp.close()


def test_plain_hybrid_pairs_taken_from_the_model_warn(files, tmp_path):
    """pair_style hybrid (not overlay): pair_coeff 1 2 lj/cut after pair_coeff * * ubmd takes the
    H-C pairs out of the model's list, silently changing its energy; now a warning that names the
    type pairs. NULL types assigned elsewhere are not affected."""
    log = tmp_path / "log.override"
    lmp, err = run_deck(atomic_deck(files, style="hybrid ubmd lj/cut 4.0", coeff=(
        f"pair_coeff * * ubmd {files['model']} H C O\npair_coeff 1 2 lj/cut 0.01 2.0")), log=log)
    lmp.close()
    assert err == "", err
    w = warnings_of(log)
    assert len(w) == 1 and "pairs of atom types 1-2" in w[0] and "hybrid/overlay" in w[0], w
    log = tmp_path / "log.null"
    lmp, err = run_deck(atomic_deck(files, style="hybrid ubmd lj/cut 4.0", coeff=(
        f"pair_coeff * * ubmd {files['model']} H C NULL\npair_coeff 1*3 3 lj/cut 0.01 2.0")),
        log=log)
    lmp.close()
    assert err == "" and warnings_of(log) == [], (err, warnings_of(log))


# ------------------------------------------------------------------ several ubmd instances

def test_compute_ubmd_atom_picks_the_instance(files):
    """hybrid/overlay ubmd ubmd (two models): compute ubmd/atom said 'requires pair_style ubmd';
    it now asks for the instance, and compute ID group ubmd/atom N reads instance N."""
    two = (f"pair_coeff * * ubmd 1 {files['model']} H C O\n"
           f"pair_coeff * * ubmd 2 {files['sketch']} H C O")
    reduce = "compute mx all reduce max c_ua\nthermo_style custom step pe c_mx\nrun 0"
    lmp, err = run_deck(atomic_deck(files, style="hybrid/overlay ubmd ubmd", coeff=two,
                                    body="compute ua all ubmd/atom\n" + reduce))
    lmp.close()
    assert "several ubmd sub-styles" in err and "ubmd/atom N" in err, err
    got = {}
    for n in (1, 2):
        lmp, err = run_deck(atomic_deck(files, style="hybrid/overlay ubmd ubmd", coeff=two,
                                        body=f"compute ua all ubmd/atom {n}\n" + reduce))
        assert err == "", err
        got[n] = lmp.extract_compute("mx", 0, 0)
        lmp.close()
    for n, model in ((1, "model"), (2, "sketch")):
        lmp, err = run_deck(atomic_deck(files, coeff=f"pair_coeff * * {files[model]} H C O",
                                        body="compute ua all ubmd/atom\n" + reduce))
        assert err == "", err
        assert got[n] == pytest.approx(lmp.extract_compute("mx", 0, 0), rel=1e-12)
        lmp.close()
    assert abs(got[1] - got[2]) > 1e-6 * got[1]
    # N = 2 with a single ubmd style: an error, not silently instance 1
    lmp, err = run_deck(atomic_deck(files, body="compute ua all ubmd/atom 2\n" + reduce))
    lmp.close()
    assert "instance 2 given, but pair_style ubmd has a single ubmd style" in err, err


# ------------------------------------------------------------------ pair_modify

@pytest.mark.parametrize("keyword", ["tail yes", "shift yes"])
def test_pair_modify_without_effect_warns(files, tmp_path, keyword):
    """pair_modify tail/shift were accepted and silently ignored."""
    log = tmp_path / "log.pm"
    lmp, err = run_deck(atomic_deck(files, body=f"pair_modify {keyword}\nrun 0"), log=log)
    lmp.close()
    assert err == "", err
    w = warnings_of(log)
    assert sum(f"pair_modify {keyword} has no effect" in line for line in w) == 1, w
    # once, not at every run; and not under hybrid, where it is meant for the other sub-styles
    log2 = tmp_path / "log.pm2"
    lmp, err = run_deck(atomic_deck(files, body=f"pair_modify {keyword}\nrun 0\nrun 0"),
                        log=log2)
    lmp.close()
    assert sum("has no effect" in line for line in warnings_of(log2)) == 1
    log3 = tmp_path / "log.pm3"
    lmp, err = run_deck(atomic_deck(files, style="hybrid/overlay ubmd zero 5.0",
                                    coeff=f"pair_coeff * * ubmd {files['model']} H C O\n"
                                          "pair_coeff * * zero",
                                    body=f"pair_modify {keyword}\nrun 0"), log=log3)
    lmp.close()
    assert err == "", err
    assert not any("has no effect" in line for line in warnings_of(log3))


@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_hybrid_special_bonds_check_across_ranks(files, tmp_path):
    """The bonded partner of a model atom owned by the other rank (a ghost there): found on 2
    ranks as on 1. A bond between NULL-type atoms across the boundary: no error."""
    for bond, expect_error in (("1 1 2", True), ("1 4 5", False)):
        deck = f"""units metal
atom_style full
processors 2 1 1
plugin load {PLUGIN}
region box block 0 10 0 10 0 10
create_box 4 box bond/types 1 extra/bond/per/atom 2 extra/special/per/atom 4
create_atoms 1 single 4.5 1.0 1.0
create_atoms 2 single 5.6 1.0 1.0
create_atoms 3 single 5.6 2.2 1.0
create_atoms 4 single 4.6 6.0 6.0
create_atoms 4 single 5.5 6.0 6.0
mass 1 1.008
mass 2 12.011
mass 3 15.999
mass 4 1.008
bond_style zero
bond_coeff 1 1.1
create_bonds single/bond {bond}
pair_style hybrid/overlay ubmd zero 5.0
pair_coeff * * ubmd {files['model']} H C O NULL
pair_coeff * * zero
run 0
"""
        d = tmp_path / bond.replace(" ", "_")
        d.mkdir()
        rc, out, _ = run_lmp(deck, d, nprocs=2, check=False)
        if expect_error:
            assert rc != 0 and "removes bonded pairs of atoms that the model describes" in out, out
        else:
            assert rc == 0, out[-3000:]
