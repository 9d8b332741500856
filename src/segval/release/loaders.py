"""Loader snippets written into a released package (``loaders/``), one file per framework.

* ``coco_visualize.py``: plain Python with pycocotools: lists the masks of the first images of a
  split and writes overlays of 5 images (PNG, no matplotlib) to a folder of your choice;
* ``torch_dataset.py``: a ``torch.utils.data.Dataset`` of (image, semantic target) with segval's
  rasterisation rule (larger instances painted first, train index = position in the id-sorted
  taxonomy, 255 = ignore) and a ``DataLoader`` demo;
* ``mmseg_config.py``: an MMSegmentation 1.x config fragment on the label maps (classes, palette,
  data prefixes per split, and the category-id -> train-index map when ids are not 0..C-1);
* ``detectron2_register.py``: registers every split's COCO file with Detectron2
  (``register_coco_instances``) plus stuff metadata;
* ``README.md``: how to run each.

Each script finds the package as the folder above ``loaders/`` (or the first command-line
argument), so it runs as written from anywhere. The first two are run by the tests on a generated
package; the MMSegmentation fragment is plain Python data (executed by the tests), the Detectron2
one is compiled by the tests (Detectron2 itself is not installed).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from segval.dataset.package import DatasetPackage

LOADER_FILES = ("README.md", "coco_visualize.py", "torch_dataset.py", "mmseg_config.py", "detectron2_register.py")

_HEADER = '''\
"""{title} for the dataset package {name} {version} (written by segval at release).

Run from anywhere: python {file} [package folder{extra}]
"""
'''

COCO_VISUALIZE = '''\
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
split = sys.argv[2] if len(sys.argv) > 2 else __SPLIT__
out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("preview")
out.mkdir(parents=True, exist_ok=True)

coco = COCO(str(root / "annotations" / f"{split}.json"))
colours = {c["id"]: np.array(c.get("color") or [255, 0, 0], dtype=np.float32) for c in coco.loadCats(coco.getCatIds())}
for img_id in sorted(coco.getImgIds())[:5]:
    info = coco.loadImgs(img_id)[0]
    image = np.asarray(Image.open(root / "images" / split / info["file_name"]).convert("RGB")).astype(np.float32)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
    for ann in sorted(anns, key=lambda a: -a["area"]):  # smaller masks drawn last, on top
        mask = coco.annToMask(ann).astype(bool)  # uint8[H, W] -> bool
        image[mask] = 0.5 * image[mask] + 0.5 * colours[ann["category_id"]]
        name = coco.loadCats(ann["category_id"])[0]["name"]
        print(f"{info['file_name']}: annotation {ann['id']} {name} {int(mask.sum())} px")
    target = out / (Path(info["file_name"]).stem + f"_{img_id}.png")
    Image.fromarray(image.astype(np.uint8)).save(target)
    print(f"wrote {target}")
'''

TORCH_DATASET = '''\
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import DataLoader, Dataset


class SegDataset(Dataset):
    """(image float[3, H, W] in [0, 1], target int64[H, W]): train index = position in the id-sorted
    dataset.yaml taxonomy, 255 = ignore; larger instances painted first (ties: lower annotation id)."""

    def __init__(self, root, split):
        self.root, self.split = Path(root), split
        meta = yaml.safe_load((self.root / "dataset.yaml").read_text())
        ids = sorted(c["id"] for c in meta["taxonomy"])
        self.index = {cat_id: i for i, cat_id in enumerate(ids)}
        bg = meta.get("background_id")
        self.fill = 255 if bg is None else self.index[bg]
        self.coco = COCO(str(self.root / "annotations" / f"{split}.json"))
        self.ids = sorted(self.coco.getImgIds())

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        info = self.coco.loadImgs(self.ids[i])[0]
        image = Image.open(self.root / "images" / self.split / info["file_name"]).convert("RGB")
        target = np.full((info["height"], info["width"]), self.fill, dtype=np.int64)
        masks = [(self.coco.annToMask(a).astype(bool), a) for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"]))]
        for mask, a in sorted(masks, key=lambda m: (-int(m[0].sum()), m[1]["id"])):
            target[mask] = self.index[a["category_id"]]
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        return x, torch.from_numpy(target)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    split = sys.argv[2] if len(sys.argv) > 2 else __SPLIT__
    dataset = SegDataset(root, split)
    images, targets = next(iter(DataLoader(dataset, batch_size=2, shuffle=False)))
    print(len(dataset), "images;", "batch", tuple(images.shape), tuple(targets.shape), "classes", targets.unique().tolist())
'''

MMSEG_CONFIG = '''\
# MMSegmentation 1.x config fragment: merge it into a full config (model, schedule, runtime), e.g.
#   _base_ = ["./segformer_mit-b0.py", "path/to/this/mmseg_config.py"]
# Label maps hold CATEGORY IDS (255 = ignore).__REMAP_NOTE__
dataset_type = "BaseSegDataset"
data_root = __ROOT__  # the package folder; change it when you move the package
metainfo = dict(
    classes=__CLASSES__,
    palette=__PALETTE__,
)
# category id -> train index (the model's output channel)
segval_label_map = __LABEL_MAP__
img_suffix = __IMG_SUFFIX__
seg_map_suffix = ".png"
splits = __SPLITS__
num_classes = __NUM_CLASSES__
ignore_index = 255
__DATASETS__
'''

DETECTRON2_REGISTER = '''\
import sys
from pathlib import Path

from detectron2.data import MetadataCatalog
from detectron2.data.datasets import register_coco_instances

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
NAME = __NAME__
SPLITS = __SPLITS__
STUFF_CLASSES = __CLASSES__  # train-index order (semantic heads)
STUFF_COLORS = __PALETTE__

for split in SPLITS:
    name = f"{NAME}_{split}"
    # thing classes come from the COCO file's categories (Detectron2 maps their ids to 0..K-1)
    register_coco_instances(name, {}, str(root / "annotations" / f"{split}.json"), str(root / "images" / split))
    MetadataCatalog.get(name).set(stuff_classes=STUFF_CLASSES, stuff_colors=STUFF_COLORS, ignore_label=255)

if __name__ == "__main__":
    print("registered:", ", ".join(f"{NAME}_{s}" for s in SPLITS))
'''


def _img_suffix(pkg: DatasetPackage) -> str:
    for s in pkg.splits:
        images = pkg.split(s).images
        if images:
            return PurePosixPath(images[0].file_name).suffix or ".png"
    return ".png"


def _mmseg_datasets(splits: list[str], has_label_maps: dict[str, bool]) -> str:
    lines = []
    for s in splits:
        note = "" if has_label_maps[s] else \
            "  # no label_maps/ in this package: `segval dataset export format=label_maps` writes them"
        lines.append(f"{s}_dataset = dict(type=dataset_type, data_root=data_root, metainfo=metainfo, "
                     f"data_prefix=dict(img_path=\"images/{s}\", seg_map_path=\"label_maps/{s}\"), "
                     f"img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, "
                     f"pipeline=[]){note}")
    lines.append("# e.g. train_dataloader = dict(batch_size=2, num_workers=2, sampler=dict(type=\"InfiniteSampler\", "
                 "shuffle=True), dataset=dict(train_dataset, pipeline=train_pipeline))")
    return "\n".join(lines)


def render_loaders(pkg: DatasetPackage, *, root_hint: str | None = None) -> dict[str, str]:
    """The loader files of ``pkg``: ``{file name: text}`` (see the module doc)."""
    tax = pkg.taxonomy
    classes = tuple(tax.names)
    palette = [list(c) for c in tax.colors]
    split = pkg.splits[0]
    meta = {"name": pkg.name, "version": pkg.version}

    def head(title: str, file: str, extra: str = "") -> str:
        return _HEADER.format(title=title, file=f"loaders/{file}", extra=extra, **meta)

    contiguous = tax.ids == list(range(tax.num_classes))
    remap = "" if contiguous else (
        "\n# Category ids are NOT 0..C-1 here: map label-map values with `segval_label_map` before training "
        "(e.g. a\n# LoadAnnotations subclass applying it), or export train indices with segval.")
    has_lm = {s: pkg.split(s).has_label_maps for s in pkg.splits}
    mmseg = (MMSEG_CONFIG.replace("__REMAP_NOTE__", remap)
             .replace("__ROOT__", repr(root_hint or "."))
             .replace("__CLASSES__", repr(classes)).replace("__PALETTE__", repr(palette))
             .replace("__LABEL_MAP__", repr({c: i for i, c in enumerate(tax.ids)}))
             .replace("__IMG_SUFFIX__", repr(_img_suffix(pkg))).replace("__SPLITS__", repr(list(pkg.splits)))
             .replace("__NUM_CLASSES__", str(tax.num_classes))
             .replace("__DATASETS__", _mmseg_datasets(list(pkg.splits), has_lm)))
    d2 = (DETECTRON2_REGISTER.replace("__NAME__", repr(pkg.name)).replace("__SPLITS__", repr(list(pkg.splits)))
          .replace("__CLASSES__", repr(list(classes))).replace("__PALETTE__", repr(palette)))
    readme = "\n".join([
        f"# Loaders for {pkg.name} {pkg.version}", "",
        "Each script finds the package as the folder above `loaders/` (or its first argument).", "",
        "| file | needs | run |", "|---|---|---|",
        f"| `coco_visualize.py` | pycocotools, numpy, pillow | `python loaders/coco_visualize.py . {split} preview/`: "
        "lists the masks of 5 images and writes overlays to `preview/` |",
        f"| `torch_dataset.py` | + torch, pyyaml | `python loaders/torch_dataset.py . {split}`: a `Dataset` of "
        "(image, semantic target), train indices, 255 = ignore |",
        "| `mmseg_config.py` | MMSegmentation 1.x | `_base_` it into a config: classes, palette, one dataset per split "
        "on `label_maps/` |",
        "| `detectron2_register.py` | Detectron2 | `python loaders/detectron2_register.py`, or import it: registers "
        f"`{pkg.name}_<split>` (COCO instances) with stuff metadata |",
        "",
    ])
    return {
        "README.md": readme,
        "coco_visualize.py": head("Masks and overlays of 5 images with pycocotools", "coco_visualize.py",
                                  " [split [output folder]]") + "\n" + COCO_VISUALIZE.replace("__SPLIT__", repr(split)),
        "torch_dataset.py": head("A PyTorch Dataset of semantic targets", "torch_dataset.py", " [split]")
        + "\n" + TORCH_DATASET.replace("__SPLIT__", repr(split)),
        "mmseg_config.py": head("MMSegmentation config fragment", "mmseg_config.py").replace(
            "Run from anywhere: python loaders/mmseg_config.py [package folder]", "Not a script: a config fragment")
        + "\n" + mmseg,
        "detectron2_register.py": head("Detectron2 registration of the COCO files", "detectron2_register.py")
        + "\n" + d2,
    }


def write_loaders(pkg: DatasetPackage, folder: str | os.PathLike, *, root_hint: str | None = None) -> list[Path]:
    """Write :func:`render_loaders` into ``folder`` (created); returns the paths written."""
    from segval.io import write_text

    folder = Path(folder)
    return [write_text(folder / name, text) for name, text in render_loaders(pkg, root_hint=root_hint).items()]
