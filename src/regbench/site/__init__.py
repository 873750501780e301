"""``regbench site``: a static HTML site of every reproduction's verdicts, numbers and
figures, built from the MLflow store (read only) and readable without a server.

- :mod:`~regbench.site.store`: what the store holds (reproductions, their report builds,
  comparisons), read by searches and artifact downloads
- :mod:`~regbench.site.content`: what each page says (verdict counts by role, claim rows,
  provenance, the per-seed CSV, the history of each claim)
- :mod:`~regbench.site.markdown`: the reports' markdown as HTML
- :mod:`~regbench.site.render`: the pages (Jinja2 templates in ``templates/``)
- :mod:`~regbench.site.build`: the command (checks, then a build that replaces ``--out``)
- :mod:`~regbench.site.browser`: headless Chromium over the DevTools protocol, to look at
  the built pages (the browser test, the README's screenshots)
"""


def main(argv: list[str]) -> None:
    from regbench.site.build import main as build_main

    build_main(argv)
