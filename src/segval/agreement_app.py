"""`segval agreement`: inter-annotator IoU between annotation sets of the same images.

Writes ``agreement.json`` (readable by the diagnosis as ``agreement``: ``{"per_class": {name: IoU},
"targets": {group: IoU}, ...}``) and ``agreement.md`` into the run directory. The definition is in
:mod:`segval.qa.agreement`.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segval.app import segval_app
from segval.errors import ConfigError, DatasetError
from segval.io import write_json, write_text


def class_groups(cfg: DictConfig, first_set: str, tax) -> list[str]:
    """Group per class: ``group_of`` overrides, else the ``taxonomy`` package's, else the COCO category's
    ``group`` or a ``supercategory`` that is a group name (as PackageWriter writes it), else the default
    of a plain COCO file (thing: rigid, stuff: stuff)."""
    from segval.dataset.coco import load_json
    from segval.dataset.package import DatasetPackage
    from segval.dataset.taxonomy import GROUPS

    by_name = {c.name: c.group for c in tax.categories}
    if cfg.taxonomy:
        ref = DatasetPackage.open(cfg.taxonomy).taxonomy
        by_name.update({c.name: c.group for c in ref.categories if c.name in by_name})
    elif Path(first_set).is_file():
        for c in load_json(Path(first_set)).get("categories") or []:
            g = c.get("group") or c.get("supercategory")
            if isinstance(c, dict) and c.get("name") in by_name and g in GROUPS:
                by_name[c["name"]] = g
    for name, g in (OmegaConf.to_container(cfg.group_of, resolve=True) if cfg.group_of else {}).items():
        if name not in by_name:
            raise ConfigError(f"group_of names class {name!r}, which is not among {list(by_name)}")
        if g not in GROUPS:
            raise ConfigError(f"group_of.{name} must be one of {list(GROUPS)}, got {g!r}")
        by_name[name] = g
    return [by_name[n] for n in tax.names]


def load_set(path: str, *, images: str | None, split: str, background: str):
    """The :class:`SplitData` of one annotation set (a COCO file or a package root)."""
    from segval.dataset.package import DatasetPackage

    p = Path(path)
    if p.is_dir():
        return DatasetPackage.open(p).split(split)
    if not p.is_file():
        raise DatasetError("annotation set not found; give a COCO .json file or a dataset package folder", path=p)
    img_dir = Path(images) if images else p.parent
    return DatasetPackage.from_coco(p, img_dir, background=background).split("train")


@segval_app("agreement")
def main(cfg: DictConfig) -> None:
    from tqdm import tqdm

    from segval.qa.agreement import AgreementAccumulator, check_same_images, format_agreement

    sets = [str(s) for s in (cfg.sets or [])]
    if len(sets) < 2:
        raise ConfigError(f"agreement needs at least two annotation sets: sets=[a.json,b.json], got {sets}")
    if len(set(sets)) != len(sets):
        raise ConfigError(f"the same annotation set is listed twice in sets={sets}")
    datas = [load_set(s, images=cfg.images, split=str(cfg.split), background=str(cfg.background)) for s in sets]
    tax = datas[0].taxonomy
    for name, d in zip(sets[1:], datas[1:], strict=True):
        if d.taxonomy.names != tax.names or d.taxonomy.ids != tax.ids:
            raise DatasetError(
                f"categories differ from those of {sets[0]}: {list(zip(d.taxonomy.ids, d.taxonomy.names))} vs "
                f"{list(zip(tax.ids, tax.names))}; the sets must use the same category ids and names", path=name)
    ids = check_same_images([[r.id for r in d.images] for d in datas], sets)
    targets = {str(k): float(v) for k, v in OmegaConf.to_container(cfg.targets, resolve=True).items()}
    for g, v in targets.items():
        if not 0.0 < v <= 1.0:
            raise ConfigError(f"targets.{g} must be in (0, 1], got {v}")
    acc = AgreementAccumulator(tax.names, class_groups(cfg, sets[0], tax), len(datas), set_names=sets,
                               targets=targets, min_pixels=int(cfg.min_pixels))
    for image_id in tqdm(ids, desc="agreement", unit="img", mininterval=1.0):
        recs = [d.image(image_id) for d in datas]
        sizes = {(r.width, r.height) for r in recs}
        if len(sizes) != 1:
            raise DatasetError(f"the annotation sets give this image different sizes (width, height): {sorted(sizes)}",
                               image_id=image_id)
        acc.update(image_id, [d.semantic_target(r) for d, r in zip(datas, recs, strict=True)])
    result = acc.result()
    out = Path(cfg.paths.output_dir)
    json_path = write_json(out / "agreement.json", result)
    md_path = write_text(out / "agreement.md", format_agreement(result, max_images=int(cfg.max_listed_images)))
    print(format_agreement(result, max_images=int(cfg.max_listed_images)))
    flagged = result["flagged_classes"]
    print(f"{len(ids)} images, {len(sets)} sets: {len(flagged)} class(es) below target"
          f"{' (' + ', '.join(flagged) + ')' if flagged else ''}, {len(result['flagged_images'])} image(s) flagged")
    print(f"agreement: {json_path}\nreport: {md_path}")


if __name__ == "__main__":
    main()
