"""The temporal evidence's compact per-video rows give back what the scan measured."""

from __future__ import annotations

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from segval.relabel.evidence import TemporalConfig, _RowTable, _VideoScan, videos_of

#: what scoring reads of a row (the table keeps these; the scan's working values d_prev / d_next / t / j go)
KEPT = set(_RowTable.INTS) | set(_RowTable.FLOATS) | {"box", "class_to", "class_votes"}


def test_row_table_round_trip(tmp_path):
    root = write_shapes_package(tmp_path / "shapes", images={"train": 24}, frames_per_video=6, seed=3)
    sd = DatasetPackage.open(root).split("train")
    cfg = TemporalConfig(min_pixels=1)
    seen = 0
    for vid, recs in videos_of(sd.images).items():
        scan = _VideoScan(sd, recs, vid, cfg, 0, str)
        scan.run()
        rows = list(scan.rows.values())
        back = _RowTable(rows).dicts()
        want = [{k: v for k, v in r.items() if k in KEPT} for r in rows]
        assert back == want
        assert [[type(v) for v in sorted(r.items())] for r in back] == [[type(v) for v in sorted(r.items())]
                                                                      for r in want]
        seen += len(rows)
    assert seen > 20
    # rows lacking the optional measures, a box of None, a class vote and ids past int64
    rows = [{"ann": 2**64, "cat": 1, "area": 3, "image_id": 7, "video": 0, "iou_prev": 0.0, "iou_next": 0.5,
             "box": None, "class_to": 2, "class_votes": "2/3"},
            {"ann": 5, "cat": 1, "area": 4, "image_id": 8, "video": 0, "iou_prev": 0.25, "iou_next": 0.0,
             "box": [1.0, 2.0, 3.0, 4.0], "band": 0.1, "sided": 1, "pixels": 7, "area_spike": 0.0, "motion_px": 1.5}]
    assert _RowTable(rows).dicts() == rows and _RowTable([]).dicts() == []
