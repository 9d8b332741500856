"""The analysis report: plots, worst-images mosaic, report.md / report.html, on hand-made inputs."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from segval.report import mosaic as mz
from segval.report import plots
from segval.report.analyze import MOSAIC_STEM, ReportInputs, render_html, render_markdown, write_report
from segval.report.markdown_safe import md_code, md_escape

NAMES = ["background", "disc", "<b>&x", "bar$a$", "never"]
COLORS = [(0, 0, 0), (220, 40, 40), (40, 200, 40), (40, 60, 220), (200, 200, 0)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == PNG_MAGIC
    img = Image.open(io.BytesIO(data))
    img.load()
    arr = np.asarray(img)
    assert arr.ndim == 3 and arr.shape[0] > 50 and arr.shape[1] > 50
    return arr


def make_findings() -> dict[str, Any]:
    """Five classes: ok, two weak (one named ``<b>&x``), ok with a ``$`` in its name, absent."""
    status = ["ok", "weak", "weak", "ok", "absent"]
    ious = [0.9, 0.2, 0.1, 0.5, None]
    classes = []
    for i, name in enumerate(NAMES):
        weak = status[i] == "weak"
        classes.append({
            "name": name, "id": i, "index": i, "group": ["stuff", "rigid", "rigid", "thin", "deformable"][i],
            "status": status[i], "IoU": ious[i], "Acc": None if ious[i] is None else 0.8,
            "boundary_IoU": None if ious[i] is None else ious[i] / 2, "threshold": 0.4 if i != 3 else 0.3,
            "causes": [
                {"cause": "confusion", "strength": 0.7, "evidence": {}, "summary": f"{name} loses 70% to background"},
                {"cause": "few_examples", "strength": 0.9, "evidence": {}, "summary": f"{name} has 3 train images"},
            ] if weak else [],
            "worst_images": [{"image_id": 10 * i + j, "score": 100.0 - j, "label_quality": 0.1 * j,
                              "reason": f"{100 - j} px of {name} predicted as another class"} for j in range(3)]
            if weak else [],
            "actions": [f"relabel the 3 worst images of {name}", f"collect more training images of {name}"]
            if weak else [],
        })
    return {
        "schema_version": 1, "dataset": {"name": "toy", "version": "1.2.0", "source": "/data/toy"},
        "split": "val", "step": 40, "thresholds": {"default": 0.4, "by_group": {"thin": 0.3}},
        "summary": {"mIoU": 0.425, "weak_classes": ["<b>&x", "disc"], "absent_classes": ["never"],
                    "never_in_training": []},
        "classes": classes,
    }


def make_metrics() -> dict[str, Any]:
    rows = []
    for i, name in enumerate(NAMES):
        absent = name == "never"
        rows.append({"index": i, "id": i, "name": name, "status": "absent" if absent else "present",
                     "IoU": None if absent else 0.5, "Acc": None if absent else 0.8, "Dice": None if absent else 0.6,
                     "Precision": None, "gt_pixels": 0 if absent else 100 * (i + 1),
                     "pred_pixels": 0 if absent else 90})
    return {"schema_version": 1, "dataset": {"name": "toy", "version": "1.2.0"}, "split": "val", "step": 40,
            "checkpoint": "/runs/a/checkpoints/best.ckpt", "per_class": rows,
            "summary": {"mIoU": 0.425, "mAcc": 0.8, "aAcc": 0.7, "fwIoU": 0.6}}


def make_confmat() -> np.ndarray:
    conf = np.random.default_rng(0).integers(0, 500, (5, 5))
    conf[4, :] = 0
    conf[:, 4] = 0  # "never": no GT, no prediction
    return conf


TRAIN_STATS = {n: {"images": i, "instances": 2 * i, "pixels": 1000 * i, "median_instance_area": 50.0 * i}
               for i, n in enumerate(NAMES)}  # background has 0 pixels: cannot go on a log axis


# ---------------------------------------------------------------------------------------- plots
def test_iou_bars_draw_absent_classes_as_absent_not_zero() -> None:
    rows = make_findings()["classes"]
    fig = plots.iou_bars_figure(rows)
    ax = fig.axes[0]
    bars = [p for p in ax.patches]
    assert len(bars) == len(rows)
    for bar, row in zip(bars, rows):
        if row["status"] == "absent":
            assert bar.get_fill() is False or bar.get_facecolor()[3] == 0  # an empty, hatched outline
            assert bar.get_hatch()
        else:
            assert bar.get_width() == pytest.approx(row["IoU"])
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("absent") for t in texts)
    assert [t.get_text() for t in ax.get_yticklabels()] == [plots.mpl_text(n) for n in NAMES]
    # a threshold tick per class, at that class's threshold
    xs = sorted({ln.get_xdata()[0] for ln in ax.lines})
    assert xs == [0.3, 0.4]
    decode_png(plots.iou_bars(rows))


def test_confusion_heatmap_is_row_normalised_with_empty_rows_masked() -> None:
    conf = make_confmat()
    fig = plots.confusion_heatmap_figure(conf, NAMES)
    data = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(data[:4].sum(axis=1), 1.0)
    assert data.mask[4].all() and not data.mask[:4].any()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[4].endswith("(no GT)")
    decode_png(plots.confusion_heatmap(conf, NAMES))
    with pytest.raises(ValueError, match="5x5"):
        plots.confusion_heatmap(conf[:4], NAMES)


def test_confusion_heatmap_stays_readable_with_30_classes() -> None:
    names = [f"class_{i:02d}" for i in range(30)]
    conf = np.random.default_rng(1).integers(0, 100, (30, 30))
    arr = decode_png(plots.confusion_heatmap(conf, names))
    assert arr.shape[0] >= 900 and arr.shape[1] >= 900  # the figure grows with the classes


def test_frequency_scatter_leaves_out_absent_and_unseen_classes() -> None:
    rows = make_findings()["classes"]
    fig = plots.frequency_scatter_figure(rows, TRAIN_STATS, threshold=0.4)
    ax = fig.axes[0]
    pts = ax.collections[0].get_offsets()
    drawn = ["disc", "<b>&x", "bar$a$"]  # background: 0 train pixels; never: absent
    total = sum(s["pixels"] for s in TRAIN_STATS.values())
    np.testing.assert_allclose(pts[:, 0], [TRAIN_STATS[n]["pixels"] / total for n in drawn])
    np.testing.assert_allclose(pts[:, 1], [0.2, 0.1, 0.5])
    assert ax.get_xscale() == "log"
    note = " ".join(t.get_text() for t in fig.texts)
    assert "never" in note and "background" in note
    assert plots.frequency_scatter(rows, {}) is None
    decode_png(plots.frequency_scatter(rows, TRAIN_STATS))
    instances = plots.frequency_scatter_figure(rows, TRAIN_STATS, measure="instances")
    np.testing.assert_allclose(instances.axes[0].collections[0].get_offsets()[:, 0], [2, 4, 6])


def test_boundary_scatter_has_the_identity_line() -> None:
    rows = make_findings()["classes"]
    fig = plots.boundary_scatter_figure(rows)
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), line.get_ydata())
    assert len(ax.collections[0].get_offsets()) == 4  # the absent class is not drawn
    decode_png(plots.boundary_scatter(rows))
    assert plots.boundary_scatter([{**r, "boundary_IoU": None} for r in rows]) is None


def test_report_plots_skip_plots_without_data() -> None:
    f = make_findings()
    assert list(plots.report_plots(f, make_confmat(), train_stats=TRAIN_STATS)) == [
        "iou_per_class", "confusion_matrix", "frequency_vs_iou", "boundary_vs_iou"]
    no_extra = {**f, "classes": [{**c, "boundary_IoU": None} for c in f["classes"]]}
    assert list(plots.report_plots(no_extra, make_confmat())) == ["iou_per_class", "confusion_matrix"]


# ---------------------------------------------------------------------------------------- mosaic
def test_colorize_overlay_and_error_map_pixels() -> None:
    gt = np.array([[0, 1], [2, 255]], np.uint8)
    pred = np.array([[0, 2], [2, 1]], np.uint8)
    img = np.full((2, 2, 3), 100, np.uint8)
    np.testing.assert_array_equal(mz.colorize(gt, COLORS), [[COLORS[0], COLORS[1]], [COLORS[2], mz.IGNORE_COLOR]])
    ov = mz.overlay(img, gt, COLORS, alpha=0.5, background_index=0)
    np.testing.assert_array_equal(ov[0, 0], [100, 100, 100])  # background is not painted
    np.testing.assert_array_equal(ov[0, 1], [160, 70, 70])  # (100 + colour) / 2
    err = mz.error_map(img, gt, pred)
    np.testing.assert_array_equal(err[0, 1], mz.ERROR_COLOR)  # disc predicted as <b>&x
    np.testing.assert_array_equal(err[1, 1], mz.IGNORE_COLOR)  # ignore, whatever the prediction
    assert tuple(err[0, 0]) not in (mz.ERROR_COLOR, mz.IGNORE_COLOR)
    assert tuple(err[1, 0]) not in (mz.ERROR_COLOR, mz.IGNORE_COLOR)


def _items(n: int, *, with_pred: bool = True, size: int = 100) -> list[mz.MosaicItem]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (3 * size, 4 * size, 3), dtype=np.uint8)
        gt = np.zeros((3 * size, 4 * size), np.uint8)
        gt[size // 2: 3 * size // 2, size: 5 * size // 2] = 1
        gt[:5] = 255
        pred = gt.copy()
        pred[6 * size // 5: 2 * size, size: 5 * size // 2] = 2
        out.append(mz.MosaicItem(i, img, gt, pred if with_pred else None, f"<b>&x: {i} px missed"))
    return out


def test_render_mosaic_with_and_without_predictions() -> None:
    full = decode_png(mz.render_mosaic(_items(2), NAMES, COLORS, background_index=0))
    gt_only = decode_png(mz.render_mosaic(_items(2, with_pred=False), NAMES, COLORS, background_index=0,
                                          missing_predictions="no checkpoint"))
    assert full.shape[1] > 1.6 * gt_only.shape[1]  # four columns instead of two
    with pytest.raises(ValueError, match="at least one"):
        mz.render_mosaic([], NAMES, COLORS)
    bad = _items(1)[0]
    bad.pred = bad.pred[:10]
    with pytest.raises(ValueError, match="image 0"):
        mz.render_mosaic([bad], NAMES, COLORS)


def test_render_mosaic_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mz.MAX_IMAGES <= 12
    monkeypatch.setattr(mz, "MAX_IMAGES", 2)
    one = decode_png(mz.render_mosaic(_items(1, size=20), NAMES, COLORS, max_side=64))
    many = decode_png(mz.render_mosaic(_items(5, size=20), NAMES, COLORS, max_side=64))
    capped = decode_png(mz.render_mosaic(_items(2, size=20), NAMES, COLORS, max_side=64))
    assert many.shape == capped.shape and many.shape[0] > one.shape[0]
    # images are downscaled: a 4000 px wide image takes no more room than a 400 px one
    big = decode_png(mz.render_mosaic(_items(1, size=1000), NAMES, COLORS, max_side=64))
    assert big.shape == one.shape


def test_select_worst_images_round_robin_then_label_quality() -> None:
    f = make_findings()
    picks = mz.select_worst_images(f, None, k=4)
    # weakest class first (<b>&x, IoU 0.1, ids 20..22), then disc (ids 10..12), one each in turn
    assert [p["image_id"] for p in picks] == [20, 10, 21, 11]
    assert picks[0]["reason"].startswith("<b>&x: ")
    per_image = [{"image_id": 99, "label_quality": 0.01, "mIoU": 0.5}, {"image_id": 20, "label_quality": 0.0},
                 {"image_id": 98, "label_quality": None, "mIoU": 0.05}]
    picks = mz.select_worst_images(f, per_image, k=9)
    ids = [p["image_id"] for p in picks]
    assert ids[:6] == [20, 10, 21, 11, 22, 12] and ids[6:] == [99, 98]  # no repeat of 20
    assert "label quality" in picks[6]["reason"] and "mIoU" in picks[7]["reason"]
    assert len(mz.select_worst_images(f, [{"image_id": i, "label_quality": i} for i in range(100)], k=50)) == 12
    assert mz.select_worst_images({"classes": []}, None, k=8) == []


class _FixedModel(torch.nn.Module):
    """Predicts class 1 in the left half of any image."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        logits = torch.zeros(b, 3, h, w)
        logits[:, 1, :, : w // 2] = 1.0
        return logits


def test_load_items_aligns_image_truth_and_prediction(make_coco_package: Any) -> None:
    from segval.datamodules import SegmentationDataModule

    root = make_coco_package()
    dm = SegmentationDataModule(root=root, train_split="train", val_split="train", validate=False)
    ds = dm.dataset("train")
    items, missing = mz.load_items(ds, [{"image_id": 1, "reason": "test"}, {"image_id": 77, "reason": "x"}],
                                   model=_FixedModel())
    assert missing == [77] and len(items) == 1
    it = items[0]
    raw = ds.split.read_image(ds.records[0])
    assert np.abs(it.image.astype(int) - raw.astype(int)).max() <= 1  # the normalisation undone
    np.testing.assert_array_equal(it.gt, ds.split.semantic_target(ds.records[0]))
    assert it.pred.shape == it.gt.shape and (it.pred[:, :4] == 1).all() and (it.pred[:, 4:] == 0).all()
    no_model, _ = mz.load_items(ds, [{"image_id": 1, "reason": "test"}])
    assert no_model[0].pred is None
    decode_png(mz.render_mosaic(items + no_model, ["background", "cube", "cable"], COLORS[:3], background_index=0))


# ---------------------------------------------------------------------------------------- documents
class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.srcs += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


_PNGS: dict[str, Any] = {}


def _inputs() -> ReportInputs:
    f = make_findings()
    if not _PNGS:  # drawn once for the document tests
        _PNGS["plots"] = plots.report_plots(f, make_confmat(), train_stats=TRAIN_STATS)
        _PNGS["mosaic"] = mz.render_mosaic(_items(1, size=20), NAMES, COLORS)
    return ReportInputs(
        findings=f, metrics=make_metrics(),
        per_image=[{"image_id": 20, "mIoU": 0.05, "label_quality": 0.02, "top_confused_gt": "<b>&x",
                    "top_confused_pred": "background", "top_confused_pixels": 80}],
        plots=_PNGS["plots"], mosaic=_PNGS["mosaic"], notes=["no boundary_iou.json <here>"], source="/runs/a",
    )


def test_markdown_has_every_class_escaped_and_absent_not_zero() -> None:
    md = render_markdown(_inputs())
    for name in NAMES:
        assert md_escape(name) in md
    assert "<b>" not in md and r"\<b\>\&x" in md
    row = next(line for line in md.splitlines() if line.startswith("| never |")).strip("| ").split(" | ")
    assert row[3:7] == ["absent"] * 4 and row[-1] == "absent"  # IoU, Acc, Dice, boundary IoU: never 0
    # weak classes: weakest first, causes ranked by strength
    assert md.index("### " + md_escape("<b>&x")) < md.index("### disc")
    section = md[md.index("### disc"):]
    assert section.index("few") < section.index("confusion")
    assert "![worst images](plots/worst_images.png)" in md
    for stem in ("iou_per_class", "confusion_matrix", "frequency_vs_iou", "boundary_vs_iou"):
        assert f"(plots/{stem}.png)" in md
    assert md_escape("no boundary_iou.json <here>") in md


def test_html_is_self_contained_parses_and_escapes() -> None:
    inputs = _inputs()
    page = render_html(inputs)
    p = _Collect()
    p.feed(page)
    p.close()
    text = "\n".join(p.text)
    for name in NAMES:
        assert name in text  # unescaped by the parser: shown as written
    assert "b" not in p.tags  # the class named <b>&x did not become a tag
    assert "&lt;b&gt;&amp;x" in page and "<b>&x" not in page
    assert "no boundary_iou.json <here>" in text
    # every image is an embedded PNG; nothing is fetched from elsewhere
    assert p.srcs and all(s.startswith("data:image/png;base64,") for s in p.srcs)
    assert len(p.srcs) == len(inputs.plots) + 1
    for s in p.srcs:
        decode_png(base64.b64decode(s.split(",", 1)[1]))
    assert not re.search(r"<(script|link)\b", page)
    assert "absent" in text


def test_report_without_optional_inputs() -> None:
    f = make_findings()
    inputs = ReportInputs(f)
    md, page = render_markdown(inputs), render_html(inputs)
    assert "No per-image scores" not in md  # worst images still come from the findings
    bare = {**f, "classes": [{**c, "worst_images": []} for c in f["classes"]]}
    assert "No per-image scores" in render_markdown(ReportInputs(bare))
    assert "<img" not in page


def test_write_report_writes_files_atomically(tmp_path: Path) -> None:
    inputs = _inputs()
    paths = write_report(tmp_path / "report", inputs)
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(inputs)
    assert paths["html"].read_text(encoding="utf-8") == render_html(inputs)
    names = sorted(p.name for p in (tmp_path / "report" / "plots").iterdir())
    assert names == sorted([f"{s}.png" for s in inputs.plots] + [f"{MOSAIC_STEM}.png"])
    for p in paths["plots"]:
        decode_png(p.read_bytes())
    # a second report replaces the first; nothing else is left beside it
    write_report(tmp_path / "report", ReportInputs(make_findings()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert list((tmp_path / "report" / "plots").iterdir()) == []


def test_md_code_cannot_be_closed_by_the_text() -> None:
    assert md_code("disc") == "`disc`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("``x") == "``` ``x ```"  # starts with a backtick: padded, fence longer than any run
    assert md_code("two\n words") == "`two words`"
