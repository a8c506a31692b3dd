"""Sphinx configuration of spurnb's documentation site; `python tools/docs.py` (or `make docs`) stages the sources and builds it.

Sphinx + MyST-NB + Furo: MyST-NB renders nbdev's processed notebooks, outputs included, as Sphinx pages, so
Sphinx's offline full-text search, toctree sidebar, per-page contents and MathJax come with no JavaScript
from a CDN; Furo is a maintained, responsive theme."""
import configparser
from pathlib import Path

_cfg = configparser.ConfigParser(delimiters=["="])
_cfg.read(Path(__file__).resolve().parents[1] / "settings.ini")
_ini = _cfg["DEFAULT"]

project = _ini["lib_name"]
author = _ini["author"]
copyright = _ini["copyright"]
release = version = _ini["version"]

extensions = ["myst_nb", "sphinx-mathjax-offline"]      # MathJax 3 served from _static/mathjax: no CDN
nb_execution_mode = "off"                                 # outputs are the notebooks' saved outputs
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True                           # $$...$$ inside a paragraph is display math, as in Quarto
myst_all_links_external = True                            # links are already relative .html#anchor paths (tools/docs.py)
myst_heading_anchors = 0
suppress_warnings = ["myst.header",                       # show_doc entries are H3 right after an H1 on some pages
                    "misc.highlighting_failure"]        # `!shell \\` continuation lines are not Python; shown as plain text
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"
html_theme = "furo"
html_title = project
html_static_path = ["_static"]
html_css_files = ["spurnb.css"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_copy_source = False
html_baseurl = _ini["doc_host"].rstrip("/") + _ini["doc_baseurl"].rstrip("/") + "/"
_repo = _ini["git_url"].rstrip("/")
html_theme_options = {
    "source_repository": _repo + "/",
    "source_branch": _ini["branch"],
    "source_directory": "nbs/",
    "top_of_page_buttons": [],
    "footer_icons": [{
        "name": "GitHub", "url": _repo, "class": "",
        "html": '<svg stroke="currentColor" fill="currentColor" stroke-width="0" viewBox="0 0 16 16" aria-hidden="true"><path fill-rule="evenodd" d="M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17.55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.013 8.013 0 0 0 16 8c0-4.42-3.58-8-8-8z"></path></svg>',
    }],
}
