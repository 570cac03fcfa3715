"""The KV-cache timing script runs and reports every batch size and backend choice."""

from __future__ import annotations

import json

from vgcourse.scripts.kv_cache_speed import BACKENDS, main


def test_kv_cache_speed_reports_each_batch_and_backend(tmp_path):
    out = tmp_path / "speed.json"
    table = main(["--tiny", "--batches", "2", "3", "--out", str(out)])
    assert set(table) == {f"{b} {name}" for b in (2, 3) for name in BACKENDS}
    for row in table.values():
        assert all(v > 0 for v in row.values()), row
        assert abs(row["speedup_second"] - row["uncached_ms_per_clip"] / row["cached_second_ms_per_clip"]) < 1e-9
    assert json.loads(out.read_text())["table"] == table
