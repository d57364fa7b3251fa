"""Writes the small real files that tests/files.rs loads (run from this folder).

    pip install numpy safetensors && python3 make_fixtures.py

Every table is w[i, j] = (i * 7 + j) * 0.25 - 3 for a 6 x 5 table: values
exact in f16 and f32, so the test checks them bit for bit.
"""
import numpy as np
from safetensors.numpy import save_file

ROWS, DIM = 6, 5
w = ((np.arange(ROWS)[:, None] * 7 + np.arange(DIM)[None, :]) * 0.25 - 3).astype(np.float32)

np.save("table_f32.npy", w)
np.save("table_f16.npy", w.astype(np.float16))
np.save("table_f32_fortran.npy", np.asfortranarray(w))
np.save("table_f32_bigendian.npy", w.astype(">f4"))
np.save("bad_3d.npy", w.reshape(ROWS, DIM, 1))
np.save("bad_int.npy", w.astype(np.int32))
save_file(
    {
        "weight": w,
        "weight_f16": w.astype(np.float16),
        "bias": w[0].copy(),
        "ids": np.arange(ROWS * DIM, dtype=np.int64).reshape(ROWS, DIM),
    },
    "tables.safetensors",
)
