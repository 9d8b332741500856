"""Scene variants of the demo renderer: other objects, another arm, other camera ranges.

The standard demo (:mod:`segval.demo.scene`) has a fixed object set, a Franka Panda and fixed camera
ranges; anything tuned on it (the relabel queue's weights, thresholds) must be checked on scenes it
has never seen. A :class:`SceneVariant` names an object set (its own taxonomy), an arm
(:data:`ARMS`: ``panda`` or ``xarm6``, whose gripper links form the ``gripper`` class) and camera
ranges; :class:`VariantScene` renders it with the same physics and frame logic as
:class:`~segval.demo.scene.TabletopScene`, and :func:`render_variant` writes a package exactly like
:func:`segval.demo.render.render_dataset` (same layout, video keys, determinism).

``VARIANTS["heldout"]``: nine object classes of pybullet_data that the standard set does not use
(a long block, a small sphere, a box and six procedurally generated ``random_urdfs`` shapes), the
uFactory xArm 6 with its gripper, higher and farther cameras with a narrower field of view, and
two look-alike pairs for swaps (``inject.swap_pairs=[[blob_round,blob_boxy],[blob_wedge,blob_slab]]``).

``VARIANTS["unseen"]``: a third object set, kept for reporting only (nothing was tuned on it): eight
other ``random_urdfs`` shapes named as workshop parts, the Panda arm, low and close cameras with a wide
field of view, a warm table tint and two look-alike pairs (``[[knob,cap],[clip,spacer]]``).

Proposed config (render.yaml): ``render.variant: standard`` (default, today's renderer) or
``heldout`` or ``unseen``; ``segval data render render.variant=heldout render.seed=1 render.root=data/demo_heldout``.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segval.dataset.taxonomy import Category, Taxonomy, palette_color
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.scene import (
    OBJECTS,
    DropLayout,
    STUFF,
    TABLE_TOP_Z,
    Instance,
    ObjectSpec,
    TabletopScene,
    _smooth,
    quiet_output,
)

__all__ = ["ARMS", "VARIANTS", "ArmSpec", "SceneVariant", "VariantScene", "render_variant", "variant_taxonomy"]


@dataclass(frozen=True)
class ArmSpec:
    """A fixed-base arm: URDF, where it stands, its rest pose and which links are the gripper."""

    urdf: str
    base: tuple[float, float, float]
    arm_joints: tuple[int, ...]
    rest: tuple[float, ...]
    finger_joints: tuple[int, ...]
    finger_range: tuple[float, float]
    gripper_links: tuple[int, ...]
    ee_link: int
    tint: tuple[float, float, float] = (0.95, 0.95, 0.95)


ARMS: dict[str, ArmSpec] = {
    "panda": ArmSpec(STUFF["robot_arm"], (-0.62, 0.0, TABLE_TOP_Z), tuple(range(7)),
                     (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785), (9, 10), (0.0, 0.04), (8, 9, 10), 11),
    "xarm6": ArmSpec("xarm/xarm6_with_gripper.urdf", (-0.55, 0.0, TABLE_TOP_Z), (1, 2, 3, 4, 5, 6),
                     (0.0, -0.4, -0.6, 0.0, 1.0, 0.0), (8, 9, 10, 11, 12, 13), (0.0, 0.6),
                     (7, 8, 9, 10, 11, 12, 13), 7, (0.85, 0.85, 0.9)),
}


@dataclass(frozen=True)
class SceneVariant:
    """What a variant changes (see the module doc)."""

    name: str
    objects: tuple[ObjectSpec, ...]
    arm: str = "panda"
    azimuth: float = 140.0  # |start azimuth| <= this (degrees); the arm sits at 180
    elevation: tuple[float, float] = (25.0, 65.0)
    distance: tuple[float, float] = (0.55, 0.95)
    fov: tuple[float, float] = (45.0, 58.0)
    table_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: DropLayout = DropLayout()
    swap_pairs: tuple[tuple[str, str], ...] = (("lego", "cube"), ("ball", "soccer_ball"))
    colors: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("table", "tray", "robot_arm", "gripper") + tuple(o.name for o in self.objects)


HELDOUT_OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec("block", "block.urdf", (1.0, 1.3), (0.2, 0.7, 0.25), (0.0, math.pi / 2)),
    ObjectSpec("marble", "sphere_small.urdf", (0.9, 1.2), (0.9, 0.45, 0.1)),
    ObjectSpec("box", "cube.urdf", (0.04, 0.055), (0.55, 0.35, 0.75)),
    ObjectSpec("blob_flat", "random_urdfs/000/000.urdf", (0.9, 1.2), (0.3, 0.8, 0.85)),
    ObjectSpec("blob_round", "random_urdfs/017/017.urdf", (0.8, 1.1), (0.85, 0.2, 0.3)),
    ObjectSpec("blob_boxy", "random_urdfs/123/123.urdf", (0.8, 1.1), (0.8, 0.25, 0.35)),
    ObjectSpec("blob_tall", "random_urdfs/256/256.urdf", (0.8, 1.1), (0.95, 0.85, 0.4)),
    ObjectSpec("blob_wedge", "random_urdfs/512/512.urdf", (0.8, 1.1), (0.45, 0.45, 0.95)),
    ObjectSpec("blob_slab", "random_urdfs/777/777.urdf", (0.8, 1.1), (0.4, 0.5, 0.9)),
)

UNSEEN_OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec("bracket", "random_urdfs/042/042.urdf", (0.8, 1.1), (0.35, 0.75, 0.4)),
    ObjectSpec("knob", "random_urdfs/088/088.urdf", (0.8, 1.1), (0.9, 0.55, 0.15)),
    ObjectSpec("cap", "random_urdfs/150/150.urdf", (0.8, 1.1), (0.85, 0.6, 0.2)),
    ObjectSpec("clip", "random_urdfs/301/301.urdf", (0.8, 1.1), (0.6, 0.3, 0.75)),
    ObjectSpec("spacer", "random_urdfs/404/404.urdf", (0.8, 1.1), (0.55, 0.35, 0.7)),
    ObjectSpec("housing", "random_urdfs/600/600.urdf", (0.8, 1.1), (0.7, 0.7, 0.7)),
    ObjectSpec("plate", "random_urdfs/888/888.urdf", (0.8, 1.1), (0.2, 0.5, 0.6)),
    ObjectSpec("bolt", "random_urdfs/950/950.urdf", (0.8, 1.1), (0.95, 0.95, 0.3)),
)

VARIANTS: dict[str, SceneVariant] = {
    "standard": SceneVariant("standard", OBJECTS),
    "heldout": SceneVariant(
        "heldout", HELDOUT_OBJECTS, arm="xarm6", azimuth=160.0, elevation=(35.0, 75.0), distance=(0.65, 1.1),
        fov=(40.0, 50.0), table_tint=(0.75, 0.8, 0.9),
        layout=DropLayout((5, 9), p_tray=0.3, p_near=0.5, near_radius=(0.04, 0.1),
                          area=((-0.25, 0.45), (-0.4, 0.4)), tint=0.35),
        swap_pairs=(("blob_round", "blob_boxy"), ("blob_wedge", "blob_slab"))),
    "unseen": SceneVariant(
        "unseen", UNSEEN_OBJECTS, arm="panda", azimuth=120.0, elevation=(20.0, 50.0), distance=(0.5, 0.8),
        fov=(52.0, 62.0), table_tint=(0.95, 0.85, 0.7),
        layout=DropLayout((4, 8), p_tray=0.4, p_near=0.4, near_radius=(0.05, 0.12),
                          area=((-0.2, 0.4), (-0.35, 0.35)), tint=0.3),
        swap_pairs=(("knob", "cap"), ("clip", "spacer"))),
}


def variant_taxonomy(variant: SceneVariant) -> Taxonomy:
    """Background 0, then table, tray (stuff), robot_arm, gripper and the objects (things), ids 1..n."""
    cats = [Category(0, "background", (0, 0, 0), False, "stuff")]
    for k, name in enumerate(variant.class_names, 1):
        group = "stuff" if name in ("table", "tray") else ("thin" if name == "gripper" else "rigid")
        cats.append(Category(k, name, tuple(variant.colors.get(name, palette_color(k))), name not in ("table", "tray"),
                             group))
    return Taxonomy(cats, background_id=0)


def _decode(seg: np.ndarray, bodies: Mapping[int, str], arm: int, gripper_links: tuple[int, ...],
            min_pixels: int = 6) -> list[Instance]:
    """:func:`segval.demo.scene.decode_segmentation` with the arm's own gripper links."""
    seg = np.asarray(seg, dtype=np.int32)
    valid = seg >= 0
    body = np.where(valid, seg & 0xFFFFFF, -1)
    link = (seg >> 24) - 1
    code = body * 2 + ((body == arm) & np.isin(link, gripper_links) & valid)
    keys, counts = np.unique(code[valid], return_counts=True)
    out = []
    for key, n in zip(keys.tolist(), counts.tolist()):
        b, is_gripper = divmod(key, 2)
        if b in bodies and n >= min_pixels:
            out.append(Instance("gripper" if is_gripper else bodies[b], code == key))
    return out


class VariantScene(TabletopScene):
    """:class:`~segval.demo.scene.TabletopScene` rendering a :class:`SceneVariant`."""

    def __init__(self, width: int, height: int, variant: SceneVariant | str = "heldout") -> None:
        super().__init__(width, height)
        self.variant = VARIANTS[variant] if isinstance(variant, str) else variant
        self.arm_spec = ARMS[self.variant.arm]

    def _set_arm(self, joints, finger: float) -> None:
        for j, q in zip(self.arm_spec.arm_joints, joints):
            self._call("resetJointState", self.arm, j, q)
        for j in self.arm_spec.finger_joints:
            self._call("resetJointState", self.arm, j, finger)

    def build(self, rng: np.random.Generator, *, num_frames: int) -> None:
        v, a = self.variant, self.arm_spec
        self._call("resetSimulation")
        self._call("setGravity", 0, 0, -9.81)
        self.bodies = {}
        self.num_frames = int(num_frames)
        self._load("plane.urdf", (0, 0, 0), fixed=True)
        table = self._load(STUFF["table"], (0, 0, 0), fixed=True)
        self._tint(table, rng, v.table_tint, 0.3)
        tray_xy, tray_yaw = rng.uniform((-0.05, -0.3), (0.35, 0.3)), rng.uniform(-0.6, 0.6)
        tray_scale = rng.uniform(0.5, 0.65)
        tray = self._load(STUFF["tray"], (*tray_xy, TABLE_TOP_Z + 0.006 * tray_scale),
                          self.p.getQuaternionFromEuler((0, 0, tray_yaw)), scale=tray_scale, fixed=True)
        self._tint(tray, rng, (0.6, 0.55, 0.5), 0.35)
        self.arm = self._load(a.urdf, a.base, fixed=True)
        self._tint(self.arm, rng, a.tint, 0.15)
        self.bodies.update({table: "table", tray: "tray", self.arm: "robot_arm"})
        objects = self._drop_objects(rng, tray_xy, tray_yaw, 0.24 * tray_scale, 0.02 * tray_scale, v.objects,
                                     v.layout)
        self._set_arm(a.rest, a.finger_range[1])
        self._settle(objects)
        self._plan(rng)
        # the camera ranges of the variant (the base plan drew the standard ones from the same generator)
        az0 = rng.uniform(-v.azimuth, v.azimuth)
        self._cam["az"] = np.radians([az0, az0 + rng.uniform(-30, 30)])
        self._cam["el"] = np.radians(rng.uniform(*v.elevation, size=2))
        self._cam["dist"] = rng.uniform(*v.distance, size=2)
        self._fov = rng.uniform(*v.fov)
        self._fingers = rng.uniform(*a.finger_range, size=2)
        self._set_arm(a.rest, self._fingers[0])

    def frame(self, index: int) -> tuple[np.ndarray, list[Instance]]:
        a = self.arm_spec
        t = index / max(self.num_frames - 1, 1)
        seg_t = t * (len(self._stops) - 1)
        i = min(int(seg_t), len(self._stops) - 2)
        s = _smooth(seg_t - i)
        x, y, z, yaw = (1 - s) * self._stops[i] + s * self._stops[i + 1]
        q = self._call("calculateInverseKinematics", self.arm, a.ee_link, (x, y, z),
                       self.p.getQuaternionFromEuler((math.pi, 0.0, yaw)), maxNumIterations=60, residualThreshold=1e-4)
        self._set_arm(q[: len(a.arm_joints)], (1 - t) * self._fingers[0] + t * self._fingers[1])
        s = _smooth(t)
        target, az, el, dist = ((1 - s) * self._cam[k][0] + s * self._cam[k][1] for k in ("target", "az", "el", "dist"))
        eye = target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        view = self._call("computeViewMatrix", eye.tolist(), target.tolist(), (0, 0, 1))
        proj = self._call("computeProjectionMatrixFOV", self._fov, self.width / self.height, 0.02, 5.0)
        _, _, rgba, _, seg = self._call(
            "getCameraImage", self.width, self.height, view, proj, shadow=self._shadow,
            renderer=self.p.ER_TINY_RENDERER, flags=self.p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, **self._light)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3].copy()
        seg = np.asarray(seg, dtype=np.int32).reshape(self.height, self.width)
        return rgb, _decode(seg, self.bodies, self.arm, a.gripper_links)


def render_variant(root: str | os.PathLike, *, variant: str = "heldout", videos: Mapping[str, int] | None = None,
                   frames_per_video: int = 16, width: int = 320, height: int = 240, seed: int = 1,
                   version: str = "1.0.0", overwrite: bool = False, progress: bool = True) -> Path:
    """:func:`segval.demo.render.render_dataset` for a variant (its own taxonomy and name)."""
    from tqdm.auto import tqdm

    v = VARIANTS[variant]
    videos = {"train": 9, "val": 3} if videos is None else dict(videos)
    tax = variant_taxonomy(v)
    ids = {c.name: c.id for c in tax}
    writer = PackageWriter(root, name=f"segval-demo-{variant}", version=version, taxonomy=tax, splits=list(videos),
                           description=f"segval demo renderer, scene variant {variant!r} (arm {v.arm}).",
                           overwrite=overwrite)
    total = sum(videos.values()) * frames_per_video
    with quiet_output():
        scene = VariantScene(width, height, v)
    with scene, writer as out, tqdm(total=total, desc=f"rendering {Path(root).name}", disable=not progress) as bar:
        video_id = 0
        for split, n in videos.items():
            for k in range(int(n)):
                name = f"{split}_{k:03d}"
                rng = np.random.default_rng([int(seed), zlib.crc32(split.encode()), k, zlib.crc32(variant.encode())])
                scene.build(rng, num_frames=frames_per_video)
                for f in range(frames_per_video):
                    rgb, insts = scene.frame(f)
                    out.add_image(split, rgb, f"{name}/{f:06d}.png",
                                  instances=[InstanceMask(ids[i.name], i.mask) for i in insts],
                                  extra={"video_id": video_id, "frame_index": f, "video_name": name})
                    bar.update(1)
                video_id += 1
    return Path(root)
