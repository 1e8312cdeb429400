"""Reports: aggregate the store's records for a plan, then render them."""

from bench.report.aggregate import DDOF, aggregate
from bench.report.render import write_report

__all__ = ["DDOF", "aggregate", "write_report"]
