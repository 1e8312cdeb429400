"""Benchmark harness for dataset distillation."""
