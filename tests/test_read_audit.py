"""The read audit records what a stage reads under data/: Python's opens for reading and
the files this package's readers open in native code (pyarrow, safetensors)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent_abstractions.core import read_audit

SCRIPT = """
import numpy as np
from latent_abstractions.core import read_audit
from latent_abstractions.core.artifacts import read_input_table
read_audit.start("probe@toy")
np.load("data/toy/images.npy", mmap_mode="r")
read_input_table("data/toy/table.parquet")
open("data/toy/written.txt", "w").write("made here")
open("outside.txt").read()
"""


def test_python_and_native_reads_under_data_are_recorded_and_writes_are_not(tmp_path):
    (tmp_path / "data" / "toy").mkdir(parents=True)
    np.save(tmp_path / "data" / "toy" / "images.npy", np.zeros(3))
    pq.write_table(pa.table({"a": [1]}), tmp_path / "data" / "toy" / "table.parquet")
    (tmp_path / "outside.txt").write_text("not data")
    records = tmp_path / "records"
    records.mkdir()
    env = {**os.environ, read_audit.AUDIT_VARIABLE: str(records)}
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, check=True)
    assert (records / "probe@toy.reads").read_text().split() == ["data/toy/images.npy", "data/toy/table.parquet"]
