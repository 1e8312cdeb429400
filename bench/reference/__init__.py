"""Published numbers: the result tables of the papers bench reproduces, transcribed into `<key>.yaml` files.

Each file holds a paper's citation and its tables. A table has `columns` and `rows`, each a list of partial
descriptions of a value (method, dataset, IPC, architecture, ...), plus `defaults`; the value at row i,
column j is described by defaults + row i + column j, so a file keeps the paper's own layout (methods as
rows in IID's Table 1, methods as columns in UDD's) and stays easy to check against the paper line by line.
Values are written as printed: "mean±std", a bare mean, or "-" for no number. A table's optional `cells:`
list corrects single values (e.g. the method that reproduces one cell of a column that mixes two methods).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.yamlio import load_yaml

HERE = Path(__file__).parent
KINDS = ("main", "cross_arch", "ablation", "curve")
GROUPS = ("coreset", "distillation", "parametrization", "proposed")
CELL = ("method", "dataset", "ipc")  # what names one value of a table, for its `cells:` corrections
FIELDS = ("method", "bench", "bench_params", "group", "venue", "dataset", "ipc", "arch", "ratio_pct")


@dataclass(frozen=True)
class Reported:
    """One published number, with where it comes from."""

    paper: str
    table: str  # e.g. "table1"
    kind: str  # main | cross_arch | ablation | curve
    method: str  # as the paper names it (without its bibliography number)
    bench: str | None  # the registered method that reproduces it, where bench has one
    group: str  # coreset | distillation | parametrization | proposed | whole
    venue: str | None
    dataset: str
    ipc: int | None  # None for a whole-dataset value
    arch: str
    mean: float
    std: float | None  # None where the paper prints a bare mean
    ratio_pct: float | None
    text: str  # the value as printed
    bench_params: tuple[tuple[str, Any], ...] = ()  # the parameters a suite entry of `bench` sets to reproduce it

    @property
    def source(self) -> str:
        return f"{self.paper} {self.table.replace('table', 'Table ')}"

    def reproduced_by(self, method: str, params: dict[str, Any]) -> bool:
        """Whether a suite entry of registered method `method` with the user-set `params` reproduces this
        number: the method the paper's column names, with exactly the parameters the file says it needs (an
        entry that changes anything else runs another configuration than the paper's)."""
        return self.bench == method and dict(self.bench_params) == params


@dataclass(frozen=True)
class RefTable:
    paper: str
    id: str
    kind: str
    caption: str
    notes: str
    values: tuple[Reported, ...]


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    short: str
    citation: str  # BibTeX
    tables: dict[str, RefTable]

    def values(self) -> list[Reported]:
        return [v for t in self.tables.values() for v in t.values]


def parse_value(text: str) -> tuple[float, float | None] | None:
    """'48.5±0.6' -> (48.5, 0.6); '94.2' -> (94.2, None); '-' -> None."""
    if text == "-":
        return None
    mean, _, std = text.partition("±")
    return float(mean), (float(std) if std else None)


def _table(paper: str, raw: dict[str, Any], where: str) -> RefTable:
    kind = raw["kind"]
    if kind not in KINDS:
        raise ValueError(f"{where}: kind '{kind}' is not one of {', '.join(KINDS)}")
    defaults, columns = raw.get("defaults", {}), raw["columns"]
    values = []
    for row in raw["rows"]:
        texts = row["values"].split()
        if len(texts) != len(columns):
            raise ValueError(f"{where}: row {row} has {len(texts)} values for {len(columns)} columns")
        desc_row = {k: v for k, v in row.items() if k != "values"}
        for column, text in zip(columns, texts):
            parsed = parse_value(text)
            if parsed is not None:
                desc = {**defaults, **desc_row, **column}
                for fix in raw.get("cells", ()):  # corrections of single cells: which cell, then what changes
                    if all(desc.get(k) == fix.get(k) for k in CELL):
                        desc |= {k: v for k, v in fix.items() if k not in CELL}
                values.append(_reported(paper, raw["id"], kind, desc, parsed, text, where))
    for dataset, text in (raw.get("whole") or {}).items():
        desc = {**defaults, "method": "Whole Dataset", "group": "whole", "dataset": dataset, "ipc": None,
                "ratio_pct": 100.0}
        values.append(_reported(paper, raw["id"], kind, desc, parse_value(text), text, where))
    return RefTable(paper, raw["id"], kind, " ".join(raw["caption"].split()), " ".join(raw.get("notes", "").split()),
                    tuple(values))


def _reported(paper: str, table: str, kind: str, desc: dict[str, Any], parsed: tuple[float, float | None],
              text: str, where: str) -> Reported:
    from bench.data import DATASETS
    unknown = set(desc) - set(FIELDS)
    if unknown or desc.get("dataset") not in DATASETS or desc.get("group") not in GROUPS + ("whole",):
        raise ValueError(f"{where}: bad value description {desc}")
    ratio = desc.get("ratio_pct")
    params = desc.get("bench_params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"{where}: bench_params must be a mapping, got {params!r}")
    return Reported(paper=paper, table=table, kind=kind, method=str(desc["method"]), bench=desc.get("bench"),
                    bench_params=tuple(sorted(params.items())),
                    group=desc["group"], venue=desc.get("venue"), dataset=desc["dataset"], ipc=desc.get("ipc"),
                    arch=desc["arch"], mean=parsed[0], std=parsed[1],
                    ratio_pct=float(ratio) if ratio is not None else None, text=text)


def load_paper(path: Path) -> Paper:
    raw, _ = load_yaml(path)
    tables = {t["id"]: _table(raw["key"], t, f"{path.name}, {t['id']}") for t in raw["tables"]}
    return Paper(raw["key"], raw["title"], raw["short"], raw["citation"].strip(), tables)


class _Papers(Mapping[str, Paper]):
    """Every paper by key, read from the files when first looked at: parsing them is a tenth of a second that
    `bench report` of a suite comparing with no paper need not spend."""

    @cached_property
    def _papers(self) -> dict[str, Paper]:
        return {p.key: p for p in map(load_paper, sorted(HERE.glob("*.yaml")))}

    def __getitem__(self, key: str) -> Paper:
        return self._papers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._papers)

    def __len__(self) -> int:
        return len(self._papers)


PAPERS: Mapping[str, Paper] = _Papers()
