"""Reports: aggregate records into one DataFrame of expected cells (`aggregate`), turn it into views (paper table,
cross-architecture grid, compression curve, ablation, reported-vs-reproduced, cost), and write them as HTML,
LaTeX, Markdown, CSV and JSON (`render.write_report`).

The inputs are plain data (`bench.report.inputs`). This module stays import-light (no pandas, no matplotlib)
because the planner imports those input types.
"""
