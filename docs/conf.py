"""Sphinx configuration of the ubmd documentation site (``sphinx-build -W docs docs/_build``).

The pages are the Markdown files of this folder (MyST) and ``pair_ubmd.rst``; the API reference
(``api.rst``) is autodoc of the package in ``python/``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import ubmd  # noqa: E402

project = "ubmd"
author = "the ubmd developers"
copyright = "ubmd developers"
release = version = ubmd.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"ubmd {release}"
# the LAMMPS page's code blocks: Pygments has a LAMMPS lexer
highlight_language = "python"


LAMMPS_DOCS = "https://docs.lammps.org/"


def _lammps_doc_links(app, env, node, contnode):
    """``pair_ubmd.rst`` is written as a page of the LAMMPS manual: its ``:doc:`` links name
    LAMMPS pages (``pair_coeff``, ``fix_halt`` ...), which are linked to the LAMMPS manual."""
    from docutils import nodes

    if node.get("reftype") != "doc" or node.get("refdoc") != "pair_ubmd":
        return None
    target = node["reftarget"]
    ref = nodes.reference("", "", internal=False, refuri=f"{LAMMPS_DOCS}{target}.html")
    ref.append(contnode)
    return ref


def setup(app):
    from pygments.lexers.special import TextLexer

    app.add_lexer("LAMMPS", TextLexer)  # the LAMMPS manual's own lexer is not in Pygments
    app.connect("missing-reference", _lammps_doc_links)
