"""Compression and capture: passes (prune, lowrank, distill, quantize), recipes, the pipeline, and
the graph IR every exporter serializes. Needs the ``export`` extra (torch, onnx) for capture and
training passes; the IR and its reference interpreters need numpy only."""
