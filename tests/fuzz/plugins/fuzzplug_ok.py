"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

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
