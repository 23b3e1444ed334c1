"""Scaling laws: fit a sweep's results, recommend compute-optimal sizes, draw and report.

table.py      read_table(path) / from_frame(df) -> ResultsTable (columns documented there)
fits.py       fit_all(table, approaches, bootstrap, seed, drop_highest) -> fit document;
              approach1/2/3 (Hoffmann et al. 2022; Besiroglu et al. 2024), kaplan (Kaplan et al. 2020)
recommend.py  for_compute(doc, C), for_params(doc, N), for_target_loss(doc, L)
plots.py      write_report(table, out_dir, ...) -> {"fit": doc, "files": {...}} and the figures
"""
