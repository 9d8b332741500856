"""`segval agreement`: inter-annotator IoU between annotation sets of the same images.

Writes ``agreement.json`` (readable by the diagnosis as ``agreement``: ``{"per_class": {name: IoU},
"targets": {group: IoU}, ...}``) and ``agreement.md`` into the run directory. The definition is in
:mod:`segval.qa.agreement`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segval.commands._common import progress, segval_app
from segval.errors import ConfigError
from segval.io import write_json, write_text


def run(cfg: DictConfig) -> dict[str, Any]:
    from segval.qa.agreement import format_agreement
    from segval.qa.annotation_sets import agreement_of_sets, class_groups, load_annotation_set

    sets = [str(s) for s in (cfg.sets or [])]
    if len(sets) < 2:
        raise ConfigError(f"agreement needs at least two annotation sets: sets=[a.json,b.json], got {sets}")
    if len(set(sets)) != len(sets):
        raise ConfigError(f"the same annotation set is listed twice in sets={sets}")
    datas = [load_annotation_set(s, images=cfg.images, split=str(cfg.split), background=str(cfg.background))
             for s in sets]
    group_of = OmegaConf.to_container(cfg.group_of, resolve=True) if cfg.group_of else None
    groups = class_groups(datas[0].taxonomy, sets[0], taxonomy_package=cfg.taxonomy, group_of=group_of)
    targets = {str(k): float(v) for k, v in OmegaConf.to_container(cfg.targets, resolve=True).items()}
    result = agreement_of_sets(datas, sets, groups, targets=targets, min_pixels=int(cfg.min_pixels),
                               progress=progress("agreement"))
    out = Path(cfg.paths.output_dir)
    report = format_agreement(result, max_images=int(cfg.max_listed_images))
    json_path = write_json(out / "agreement.json", result)
    md_path = write_text(out / "agreement.md", report)
    print(report)
    flagged = result["flagged_classes"]
    print(f"{result['num_images']} images, {len(sets)} sets: {len(flagged)} class(es) below target"
          f"{' (' + ', '.join(flagged) + ')' if flagged else ''}, {len(result['flagged_images'])} image(s) flagged")
    print(f"agreement: {json_path}\nreport: {md_path}")
    return result


main = segval_app("agreement")(run)

if __name__ == "__main__":
    main()
