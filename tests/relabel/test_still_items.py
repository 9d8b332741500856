"""segval.relabel.still_items: images of videos, stills and mixed splits on one scale."""

from __future__ import annotations

import math

import pytest

from segval.relabel.still_items import combined_image_scores


def test_stills_take_their_still_evidence_videos_the_larger_of_the_two() -> None:
    ids = [1, 2, 3, 4]
    video = {1: 5.0, 2: 1.0, 3: 0.5, 4: 0.1}  # -> -log tail p over 4 images: 1.386, 0.693, 0.288, 0
    still = {2: 9.0, 3: 0.2, 4: 3.0}  # images 2 and 3 are in videos, 4 is a still; 1 has no still evidence
    video_of = {1: 7, 2: 7, 3: 8, 4: None}
    s = combined_image_scores(video, still, ids, video_of, video_weight=0.5)
    assert s[1] == pytest.approx(math.log(4))  # video evidence only
    assert s[2] == pytest.approx(max(math.log(2), 0.5 * math.log(3)))  # max(video, 0.5 x still) on -log tail p
    assert s[4] == pytest.approx(math.log(3 / 2))  # a still: its still evidence alone (second of three)
    assert combined_image_scores(video, None, ids, video_of, video_weight=0.5)[4] == 0.0
