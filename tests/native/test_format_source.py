"""The .efm format has one source, ``runtimes/exporters/efm_format.py``: the C header is generated
from it, and the C build, the Cython binding, the exporter and FORMAT.md all agree with it."""

import re
from pathlib import Path

from edgefleet import _native
from edgefleet.runtimes.exporters import efm_format as F

NATIVE = Path(__file__).resolve().parents[2] / "native"


def test_generated_header_is_current():
    assert (NATIVE / "efm_format.h").read_text() == F.c_header(), (
        "native/efm_format.h is stale: python -m edgefleet.runtimes.exporters.efm_format native/efm_format.h")


def test_c_build_and_binding_agree_with_the_source():
    assert _native.record_sizes() == {"header": F.HEADER.itemsize, "tensor": F.TENSOR.itemsize,
                                      "op": F.OP.itemsize, "blob": F.BLOB.itemsize}
    assert _native.FORMAT_VERSION == F.FORMAT_VERSION
    assert _native.opcode_names() == F.OPCODES


def test_no_hand_copied_numbers_remain():
    for name in ("efm.h", "efm_load.c", "efm_run.c", "_native.pyx"):
        text = (NATIVE / name).read_text()
        assert not re.search(r"EFM_OP_\w+\s*=\s*\d", text), name
        assert '"max_pool2d", "avg_pool2d"' not in text, name
    exporter = (NATIVE.parent / "runtimes" / "exporters" / "efm_export.py").read_text()
    assert "OPCODES = " not in exporter and "struct.Struct(" not in exporter


def test_format_doc_lists_every_opcode():
    doc = (NATIVE / "FORMAT.md").read_text()
    for number, name, _ in F.OPCODE_TABLE:
        assert re.search(rf"^\| {number}(, \d+)? \| `{name}`", doc, re.M) or re.search(
            rf"^\| \d+, {number} \| `\w+`, `{name}`", doc, re.M), name
