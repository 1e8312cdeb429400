"""Writes the fuzz corpus: malformed suites (suites/), site files (sites/<case>/bench.yaml) and broken
method plugins (plugins/) that `bench validate` must refuse with exit code 2 and one paragraph naming
the file. tests/test_fuzz.py runs every file here.

The files are committed; this script is how they were made, and how to add cases: edit the tables
below and run `python tests/fuzz/generate.py` (it rewrites suites/, sites/ and plugins/). A file's
name starts with its class (`yaml-`, `name-`, `type-`, ...); each text file's first line is a YAML
comment saying what it tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent

# A valid suite (tests/fuzz/base.yaml): most cases change one line of it.
BASE = """\
name: fuzz-base
datasets: [digits]
ipc: [1, 2]
eval_archs: [ConvNet, MLP]
methods:
  - name: random
  - name: dm
    params: {iterations: 3}
seeds: [0, 1]
eval: {epochs: 4}
"""


def base(old: str, new: str) -> str:
    """BASE with one piece replaced (`old` must be in it)."""
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def plus(text: str) -> str:
    """BASE with `text` added at the end."""
    return BASE + text


def params(method: str, values: str) -> str:
    """BASE with its dm entry replaced by `method` with these params."""
    return base("  - name: dm\n    params: {iterations: 3}\n", f"  - name: {method}\n    params: {{{values}}}\n")


def entry(value: str, extra: str = "") -> str:
    """BASE with its dm entry replaced by a plugin's `entry:`."""
    return base("  - name: dm\n    params: {iterations: 3}\n", f"  - entry: {value}\n{extra}")


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))

# (file name, what it tests, YAML text) of each suite.
SUITES: list[tuple[str, str, str]] = [
    # ---- the file itself
    ("yaml-empty", "an empty file", ""),
    ("yaml-only-comments", "a file of comments only", "# nothing here\n# still nothing\n"),
    ("yaml-document-marker-only", "a document with no content", "---\n...\n"),
    ("yaml-top-list", "a list at the top level", "- datasets: [digits]\n- ipc: [1]\n"),
    ("yaml-top-string", "a string at the top level", "just a sentence\n"),
    ("yaml-top-number", "a number at the top level", "42\n"),
    ("yaml-top-null", "null at the top level", "~\n"),
    ("yaml-billion-laughs", "an alias bomb: 9^9 strings if expanded", LAUGHS + BASE),
    ("yaml-recursive-alias", "an alias inside its own anchor", plus("description: &loop [*loop]\n")),
    ("yaml-alias-reuse", "a plain alias (refused: no aliases at all)",
     base("seeds: [0, 1]", "seeds: &s [0, 1]\ndistill_seeds: *s")),
    ("yaml-alias-undefined", "an alias of no anchor", base("seeds: [0, 1]", "seeds: *nothing")),
    ("yaml-deep-flow", "2,000 nested flow lists", plus("description: " + "[" * 2000 + "]" * 2000 + "\n")),
    ("yaml-deep-flow-maps", "2,000 nested flow mappings",
     plus("description: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n")),
    ("yaml-deep-block", "2,000 nested block sequences on one line", plus("description:\n  " + "- " * 2000 + "x\n")),
    ("yaml-deep-params", "60 nested mappings under params",
     base("params: {iterations: 3}", "params: " + "{a: " * 60 + "1" + "}" * 60)),
    ("yaml-tag-python-object", "a Python object tag", plus("description: !!python/object:os.system ls\n")),
    ("yaml-tag-python-apply", "a Python call tag",
     plus("description: !!python/object/apply:os.system [echo hacked]\n")),
    ("yaml-tag-python-name", "a Python name tag", plus("description: !!python/name:os.system\n")),
    ("yaml-tag-custom-scalar", "a custom tag on a scalar", base("ipc: [1, 2]", "ipc: [!foo 1, 2]")),
    ("yaml-tag-custom-sequence", "a custom tag on a sequence (once silently dropped)",
     base("seeds: [0, 1]", "seeds: !weird [0, 1]")),
    ("yaml-tag-custom-mapping", "a custom tag on a mapping", base("eval: {epochs: 4}", "eval: !cfg {epochs: 4}")),
    ("yaml-tag-set", "a !!set tag", base("seeds: [0, 1]", "seeds: !!set {0, 1}")),
    ("yaml-tag-str", "a !!str tag (every tag is refused; quote instead)",
     base("name: fuzz-base", "name: !!str fuzz-base")),
    ("yaml-tag-int", "an !!int tag on a clock time", base("eval: {epochs: 4}", "eval: {epochs: !!int '10:30'}")),
    ("yaml-tag-binary", "a !!binary tag", plus("description: !!binary aGVsbG8=\n")),
    ("yaml-tag-timestamp", "a !!timestamp tag", plus("description: !!timestamp 2024-01-01\n")),
    ("yaml-tag-verbatim", "a verbatim tag", plus("description: !<tag:example.com,2024:x> hello\n")),
    ("yaml-tag-directive", "a %TAG directive and a tag using it",
     "%TAG !e! tag:example.com,2024:\n---\n" + plus("description: !e!thing x\n")),
    ("yaml-merge-key", "a merge key", base("eval: {epochs: 4}", "eval:\n  <<: {epochs: 4}")),
    ("yaml-merge-key-alias", "a merge key with an alias",
     base("eval: {epochs: 4}", "defaults: &d {epochs: 4}\neval:\n  <<: *d")),
    ("yaml-complex-key-list", "a list as a key", plus("? [a, b]\n: 1\n")),
    ("yaml-complex-key-map", "a mapping as a key", plus("? {a: 1}\n: 1\n")),
    ("yaml-complex-key-flow", "a flow list as a key in a flow mapping",
     base("eval: {epochs: 4}", "eval: {[epochs]: 4}")),
    ("yaml-duplicate-key", "the same key twice at the top", plus("seeds: [3]\n")),
    ("yaml-duplicate-nested-key", "the same key twice in params",
     base("{iterations: 3}", "{iterations: 3, iterations: 4}")),
    ("yaml-unclosed-bracket", "an unclosed flow list", base("ipc: [1, 2]", "ipc: [1, 2")),
    ("yaml-unclosed-quote", "an unclosed quoted string", base("name: fuzz-base", 'name: "fuzz-base')),
    ("yaml-bad-indent", "a key indented out of its mapping",
     base("    params: {iterations: 3}", "      params: {iterations: 3}\n   bad: 1")),
    ("yaml-tab-indent", "tabs used for indentation", base("  - name: random", "\t- name: random")),
    ("yaml-two-documents", "two YAML documents in one file", BASE + "---\n" + BASE),
    ("yaml-control-character", "a BEL control character in a value", base("name: fuzz-base", "name: fuzz\x07base")),
    ("yaml-escape-in-value", "an ANSI escape written as a YAML escape", base("name: fuzz-base", 'name: "\\e[2Jfuzz"')),
    ("yaml-huge-integer", "an integer of 5,000 digits", base("ipc: [1, 2]", "ipc: [1, " + "9" * 5000 + "]")),
    ("yaml-yaml-version", "a YAML 2.0 directive", "%YAML 2.0\n---\n" + BASE),
    ("yaml-stray-colon", "a mapping value where none is allowed",
     base("datasets: [digits]", "datasets: digits: mnist")),
    ("yaml-bad-anchor", "an anchor with no value and a bad character", plus("description: &\n")),
    # ---- the suite's name
    ("name-parent-dir", "a name that climbs out of reports/", base("name: fuzz-base", "name: ../../etc/evil")),
    ("name-absolute", "an absolute path as a name", base("name: fuzz-base", "name: /tmp/evil")),
    ("name-slash", "a name with a slash", base("name: fuzz-base", "name: a/b")),
    ("name-backslash", "a name with a backslash", base("name: fuzz-base", "name: 'a\\b'")),
    ("name-dotdot", "the name ..", base("name: fuzz-base", "name: '..'")),
    ("name-dot", "the name .", base("name: fuzz-base", "name: '.'")),
    ("name-hidden", "a name starting with a dot", base("name: fuzz-base", "name: .hidden")),
    ("name-dash", "a name that reads as an option", base("name: fuzz-base", "name: -rf")),
    ("name-empty", "an empty name", base("name: fuzz-base", "name: ''")),
    ("name-too-long", "a name of 101 characters", base("name: fuzz-base", "name: " + "a" * 101)),
    ("name-unicode", "a name with non-ASCII letters", base("name: fuzz-base", "name: résumé-ünïcode")),
    ("name-space", "a name with a space", base("name: fuzz-base", "name: my suite")),
    ("name-newline", "a name with a newline", base("name: fuzz-base", 'name: "a\\nb"')),
    ("name-nul", "a name with a NUL character", base("name: fuzz-base", 'name: "a\\0b"')),
    ("name-inner-dotdot", "a name holding ..", base("name: fuzz-base", "name: a..b")),
    ("name-number", "a number as the name", base("name: fuzz-base", "name: 5")),
    ("name-list", "a list as the name", base("name: fuzz-base", "name: [a]")),
    ("bad name", "no name: and a file name with a space", base("name: fuzz-base\n", "")),
    # ---- wrong types
    ("type-datasets-string", "datasets as a string", base("datasets: [digits]", "datasets: digits")),
    ("type-datasets-number", "datasets as a number", base("datasets: [digits]", "datasets: 5")),
    ("type-datasets-item", "a number in datasets", base("datasets: [digits]", "datasets: [5]")),
    ("type-datasets-mapping", "datasets as a mapping", base("datasets: [digits]", "datasets: {digits: 1}")),
    ("type-datasets-null", "datasets null", base("datasets: [digits]", "datasets:")),
    ("type-ipc-scalar", "ipc as a number", base("ipc: [1, 2]", "ipc: 1")),
    ("type-ipc-string", "a quoted number in ipc", base("ipc: [1, 2]", "ipc: ['1', 2]")),
    ("type-ipc-float", "a float in ipc", base("ipc: [1, 2]", "ipc: [1.5, 2]")),
    ("type-ipc-bool", "a boolean in ipc", base("ipc: [1, 2]", "ipc: [true, 2]")),
    ("type-ipc-null-item", "null in ipc", base("ipc: [1, 2]", "ipc: [1, ~]")),
    ("type-ipc-nan-string", "the string NaN in ipc", base("ipc: [1, 2]", "ipc: [NaN, 2]")),
    ("type-eval-archs-string", "eval_archs as a string", base("eval_archs: [ConvNet, MLP]", "eval_archs: ConvNet")),
    ("type-distill-arch-list", "distill_arch as a list", plus("distill_arch: [ConvNet]\n")),
    ("type-methods-string", "methods as a string",
     base("methods:\n  - name: random\n  - name: dm\n    params: {iterations: 3}\n", "methods: dm\n")),
    ("type-methods-strings", "methods as a list of names",
     base("methods:\n  - name: random\n  - name: dm\n    params: {iterations: 3}\n", "methods: [random, dm]\n")),
    ("type-methods-mapping", "methods as a mapping",
     base("methods:\n  - name: random\n  - name: dm\n    params: {iterations: 3}\n", "methods: {name: dm}\n")),
    ("type-method-name-number", "a number as a method name", base("  - name: random", "  - name: 5")),
    ("type-method-label-list", "a list as a method label",
     base("  - name: random", "  - name: random\n    label: [x]")),
    ("type-params-list", "params as a list", base("params: {iterations: 3}", "params: [3]")),
    ("type-params-null", "params null", base("params: {iterations: 3}", "params: ~")),
    ("type-params-key-number", "a number as a params key", base("params: {iterations: 3}", "params: {1: 3}")),
    ("type-params-nested", "a mapping as a param value",
     base("params: {iterations: 3}", "params: {iterations: {n: 3}}")),
    ("type-seeds-scalar", "seeds as a number", base("seeds: [0, 1]", "seeds: 0")),
    ("type-seeds-string", "a quoted seed", base("seeds: [0, 1]", "seeds: ['0', 1]")),
    ("type-seeds-nan", "NaN as a seed", base("seeds: [0, 1]", "seeds: [.nan, 1]")),
    ("type-distill-seeds-scalar", "distill_seeds as a number", plus("distill_seeds: 0\n")),
    ("type-eval-number", "eval as a number", base("eval: {epochs: 4}", "eval: 300")),
    ("type-eval-null", "eval null", base("eval: {epochs: 4}", "eval: ~")),
    ("type-eval-epochs-string", "epochs quoted", base("eval: {epochs: 4}", "eval: {epochs: '300'}")),
    ("type-eval-epochs-float", "epochs as a float", base("eval: {epochs: 4}", "eval: {epochs: 1.5}")),
    ("type-eval-epochs-sexagesimal", "epochs as a YAML 1.1 base-60 number",
     base("eval: {epochs: 4}", "eval: {epochs: 10:30}")),
    ("type-eval-lr-string", "lr as a word", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: fast}")),
    ("type-eval-lr-quoted", "lr as a quoted number", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: '0.01'}")),
    ("type-eval-augment-yes", "augment: yes", base("eval: {epochs: 4}", "eval: {epochs: 4, augment: yes}")),
    ("type-eval-extra-epoch-no", "extra_epoch: no (a string in YAML 1.2)",
     base("eval: {epochs: 4}", "eval: {epochs: 4, extra_epoch: no}")),
    ("type-eval-decay-at-scalar", "decay_at as a number",
     base("eval: {epochs: 4}", "eval: {epochs: 4, decay_at: 0.5}")),
    ("type-whole-string", "whole_dataset as a word", plus("whole_dataset: yes\n")),
    ("type-whole-number", "whole_dataset as a number", plus("whole_dataset: 5\n")),
    ("type-whole-seeds-string", "whole_dataset seeds with a string", plus("whole_dataset: {seeds: [0, x]}\n")),
    ("type-report-list", "report as a list", plus("report: [paper_table]\n")),
    ("type-report-views-string", "report views as a string", plus("report: {views: paper_table}\n")),
    ("type-report-match-list", "report match as a list", plus("report: {match: [dm]}\n")),
    ("type-description-list", "description as a list", plus("description: [a, b]\n")),
    ("type-profile-number", "profile as a number", plus("profile: 5\n")),
    ("type-method-eval-list", "a method's eval as a list",
     base("params: {iterations: 3}", "params: {iterations: 3}\n    eval: [4]")),
    # ---- unknown keys, at every level
    ("key-top-typo", "a misspelt top-level key", base("seeds: [0, 1]", "sedes: [0, 1]")),
    ("key-top-unknown", "an unknown top-level key", plus("optimizer: adam\n")),
    ("key-top-number", "a number as a top-level key", plus("1: one\n")),
    ("key-top-null", "null as a top-level key", plus("~: nothing\n")),
    ("key-top-bool", "true as a top-level key", plus("true: yes\n")),
    ("key-top-unicode", "a non-ASCII top-level key", plus("sëeds: [0]\n")),
    ("key-top-long", "a 10,000-character key", plus("k" * 10000 + ": 1\n")),
    ("key-method-unknown", "an unknown key in a method entry",
     base("  - name: random", "  - name: random\n    param: {}")),
    ("key-params-unknown", "an unknown dm parameter", base("{iterations: 3}", "{iteratons: 3}")),
    ("key-eval-unknown", "an unknown eval key", base("eval: {epochs: 4}", "eval: {epoch: 4}")),
    ("key-method-eval-unknown", "an unknown key in a method's eval",
     base("params: {iterations: 3}", "params: {iterations: 3}\n    eval: {lrr: 0.1}")),
    ("key-whole-unknown", "an unknown whole_dataset key (was a KeyError)", plus("whole_dataset: {epoch: 3}\n")),
    ("key-report-unknown", "an unknown report key", plus("report: {view: [curve]}\n")),
    ("key-missing-methods", "no methods key",
     base("methods:\n  - name: random\n  - name: dm\n    params: {iterations: 3}\n", "")),
    ("key-missing-all", "only a name", "name: lonely\n"),
    # ---- values a run would refuse
    ("value-datasets-empty", "no data sets", base("datasets: [digits]", "datasets: []")),
    ("value-dataset-unknown", "a misspelt data set", base("datasets: [digits]", "datasets: [digitz]")),
    ("value-dataset-unicode", "a non-ASCII data set name", base("datasets: [digits]", "datasets: [ダイジェスト]")),
    ("value-dataset-long", "a 100,000-character data set name",
     base("datasets: [digits]", "datasets: [" + "x" * 100000 + "]")),
    ("value-ipc-zero", "IPC 0", base("ipc: [1, 2]", "ipc: [0, 2]")),
    ("value-ipc-negative", "a negative IPC", base("ipc: [1, 2]", "ipc: [-1, 2]")),
    ("value-ipc-huge", "IPC 2**70", base("ipc: [1, 2]", "ipc: [1180591620717411303424]")),
    ("value-ipc-too-large", "more images per class than digits has", base("ipc: [1, 2]", "ipc: [1, 123]")),
    ("value-ipc-empty", "no IPC", base("ipc: [1, 2]", "ipc: []")),
    ("value-archs-empty", "no eval architectures", base("eval_archs: [ConvNet, MLP]", "eval_archs: []")),
    ("value-arch-unknown", "a misspelt architecture", base("eval_archs: [ConvNet, MLP]", "eval_archs: [ConvNet, MPL]")),
    ("value-arch-too-big", "an architecture too deep for 8x8 images",
     base("eval_archs: [ConvNet, MLP]", "eval_archs: [VGG11]")),
    ("value-distill-arch-unknown", "an unknown distillation architecture", plus("distill_arch: ResNet9000\n")),
    ("value-methods-empty", "no methods",
     base("methods:\n  - name: random\n  - name: dm\n    params: {iterations: 3}\n", "methods: []\n")),
    ("value-method-unknown", "a misspelt method", base("  - name: dm", "  - name: DMM")),
    ("value-method-nameless", "a method entry with neither name nor entry",
     base("  - name: random", "  - label: nameless")),
    ("value-method-null", "a null method entry", base("  - name: random", "  -")),
    ("value-labels-twice", "two entries with one label", base("  - name: random", "  - name: dm")),
    ("value-seeds-empty", "no seeds", base("seeds: [0, 1]", "seeds: []")),
    ("value-seed-negative", "a negative seed", base("seeds: [0, 1]", "seeds: [-1, 1]")),
    ("value-seed-2-70", "the seed 2**70", base("seeds: [0, 1]", "seeds: [1180591620717411303424]")),
    ("value-seed-2-63", "the seed 2**63, one past int64", base("seeds: [0, 1]", "seeds: [9223372036854775808]")),
    ("value-distill-seed-negative", "a negative distillation seed", plus("distill_seeds: [-5]\n")),
    ("value-distill-seed-2-64", "the distillation seed 2**64", plus("distill_seeds: [18446744073709551616]\n")),
    ("value-profile-unknown", "a profile no site file defines", plus("profile: gpu-cluster\n")),
    ("value-preset-unknown", "a misspelt evaluation preset", base("eval: {epochs: 4}", "eval: {preset: standart}")),
    ("value-preset-mtt-random", "the learned-lr preset for methods that learn no lr",
     base("eval: {epochs: 4}", "eval: {epochs: 4, preset: mtt}")),
    ("value-method-preset-mtt", "the learned-lr preset on dm's own eval",
     base("params: {iterations: 3}", "params: {iterations: 3}\n    eval: {preset: mtt}")),
    ("value-lr-learned-dm", "lr: learned for dm",
     base("params: {iterations: 3}", "params: {iterations: 3}\n    eval: {lr: learned}")),
    ("value-eval-lr-negative", "a negative lr", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: -1}")),
    ("value-eval-lr-zero", "lr 0", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: 0}")),
    ("value-eval-lr-nan", "lr .nan", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: .nan}")),
    ("value-eval-lr-inf", "lr .inf", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: .inf}")),
    ("value-eval-lr-minus-inf", "lr -.inf", base("eval: {epochs: 4}", "eval: {epochs: 4, lr: -.inf}")),
    ("value-eval-lr-float32-overflow", "an lr beyond float32",
     base("eval: {epochs: 4}", "eval: {epochs: 4, lr: 1e39}")),
    ("value-eval-lr-overflow", "an lr that overflows to infinity",
     base("eval: {epochs: 4}", "eval: {epochs: 4, lr: 1e999}")),
    ("value-eval-momentum-one", "momentum 1", base("eval: {epochs: 4}", "eval: {epochs: 4, momentum: 1.0}")),
    ("value-eval-momentum-negative", "a negative momentum",
     base("eval: {epochs: 4}", "eval: {epochs: 4, momentum: -0.1}")),
    ("value-eval-weight-decay-negative", "a negative weight decay",
     base("eval: {epochs: 4}", "eval: {epochs: 4, weight_decay: -1}")),
    ("value-eval-weight-decay-nan", "weight decay .nan",
     base("eval: {epochs: 4}", "eval: {epochs: 4, weight_decay: .nan}")),
    ("value-eval-epochs-zero", "0 epochs", base("eval: {epochs: 4}", "eval: {epochs: 0}")),
    ("value-eval-epochs-negative", "-5 epochs", base("eval: {epochs: 4}", "eval: {epochs: -5}")),
    ("value-eval-batch-zero", "batch size 0", base("eval: {epochs: 4}", "eval: {epochs: 4, batch_size: 0}")),
    ("value-eval-test-batch-negative", "a negative test batch size",
     base("eval: {epochs: 4}", "eval: {epochs: 4, test_batch_size: -1}")),
    ("value-eval-decay-factor-zero", "decay factor 0", base("eval: {epochs: 4}", "eval: {epochs: 4, decay_factor: 0}")),
    ("value-eval-decay-at-two", "decay_at [2.0] (was a raw ValueError)",
     base("eval: {epochs: 4}", "eval: {epochs: 4, decay_at: [2.0]}")),
    ("value-eval-decay-at-zero", "decay_at [0]", base("eval: {epochs: 4}", "eval: {epochs: 4, decay_at: [0.0]}")),
    ("value-eval-decay-at-nan", "decay_at [.nan]", base("eval: {epochs: 4}", "eval: {epochs: 4, decay_at: [.nan]}")),
    ("value-method-decay-at", "decay_at [1.5] in a method's eval",
     base("params: {iterations: 3}", "params: {iterations: 3}\n    eval: {decay_at: [1.5]}")),
    ("value-eval-cutmix-prob", "a CutMix probability above 1",
     base("eval: {epochs: 4}", "eval: {epochs: 4, cutmix_prob: 1.5}")),
    ("value-eval-cutmix-beta", "CutMix beta 0", base("eval: {epochs: 4}", "eval: {epochs: 4, cutmix_beta: 0}")),
    ("value-eval-augment", "an unknown augmentation", base("eval: {epochs: 4}", "eval: {epochs: 4, augment: flip}")),
    ("value-eval-dsa-mode", "an unknown DSA mode", base("eval: {epochs: 4}", "eval: {epochs: 4, dsa_mode: both}")),
    ("value-whole-seeds-empty", "whole_dataset with no seeds (error named whole_dataset.bool)",
     plus("whole_dataset: {seeds: []}\n")),
    ("value-whole-seeds-negative", "a negative whole_dataset seed", plus("whole_dataset: {seeds: [-1]}\n")),
    ("value-whole-epochs-zero", "whole_dataset epochs 0", plus("whole_dataset: {epochs: 0}\n")),
    ("value-report-view-unknown", "an unknown report view", plus("report: {views: [papertable]}\n")),
    ("value-report-paper-unknown", "an unknown paper", plus("report: {compare_to: [iid2025]}\n")),
    ("value-report-tolerance-negative", "a negative tolerance", plus("report: {tolerance: -1}\n")),
    ("value-report-tolerance-nan", "tolerance .nan", plus("report: {tolerance: .nan}\n")),
    ("value-report-match-label", "a match for no method label",
     plus("report: {compare_to: iid2024, match: {dmm: DM}}\n")),
    ("value-report-ablation-label", "an ablation of no method label", plus("report: {ablation: [random, nolabel]}\n")),
    # ---- lists with a value twice
    ("dup-ipc", "IPC 1 twice", base("ipc: [1, 2]", "ipc: [1, 1]")),
    ("dup-seeds", "seed 0 twice", base("seeds: [0, 1]", "seeds: [0, 0]")),
    ("dup-datasets", "a data set twice", base("datasets: [digits]", "datasets: [digits, digits]")),
    ("dup-eval-archs", "an architecture twice", base("eval_archs: [ConvNet, MLP]", "eval_archs: [MLP, MLP]")),
    ("dup-distill-seeds", "a distillation seed twice", plus("distill_seeds: [3, 3]\n")),
    ("dup-whole-seeds", "a whole_dataset seed twice", plus("whole_dataset: {seeds: [0, 0]}\n")),
    ("dup-report-views", "a report view twice", plus("report: {views: [curve, curve]}\n")),
    ("dup-report-ablation", "an ablation label twice", plus("report: {ablation: [dm, dm]}\n")),
    # ---- method parameters
    ("params-dm-iterations-negative", "dm iterations -5", params("dm", "iterations: -5")),
    ("params-dm-batch-real-zero", "dm batch_real 0", params("dm", "iterations: 3, batch_real: 0")),
    ("params-dm-lr-negative", "dm lr_img -1", params("dm", "iterations: 3, lr_img: -1")),
    ("params-dm-lr-nan", "dm lr_img .nan", params("dm", "iterations: 3, lr_img: .nan")),
    ("params-dm-lr-inf", "dm lr_img .inf", params("dm", "iterations: 3, lr_img: .inf")),
    ("params-dm-lr-zero", "dm lr_img 0", params("dm", "iterations: 3, lr_img: 0")),
    ("params-dm-lr-float32", "dm lr_img beyond float32 (torch's SGD refuses it)",
     params("dm", "iterations: 3, lr_img: 1.0e+300")),
    ("params-dm-momentum-high", "dm momentum 1.5", params("dm", "iterations: 3, momentum: 1.5")),
    ("params-dm-momentum-one", "dm momentum 1", params("dm", "iterations: 3, momentum: 1.0")),
    ("params-dm-init", "an unknown dm init", params("dm", "iterations: 3, init: zeros")),
    ("params-dm-dsa-string", "dm dsa: yes", params("dm", "iterations: 3, dsa: yes")),
    ("params-dm-iterations-float", "dm iterations 2e4", params("dm", "iterations: 2e4")),
    ("params-dm-iterations-string", "dm iterations quoted", params("dm", "iterations: '3'")),
    ("params-dm-iterations-huge-neg", "dm iterations -2**70", params("dm", "iterations: -1180591620717411303424")),
    ("params-dc-lr-net-negative", "dc lr_net -0.01", params("dc", "iterations: 3, lr_net: -0.01")),
    ("params-dc-outer-loop-zero", "dc outer_loop 0", params("dc", "iterations: 3, outer_loop: 0")),
    ("params-dc-batch-train-zero", "dc batch_train 0", params("dc", "iterations: 3, batch_train: 0")),
    ("params-dc-metric", "an unknown dc distance", params("dc", "iterations: 3, dis_metric: l2")),
    ("params-dsa-momentum-img", "dsa momentum_img -1", params("dsa", "iterations: 3, momentum_img: -1")),
    ("params-idm-interval-zero", "idm net_generate_interval 0 (a modulo by zero)",
     params("idm", "iterations: 3, net_generate_interval: 0")),
    ("params-idm-ce-weight-negative", "idm ce_weight -1", params("idm", "iterations: 3, ce_weight: -1")),
    ("params-idm-lr-net-nan", "idm lr_net .nan", params("idm", "iterations: 3, lr_net: .nan")),
    ("params-idm-net-num-zero", "idm net_num 0", params("idm", "iterations: 3, net_num: 0")),
    ("params-mtt-expert-lr-inf", "mtt expert_lr .inf", params("mtt", "iterations: 3, expert_lr: .inf")),
    ("params-mtt-expert-seed-negative", "mtt expert_seed -1", params("mtt", "iterations: 3, expert_seed: -1")),
    ("params-mtt-expert-seed-huge", "mtt expert_seed 2**70",
     params("mtt", "iterations: 3, expert_seed: 1180591620717411303424")),
    ("params-mtt-lr-lr-negative", "mtt lr_lr -1", params("mtt", "iterations: 3, lr_lr: -1")),
    ("params-mtt-syn-steps-zero", "mtt syn_steps 0", params("mtt", "iterations: 3, syn_steps: 0")),
    ("params-herding-feature-lr-zero", "herding feature_lr 0", params("herding", "feature_lr: 0")),
    ("params-kcenter-feature-momentum", "kcenter feature_momentum 1", params("kcenter", "feature_momentum: 1.0")),
    ("params-forgetting-feature-seed", "forgetting feature_seed -3", params("forgetting", "feature_seed: -3")),
    ("params-forgetting-epochs-zero", "forgetting feature_epochs 0", params("forgetting", "feature_epochs: 0")),
    ("params-iid-bank-arch", "an unknown iid-dm bank architecture",
     params("iid-dm", "iterations: 3, bank_arch: NoSuchNet")),
    ("params-iid-lambda-negative", "iid-dm lambda_cc -1", params("iid-dm", "iterations: 3, lambda_cc: -1")),
    ("params-iid-alpha-zero", "iid-idm cc_alpha 0", params("iid-idm", "iterations: 3, cc_alpha: 0")),
    ("params-nsd-band-drop", "nsd band_drop 1", params("nsd", "iterations: 3, band_drop: 1.0")),
    ("params-nsd-decomposition", "an unknown nsd decomposition", params("nsd", "iterations: 3, decomposition: fft")),
    ("params-udd-augment", "an unknown DSA op in udd", params("udd", "iterations: 3, match_augment: color_blur")),
    ("params-udd-region-scales", "a udd region scale of 0", params("udd", "iterations: 3, region_scales: [0, 0.5]")),
    ("params-udd-num-regions", "more udd regions than candidates", params("udd", "iterations: 3, num_regions: 100")),
    ("params-udd-decay-at", "a udd lr decay point past the end",
     params("udd", "iterations: 3, lr_img_decay_at: [1.5]")),
    ("params-udd-factor", "udd factor 0", params("udd", "iterations: 3, factor: 0")),
    ("params-udd-tau-zero", "udd tau 0", params("udd", "iterations: 3, tau: 0")),
    ("params-random-any", "a parameter for random, which takes none", params("random", "iterations: 3")),
    # ---- method plugins (tests/fuzz/plugins is put on the path)
    ("plugin-raises", "a plugin that raises on import", entry("fuzzplug_raises:Plugin")),
    ("plugin-syntax-error", "a plugin with a syntax error", entry("fuzzplug_syntax:Plugin")),
    ("plugin-sys-exit", "a plugin that calls sys.exit(3) on import", entry("fuzzplug_exit:Plugin")),
    ("plugin-base-exception", "a plugin that raises a BaseException subclass", entry("fuzzplug_baseexc:Plugin")),
    ("plugin-missing-dependency", "a plugin whose own import fails", entry("fuzzplug_needs:Plugin")),
    ("plugin-no-name", "a plugin class without a name", entry("fuzzplug_incomplete:NoName")),
    ("plugin-name-number", "a plugin whose name is a number", entry("fuzzplug_incomplete:NumberName")),
    ("plugin-no-distill", "a plugin without distill", entry("fuzzplug_incomplete:NoDistill")),
    ("plugin-no-step", "an iterative plugin without step", entry("fuzzplug_incomplete:NoStep")),
    ("plugin-not-method", "a class that is not a Method", entry("fuzzplug_incomplete:NotAMethod")),
    ("plugin-function", "a function, not a class", entry("fuzzplug_incomplete:a_function")),
    ("plugin-bad-params", "a plugin whose Params is not a Params model", entry("fuzzplug_incomplete:BadParams")),
    ("plugin-builtin-name", "a plugin named like a built-in method", entry("fuzzplug_incomplete:NamedDM")),
    ("plugin-missing-class", "a plugin path to a class that does not exist", entry("fuzzplug_ok:Missing")),
    ("plugin-missing-module", "a plugin path to a module that does not exist", entry("fuzzplug_nowhere:Plugin")),
    ("plugin-no-colon", "a plugin path without a colon", entry("fuzzplug_ok")),
    ("plugin-no-module", "a plugin path without a module", entry('":Plugin"')),
    ("plugin-no-class", "a plugin path without a class", entry('"fuzzplug_ok:"')),
    ("plugin-relative", "a relative module path", entry('"..fuzzplug_ok:Plugin"')),
    ("plugin-number", "a number as the plugin path", entry("5")),
    ("plugin-name-mismatch", "a name that is not the plugin's", entry("fuzzplug_ok:Plugin", "    name: other\n")),
    ("plugin-learned-lr", "the learned-lr preset on a plugin that learns no lr",
     entry("fuzzplug_ok:Plugin", "    eval: {preset: mtt}\n")),
    ("plugin-bad-param", "a parameter the plugin does not have",
     entry("fuzzplug_ok:Plugin", "    params: {speed: 2}\n")),
]

# (case, what it tests, bench.yaml text, extra files beside it) of each site file.
SITE = "store: results\nreports: reports\ndevice: cpu\nexecutor: local\nprofiles:\n  gpu: {partition: gpu, time: 60}\n"


def site(old: str, new: str) -> str:
    assert old in SITE, old
    return SITE.replace(old, new, 1)


SITES: list[tuple[str, str, str, dict[str, str]]] = [
    ("yaml-top-list", "a list at the top level", "- store: results\n", {}),
    ("yaml-top-string", "a string at the top level", "results\n", {}),
    ("yaml-billion-laughs", "an alias bomb", LAUGHS + SITE, {}),
    ("yaml-deep", "2,000 nested flow lists", SITE + "data_root: " + "[" * 2000 + "]" * 2000 + "\n", {}),
    ("yaml-tag", "a Python object tag", site("store: results", "store: !!python/object/apply:os.getcwd []"), {}),
    ("yaml-merge", "a merge key", site("  gpu: {partition: gpu, time: 60}", "  gpu:\n    <<: {partition: gpu}"), {}),
    ("yaml-complex-key", "a list as a key", SITE + "? [store]\n: x\n", {}),
    ("yaml-duplicate", "store twice", SITE + "store: other\n", {}),
    ("yaml-invalid", "an unclosed bracket", site("  gpu: {partition: gpu, time: 60}", "  gpu: {partition: gpu"), {}),
    ("key-unknown", "a misspelt top-level key", site("store: results", "stor: results"), {}),
    ("key-profile-unknown", "an unknown profile key", site("partition: gpu,", "partiton: gpu,"), {}),
    ("key-stage-unknown", "an unknown stage in a profile", site("time: 60}", "time: 60, train: {time: 5}}"), {}),
    ("key-stage-key-unknown", "an unknown key in a stage", site("time: 60}", "time: 60, evaluate: {gpu: 1}}"), {}),
    ("type-executor", "executor as a number", site("executor: local", "executor: 5"), {}),
    ("value-executor", "an unknown executor", site("executor: local", "executor: slurmm"), {}),
    ("value-device-tpu", "device tpu", site("device: cpu", "device: tpu"), {}),
    ("value-device-gpu", "device gpu", site("device: cpu", "device: gpu"), {}),
    ("value-device-cuda-word", "device cuda:x", site("device: cpu", "device: cuda:x"), {}),
    ("value-device-cuda-negative", "device cuda:-1", site("device: cpu", "device: cuda:-1"), {}),
    ("value-device-upper", "device CUDA", site("device: cpu", "device: CUDA"), {}),
    ("value-device-empty", "an empty device", site("device: cpu", "device: ''"), {}),
    ("type-device-number", "device as a number", site("device: cpu", "device: 0"), {}),
    ("value-profile-unknown", "a default profile that is not defined", SITE + "profile: cpu\n", {}),
    ("value-profile-none-defined", "a default profile and no profiles", "store: results\nprofile: gpu\n", {}),
    ("value-store-file", "store pointing at a file",
     site("store: results", "store: afile"), {"afile": "not a folder\n"}),
    ("value-store-under-file", "store inside a file", site("store: results", "store: afile/results"), {"afile": "x\n"}),
    ("value-store-proc", "store under /proc", site("store: results", "store: /proc/bench-store"), {}),
    ("value-store-dev-null", "store /dev/null", site("store: results", "store: /dev/null"), {}),
    ("value-store-nul", "a NUL character in the store path", site("store: results", 'store: "res\\0ults"'), {}),
    ("type-store-number", "store as a number", site("store: results", "store: 5"), {}),
    ("type-store-null", "store null", site("store: results", "store:"), {}),
    ("value-reports-file", "reports pointing at a file", site("reports: reports", "reports: afile"), {"afile": "x\n"}),
    ("type-data-root-list", "data_root as a list", SITE + "data_root: [a, b]\n", {}),
    ("value-checkpoint-zero", "checkpoint_every 0", SITE + "checkpoint_every: 0\n", {}),
    ("type-checkpoint-string", "checkpoint_every quoted", SITE + "checkpoint_every: '100'\n", {}),
    ("type-profiles-list", "profiles as a list",
     site("profiles:\n  gpu: {partition: gpu, time: 60}\n", "profiles: [gpu]\n"), {}),
    ("type-profile-null", "a null profile", site("  gpu: {partition: gpu, time: 60}", "  gpu:"), {}),
    ("value-cpus-zero", "cpus_per_task 0", site("time: 60}", "time: 60, cpus_per_task: 0}"), {}),
    ("value-gpus-negative", "gpus_per_task -1", site("time: 60}", "time: 60, gpus_per_task: -1}"), {}),
    ("value-mem-inf", "mem_gb .inf", site("time: 60}", "time: 60, mem_gb: .inf}"), {}),
    ("value-mem-negative", "mem_gb -1", site("time: 60}", "time: 60, mem_gb: -1}"), {}),
    ("value-time-word", "a time that is not a SLURM time", site("time: 60}", "time: soon}"), {}),
    ("value-time-negative", "a negative time", site("time: 60}", "time: -5}"), {}),
    ("value-time-stage-zero", "a stage time of 0", site("time: 60}", "time: 60, evaluate: {time: 0}}"), {}),
    ("value-time-four-parts", "a clock time of four parts", site("time: 60}", "time: 1:02:03:04}"), {}),
    ("value-array-parallelism-zero", "array_parallelism 0", site("time: 60}", "time: 60, array_parallelism: 0}"), {}),
    ("type-setup-string", "setup as a string", site("time: 60}", "time: 60, setup: module load cuda}"), {}),
    ("value-sbatch-reserved", "an sbatch option bench sets", site("time: 60}", "time: 60, sbatch: {array: 1-5}}"), {}),
    ("type-sbatch-list", "an sbatch value as a list", site("time: 60}", "time: 60, sbatch: {constraint: [a100]}}"), {}),
    ("value-requeues-negative", "max_requeues -1", site("time: 60}", "time: 60, max_requeues: -1}"), {}),
    ("value-signal-delay-zero", "signal_delay_s 0", site("time: 60}", "time: 60, signal_delay_s: 0}"), {}),
]

# Raw bytes: files whose encoding is the point (no comment line can be trusted to read).
BINARY_SUITES: dict[str, bytes] = {
    "yaml-binary": bytes(range(256)) * 4,
    "yaml-nul-in-text": BASE.encode().replace(b"digits", b"dig\0its"),
    "yaml-utf16-bom": ("# UTF-16 with a byte order mark\n" + BASE).encode("utf-16"),
    "yaml-utf16-be": ("# UTF-16 big-endian, no byte order mark\n" + BASE).encode("utf-16-be"),
    "yaml-latin1": ("# Latin-1 text (not UTF-8)\n" + base("name: fuzz-base", "name: café")).encode("latin-1"),
    "yaml-cp1252": ("# Windows-1252 quotes (not UTF-8)\n" + plus("description: “smart”\n")).encode("cp1252"),
    "yaml-truncated-utf8": ("# a UTF-8 sequence cut short\n" + BASE).encode() + "é".encode()[:1],
    "yaml-too-large": b"# a file over the size limit: 300,000 comment characters\n" + b"#" * 300_000 + b"\n"
                      + BASE.encode(),
    "yaml-png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64),
}
BINARY_SITES: dict[str, bytes] = {
    "yaml-binary": bytes(range(256)),
    "yaml-utf16": ("# UTF-16\n" + SITE).encode("utf-16"),
    "yaml-latin1": ("# Latin-1\n" + site("store: results", "store: résultats")).encode("latin-1"),
}

PLUGINS: dict[str, str] = {
    "fuzzplug_raises": 'raise RuntimeError("this plugin is broken on purpose")\n',
    "fuzzplug_syntax": "def broken(:\n    pass\n",
    "fuzzplug_exit": "import sys\n\nsys.exit(3)\n",
    "fuzzplug_baseexc": 'class Stop(BaseException):\n    pass\n\n\nraise Stop("a BaseException subclass")\n',
    "fuzzplug_needs": "import no_such_dependency_for_fuzz  # noqa: F401\n",
    "fuzzplug_ok": '''\
from bench.methods import Method, Params


class PluginParams(Params):
    fraction: float = 1.0


class Plugin(Method):
    name = "fuzz-ok"
    description = "A complete plugin, for the cases around it."
    uses_network = False
    Params = PluginParams

    def distill(self, ctx):
        raise NotImplementedError
''',
    "fuzzplug_incomplete": '''\
from bench.methods import IterativeMethod, Method, Params


class NoName(Method):
    description = "no name"

    def distill(self, ctx):
        raise NotImplementedError


class NumberName(NoName):
    name = 5


class NoDistill(Method):
    name = "fuzz-no-distill"
    description = "no distill"


class NoStep(IterativeMethod):
    name = "fuzz-no-step"
    description = "init and finish only"

    def init(self, ctx):
        raise NotImplementedError

    def finish(self, state):
        raise NotImplementedError


class NotAMethod:
    name = "fuzz-not-a-method"


def a_function():
    return None


class BadParams(NoName):
    name = "fuzz-bad-params"
    Params = dict


class NamedDM(NoName):
    name = "dm"
''',
}


def main() -> None:
    for folder in ("suites", "sites", "plugins"):
        shutil.rmtree(HERE / folder, ignore_errors=True)
        (HERE / folder).mkdir()
    (HERE / "base.yaml").write_text("# A valid suite: the fuzz cases are variations of it\n" + BASE)
    for name, about, text in SUITES:
        (HERE / "suites" / f"{name}.yaml").write_text(f"# {about}\n{text}")
    for name, data in BINARY_SUITES.items():
        (HERE / "suites" / f"{name}.yaml").write_bytes(data)
    folder = HERE / "suites" / "yaml-directory.yaml"  # a folder where a file is expected
    folder.mkdir()
    (folder / "README").write_text("A folder named like a suite: `bench validate` must say it is not a file.\n")
    for name, about, text, beside in SITES:
        (HERE / "sites" / name).mkdir()
        (HERE / "sites" / name / "bench.yaml").write_text(f"# {about}\n{text}")
        for file, content in beside.items():
            (HERE / "sites" / name / file).write_text(content)
    for name, data in BINARY_SITES.items():
        (HERE / "sites" / name).mkdir()
        (HERE / "sites" / name / "bench.yaml").write_bytes(data)
    for name, text in PLUGINS.items():
        (HERE / "plugins" / f"{name}.py").write_text(f'"""Fuzz corpus plugin: see tests/fuzz/generate.py."""\n\n{text}')


if __name__ == "__main__":
    main()
