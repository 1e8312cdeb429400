"""Reports: aggregate the store's records into one DataFrame (`aggregate`), turn it into views (paper table,
cross-architecture grid, compression curve, ablation, reported-vs-reproduced, cost), and write them as HTML,
LaTeX, Markdown, CSV and JSON (`render.write_report`).

This module stays import-light (no pandas, no matplotlib) because the suite validator reads `VIEWS`.
"""

# The views a suite may name under `report: {views: [...]}`, in the order a report shows them.
VIEWS = ("paper_table", "cross_arch", "curve", "ablation", "reported", "cost")

__all__ = ["VIEWS"]
