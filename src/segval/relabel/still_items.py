"""The queue items of still-image evidence, and how they rank with the video evidence.

:func:`still_candidates` turns the fused evidence of an image (:class:`~segval.relabel.fusion.StillRanking`)
into :class:`~segval.relabel.scoring.Candidate` items that say, in one sentence, what was measured;
:func:`combined_image_scores` ranks every image of the split on one scale: ``-log`` of a tail p-value over the
images, ``max(video, video_weight x still)`` for an image of a video with still evidence, the still evidence
alone for an image without a video, the video evidence alone otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from segval.relabel.fusion import AnnotationEvidence, StillRanking, tail_pvalues
from segval.relabel.scoring import Candidate

__all__ = ["combined_image_scores", "still_candidates"]


def _neg_log_tail(scores: Mapping[int, float], ids: Sequence[int]) -> dict[int, float]:
    p = tail_pvalues([scores.get(i, -math.inf) for i in ids])
    return {i: float(-math.log(v)) for i, v in zip(ids, p)}


def combined_image_scores(video: Mapping[int, float], still: Mapping[int, float] | None, ids: Sequence[int],
                          video_of: Mapping[int, int | None], *, video_weight: float) -> dict[int, float]:
    """``{image_id: score}`` on one scale for every image of ``ids`` (see the module doc)."""
    v = _neg_log_tail(video, ids)
    if not still:
        return v
    s_ids = [i for i in ids if i in still]
    s = _neg_log_tail(still, s_ids)
    out = {}
    for i in ids:
        if i not in s:
            out[i] = v[i]
        elif video_of.get(i) is None:
            out[i] = s[i]
        else:
            out[i] = max(v[i], video_weight * s[i])
    return out


#: an item is listed when its annotation's p-value is at most this (an image keeps its best item anyway)
MAX_ITEM_P = 0.2
#: a kind is named in an item's reason when its own p-value is at most exp(-1) (its best kind anyway)
_NAMED = 1.0


def _reason(e: AnnotationEvidence, name: Callable[[int | None], str]) -> str:
    """One sentence per kind that carried the item (strongest first)."""
    parts = []
    kinds = [k for k in e.top_kinds(2) if e.kinds[k] >= _NAMED] or e.top_kinds(1)
    for kind in kinds:
        info = e.rows[kind].info
        if kind == "edge_gain":
            parts.append(f"its outline fits the image's edges {100 * info.get('edge_gain', 0):.0f} % better when "
                         f"moved ({info.get('edge_best', 'a small transform')})")
        elif kind == "edge_off_edge":
            parts.append(f"{100 * info.get('edge_off', 0):.0f} % of its outline runs away from any image edge")
        elif kind in ("appearance_colour", "appearance_model"):
            how = "colour" if kind == "appearance_colour" else "the model's features"
            other = f", mostly {name(e.suggested)}" if e.suggested is not None and info.get('appearance_other_share') else ""
            parts.append(f"{100 * info.get('appearance_other_share', 0):.0f} % of its look-alikes in other images "
                         f"(by {how}) carry another class{other}")
        elif kind == "appearance_margin":
            own, other = info.get("appearance_own_dist", 0.0), info.get("appearance_other_dist", 0.0)
            space = "colour, shape" + (", the model's features" if "model_evidence" in info else "")
            parts.append(f"its nearest look-alikes in other images (by {space}) carry {name(e.suggested)}, "
                         f"{own / max(other, 1e-3):.1f}x nearer than those labelled {name(e.category_id)}")
        elif kind == "model_missing":
            like = info.get("missing_looks_like")
            looks = "" if like is None else f"; it looks like the {name(like)} annotated in other images"
            parts.append(f"the model sees a {name(e.category_id)} here ({info.get('model_missing_pixels')} px, mean "
                         f"probability {info.get('model_missing_conf')}) where the label has none{looks}")
        elif kind == "model_selfconf":
            parts.append(f"the model gives its class a mean probability of {info.get('model_selfconf')}")
        elif kind == "model_disagree":
            parts.append(f"the model gives {100 * info.get('model_disagree', 0):.0f} % of its pixels another class")
        elif kind.startswith("dyn_"):
            parts.append(f"training dynamics ({kind[4:]}): " + ", ".join(f"{k} {v}" for k, v in info.items()
                                                                        if not isinstance(v, (list, dict))))
        else:
            parts.append(kind)
    what = "an unlabelled region" if e.annotation_id is None else f"annotation {e.annotation_id}"
    return f"{what} ({name(e.category_id)}): " + "; ".join(parts)


def still_candidates(ranking: StillRanking, image_id: int, annotations: Sequence[Mapping[str, Any]], *,
                     name: Callable[[int | None], str], video_id: int | None, max_items: int) -> list[Candidate]:
    """Up to ``max_items`` items of one image, most suspicious first; ``annotations``: the image's COCO
    annotations (their ``area`` and ``bbox`` size the item)."""
    by_id = {int(a["id"]): a for a in annotations}
    out = []
    evidence = ranking.best.get(image_id, [])
    for e in [e for e in evidence if e.p <= MAX_ITEM_P][:max_items] or evidence[:1]:
        ev: dict[str, Any] = {"still": round(-math.log(max(e.p, 1e-300)) + 0.0, 4), "p_annotation": e.p}
        for kind, v in e.kinds.items():
            ev[kind] = round(v, 4)
            ev.update({k: v2 for k, v2 in e.rows[kind].info.items() if k not in ev})
        ev.setdefault("model_evidence", "none")
        if e.annotation_id is not None and e.annotation_id in by_id:
            ann = by_id[e.annotation_id]
            region, pixels, ids = [float(x) for x in ann.get("bbox") or []] or None, float(ann.get("area") or 0), \
                [e.annotation_id]
        else:
            r = next((row.info.get("region") for row in e.rows.values() if row.info.get("region")), None)
            region, pixels, ids = r, float(sum(row.info.get("model_missing_pixels", 0) for row in e.rows.values())), []
        kind = "annotation" if ids else "missing"
        out.append(Candidate(image_id, kind, e.category_id if ids else (e.suggested or e.category_id), ids, region,
                             ev, _reason(e, name), pixels, video_id, ev["still"]))
    return out
