"""Randomised pybullet tabletop scenes: a table, a tray, a Franka Panda and clutter, with exact masks.

One :class:`TabletopScene` renders one video at a time: :meth:`TabletopScene.build` resets the
simulation and lays out a new scene from a ``numpy.random.Generator``; :meth:`TabletopScene.frame`
poses the arm and the camera for frame ``i`` (call it for ``i = 0, 1, ...`` in order) and returns the
RGB image with one mask per visible instance. Everything random comes from the generator handed
in, so a seed gives byte-identical frames.

Ground truth comes from pybullet's segmentation buffer rendered with
``ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX``: a pixel holds ``body + ((link + 1) << 24)``, or -1
where no body was drawn (:func:`decode_segmentation`). The Panda body is split by link into
``robot_arm`` (base, links 0-6) and ``gripper`` (links 8-10: hand and fingers; links 7 and 11
carry no geometry).

pybullet is an optional dependency: it is imported when a scene is created, never at module import.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

#: Minimum pixel count of an instance mask; smaller slivers are dropped (they become background).
MIN_INSTANCE_PIXELS = 6
TABLE_TOP_Z = 0.625  # table/table.urdf: a 5 cm slab centred at z = 0.6
ARM_BASE = (-0.62, 0.0, TABLE_TOP_Z)  # on the table's -x end, facing +x
ARM_REST = (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785)  # joints 0-6: a "ready" pose, the IK start
FINGER_JOINTS = (9, 10)
GRIPPER_LINKS = (8, 9, 10)  # panda_hand, panda_leftfinger, panda_rightfinger
EE_LINK = 11  # panda_grasptarget, between the fingertips
SETTLE_MAX_STEPS = 720  # physics steps (240 Hz) at most to let dropped objects come to rest


@dataclass(frozen=True)
class ObjectSpec:
    """A movable object class.

    Attributes:
        name: class name in the taxonomy.
        urdf: path inside pybullet_data.
        scale: range of ``globalScaling``; small meshes are enlarged so they stay learnable.
        rgb: the class's base colour (0-1); each instance is tinted from it toward a random colour.
        roll: rest orientations about the x axis to choose from (radians), e.g. a domino lying or
            on its edge; yaw is always uniform.
    """

    name: str
    urdf: str
    scale: tuple[float, float]
    rgb: tuple[float, float, float]
    roll: tuple[float, ...] = (0.0,)


OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec("mug", "objects/mug.urdf", (1.0, 1.3), (0.85, 0.25, 0.2)),
    ObjectSpec("duck", "duck_vhacd.urdf", (1.2, 1.5), (1.0, 0.9, 0.35), (math.pi / 2,)),
    ObjectSpec("lego", "lego/lego.urdf", (2.0, 2.5), (0.95, 0.85, 0.3)),
    ObjectSpec("cube", "cube_small.urdf", (1.1, 1.4), (0.9, 0.9, 0.9)),
    ObjectSpec("ball", "sphere2red.urdf", (0.06, 0.08), (0.25, 0.45, 0.9)),
    ObjectSpec("teddy", "teddy_vhacd.urdf", (1.3, 1.7), (0.85, 0.5, 0.35), (math.pi / 2,)),
    ObjectSpec("soccer_ball", "soccerball.urdf", (0.09, 0.11), (1.0, 1.0, 1.0)),
    ObjectSpec("jenga_block", "jenga/jenga.urdf", (0.8, 1.0), (0.85, 0.7, 0.5)),
    ObjectSpec("domino", "domino/domino.urdf", (2.0, 2.5), (1.0, 1.0, 1.0), (0.0, math.pi / 2)),
)
#: Scene parts: class name -> pybullet_data URDF (the floor plane is background, not annotated).

@dataclass(frozen=True)
class DropLayout:
    """Where the objects of a scene go: how many; a uniform draw below ``p_tray`` puts one in the tray, below
    ``p_near`` next to an earlier object (within ``near_radius`` m), else anywhere in ``area`` (x range, y range) of
    the table; each instance is tinted ``tint`` of the way toward a random colour."""

    objects_per_scene: tuple[int, int] = (6, 10)
    p_tray: float = 0.35
    p_near: float = 0.55
    near_radius: tuple[float, float] = (0.03, 0.09)
    area: tuple[tuple[float, float], tuple[float, float]] = ((-0.3, 0.45), (-0.38, 0.38))
    tint: float = 0.4

STUFF = {"table": "table/table.urdf", "tray": "tray/traybox.urdf", "robot_arm": "franka_panda/panda.urdf"}
GRIPPER_NAME = "gripper"
#: Every class name a scene can produce, in taxonomy order (background excluded).
CLASS_NAMES = ("table", "tray", "robot_arm", GRIPPER_NAME) + tuple(o.name for o in OBJECTS)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (pybullet prints with printf; buffered when not a terminal)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def quiet_output() -> Iterator[None]:
    """Silence C-level writes to stdout and stderr (pybullet's banners) inside the block.

    Redirects file descriptors 1 and 2 to ``os.devnull`` and restores them afterwards; a stream
    without a file descriptor (e.g. replaced by a notebook) is left alone.
    """
    saved: list[tuple[int, int]] = []
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                fd = stream.fileno()
            except (AttributeError, OSError, ValueError):
                continue
            stream.flush()
            saved.append((fd, os.dup(fd)))
        _flush_c_stdio()
        with open(os.devnull, "w") as devnull:
            for fd, _ in saved:
                os.dup2(devnull.fileno(), fd)
        yield
    finally:
        _flush_c_stdio()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def import_pybullet():
    """Import ``(pybullet, pybullet_data)`` quietly; a clear ImportError when not installed."""
    try:
        with quiet_output():
            import pybullet
            import pybullet_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the demo renderer needs pybullet: pip install pybullet") from err
    return pybullet, pybullet_data


@dataclass
class Instance:
    """One visible instance in a frame: its class name and ``mask: bool[H, W]``."""

    name: str
    mask: np.ndarray


def decode_segmentation(
    seg: np.ndarray, bodies: Mapping[int, str], arm: int = -1, *, min_pixels: int = MIN_INSTANCE_PIXELS
) -> list[Instance]:
    """Split a pybullet segmentation buffer into instance masks.

    Args:
        seg: ``int32[H, W]`` rendered with ``ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX``: body id in
            the low 24 bits, link index + 1 above them, -1 where nothing was drawn.
        bodies: body id -> class name for the annotated bodies; others (the floor) are background.
        arm: body id of the Panda, whose links :data:`GRIPPER_LINKS` form a separate ``gripper``
            instance (-1: no arm).
        min_pixels: instances with fewer pixels are dropped.

    Returns:
        One :class:`Instance` per annotated body (two for the arm), ordered by body id.
    """
    seg = np.asarray(seg, dtype=np.int32)
    valid = seg >= 0  # test first: -1 & 0xFFFFFF would read as body 16777215
    body = np.where(valid, seg & 0xFFFFFF, -1)
    link = (seg >> 24) - 1
    code = body * 2 + ((body == arm) & np.isin(link, GRIPPER_LINKS) & valid)  # (H, W); -2 = none
    keys, counts = np.unique(code[valid], return_counts=True)
    out = []
    for key, n in zip(keys.tolist(), counts.tolist()):
        b, is_gripper = divmod(key, 2)
        if b not in bodies or n < min_pixels:
            continue
        out.append(Instance(GRIPPER_NAME if is_gripper else bodies[b], code == key))
    return out


def _smooth(t: float) -> float:
    """Smoothstep on [0, 1]: zero velocity at both ends."""
    return t * t * (3.0 - 2.0 * t)


class TabletopScene:
    """A pybullet DIRECT client rendering randomised tabletop videos with ``ER_TINY_RENDERER``.

    Args:
        width, height: image size in pixels.

    Use as a context manager (or call :meth:`close`) so the client is disconnected.
    """

    def __init__(self, width: int, height: int) -> None:
        self.p, self._data = import_pybullet()
        self.width, self.height = int(width), int(height)
        with quiet_output():
            self.cid = self.p.connect(self.p.DIRECT)
        self.bodies: dict[int, str] = {}  # annotated body id -> class name
        self.arm = -1
        self.num_frames = 0

    def close(self) -> None:
        if self.cid >= 0:
            self.p.disconnect(physicsClientId=self.cid)
            self.cid = -1

    def __enter__(self) -> TabletopScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: str, *args, **kwargs):
        return getattr(self.p, fn)(*args, physicsClientId=self.cid, **kwargs)

    def _load(self, urdf: str, pos, orn=(0, 0, 0, 1), *, scale: float = 1.0, fixed: bool = False) -> int:
        path = os.path.join(self._data.getDataPath(), urdf)
        return self._call("loadURDF", path, pos, orn, useFixedBase=fixed, globalScaling=scale)

    def _tint(self, body: int, rng: np.random.Generator, base, amount: float) -> None:
        """Colour every visual of ``body``: ``base`` mixed toward a random colour by up to
        ``amount``, times a random brightness; moderate, so shape rather than colour tells classes apart."""
        t = rng.uniform(0.0, amount)
        rgb = (1 - t) * np.asarray(base) + t * rng.uniform(0.0, 1.0, size=3)
        rgba = (*np.clip(rgb * rng.uniform(0.8, 1.1), 0.0, 1.0).tolist(), 1.0)
        for link in range(-1, self._call("getNumJoints", body)):
            self._call("changeVisualShape", body, link, rgbaColor=rgba)

    def _set_arm(self, joints, finger: float) -> None:
        for j, q in enumerate(joints):
            self._call("resetJointState", self.arm, j, q)
        for j in FINGER_JOINTS:
            self._call("resetJointState", self.arm, j, finger)

    # ------------------------------------------------------------------ one video
    def build(self, rng: np.random.Generator, *, num_frames: int) -> None:
        """Reset the simulation, lay out a new random scene and plan its camera, light and arm paths.

        Args:
            rng: the only source of randomness.
            num_frames: frames the video will have (the paths are spread over them).
        """
        self._call("resetSimulation")
        self._call("setGravity", 0, 0, -9.81)
        self.bodies = {}
        self.num_frames = int(num_frames)
        self._load("plane.urdf", (0, 0, 0), fixed=True)  # floor: background
        table = self._load(STUFF["table"], (0, 0, 0), fixed=True)
        self._tint(table, rng, (1.0, 1.0, 1.0), 0.25)
        # Tray: on the far half of the table, random yaw and size.
        tray_xy, tray_yaw = rng.uniform((0.0, -0.25), (0.35, 0.25)), rng.uniform(-0.4, 0.4)
        tray_scale = rng.uniform(0.55, 0.7)
        tray = self._load(STUFF["tray"], (*tray_xy, TABLE_TOP_Z + 0.006 * tray_scale),
                          self.p.getQuaternionFromEuler((0, 0, tray_yaw)), scale=tray_scale, fixed=True)
        self._tint(tray, rng, (0.75, 0.75, 0.75), 0.35)
        self.arm = self._load(STUFF["robot_arm"], ARM_BASE, fixed=True)
        self._tint(self.arm, rng, (0.95, 0.95, 0.95), 0.15)
        self.bodies.update({table: "table", tray: "tray", self.arm: "robot_arm"})
        objects = self._drop_objects(rng, tray_xy, tray_yaw, 0.24 * tray_scale, 0.02 * tray_scale)
        self._set_arm(ARM_REST, 0.04)
        self._settle(objects)
        self._plan(rng)

    def _settle(self, objects: list[int]) -> None:
        """Let the dropped ``objects`` come to rest; those that fell off the table are removed, the rest
        become ``self.objects``."""
        for _ in range(SETTLE_MAX_STEPS // 60):
            for _ in range(60):
                self._call("stepSimulation")
            speeds = [math.hypot(*self._call("getBaseVelocity", b)[0]) for b in objects]
            if max(speeds, default=0.0) < 0.01:
                break
        self.objects = []
        for b in objects:
            if self._call("getBasePositionAndOrientation", b)[0][2] < TABLE_TOP_Z - 0.05:
                self._call("removeBody", b)
                del self.bodies[b]
            else:
                self.objects.append(b)

    def _drop_objects(self, rng: np.random.Generator, tray_xy, tray_yaw: float, tray_half: float,
                      tray_floor: float, objects: tuple[ObjectSpec, ...] = OBJECTS,
                      layout: DropLayout = DropLayout()) -> list[int]:
        """Place the objects just above the surface under them: some in the tray, some next to or on earlier ones
        (occlusion, stacking), the rest anywhere in the arm's reach (``layout``)."""
        n = int(rng.integers(layout.objects_per_scene[0], layout.objects_per_scene[1] + 1))
        # Mostly distinct classes per scene, so every class shows up often; repeats now and then.
        kinds = np.concatenate([rng.permutation(len(objects)), rng.integers(len(objects), size=n)])[:n]
        c, s = math.cos(tray_yaw), math.sin(tray_yaw)
        placed: list[tuple[float, float, float]] = []  # (x, y, top z)
        bodies = []
        for k in kinds.tolist():
            spec = objects[k]
            roll = spec.roll[int(rng.integers(len(spec.roll)))]
            orn = self.p.getQuaternionFromEuler((roll, 0.0, rng.uniform(-math.pi, math.pi)))
            scale = rng.uniform(*spec.scale)
            where, floor = rng.uniform(), TABLE_TOP_Z
            if where < layout.p_tray:  # in the tray
                u, v = 0.8 * rng.uniform(-tray_half, tray_half, size=2)
                x, y = tray_xy[0] + c * u - s * v, tray_xy[1] + s * u + c * v
                floor += tray_floor
            elif where < layout.p_near and placed:  # next to (or onto) an earlier object
                ox, oy, _ = placed[int(rng.integers(len(placed)))]
                ang, r = rng.uniform(0, 2 * math.pi), rng.uniform(*layout.near_radius)
                x, y = ox + r * math.cos(ang), oy + r * math.sin(ang)
            else:
                x, y = rng.uniform(*layout.area[0]), rng.uniform(*layout.area[1])
            body = self._load(spec.urdf, (0, 0, 2.0), orn, scale=scale)
            lo, hi = self._call("getAABB", body)
            under = max([floor] + [tz for px, py, tz in placed if math.hypot(px - x, py - y) < 0.08])
            pos = self._call("getBasePositionAndOrientation", body)[0]
            shift = (x - 0.5 * (lo[0] + hi[0]), y - 0.5 * (lo[1] + hi[1]), under + 0.003 - lo[2])
            self._call("resetBasePositionAndOrientation", body, [a + d for a, d in zip(pos, shift)], orn)
            placed.append((x, y, under + hi[2] - lo[2]))
            self._tint(body, rng, spec.rgb, layout.tint)
            self.bodies[body] = spec.name
            bodies.append(body)
        return bodies

    def _plan(self, rng: np.random.Generator) -> None:
        """Choose the camera path, the light and the end effector's waypoints."""
        # Camera: looks near the objects' centroid from an azimuth never right behind the arm
        # (which sits at -x); target, azimuth, elevation and distance drift from start to end.
        centre = np.array([0.1, 0.0, TABLE_TOP_Z])
        if self.objects:
            xy = [self._call("getBasePositionAndOrientation", b)[0][:2] for b in self.objects]
            centre[:2] = 0.5 * centre[:2] + 0.5 * np.mean(xy, axis=0)
        az0 = rng.uniform(-140, 140)
        self._cam = {
            "target": centre + rng.normal(0.0, (0.08, 0.08, 0.02), size=(2, 3)),
            "az": np.radians([az0, az0 + rng.uniform(-30, 30)]),
            "el": np.radians(rng.uniform(25, 65, size=2)),
            "dist": rng.uniform(0.55, 0.95, size=2),
        }
        self._fov = rng.uniform(45, 58)
        self._shadow = int(rng.uniform() < 0.5)  # shadows double the render time: half the videos
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.5  # from above
        self._light = {
            "lightDirection": (d / np.linalg.norm(d)).tolist(),
            "lightColor": rng.uniform(0.75, 1.0, size=3).tolist(),
            "lightDistance": 2.0,
            "lightAmbientCoeff": float(rng.uniform(0.35, 0.65)),
            "lightDiffuseCoeff": float(rng.uniform(0.4, 0.7)),
            "lightSpecularCoeff": float(rng.uniform(0.0, 0.25)),
        }
        # Arm: the gripper, pointing down, visits points above 2-3 objects (or the table).
        stops = []
        for _ in range(int(rng.integers(2, 4))):
            if self.objects and rng.uniform() < 0.8:
                body = self.objects[int(rng.integers(len(self.objects)))]
                x, y, z = self._call("getBasePositionAndOrientation", body)[0]
            else:
                x, y, z = rng.uniform(-0.2, 0.4), rng.uniform(-0.35, 0.35), TABLE_TOP_Z
            stops.append((x, y, max(z, TABLE_TOP_Z) + rng.uniform(0.12, 0.3), rng.uniform(-1.2, 1.2)))
        self._stops = np.array(stops)  # (S, 4): x, y, z, gripper yaw
        self._fingers = rng.uniform(0.0, 0.04, size=2)
        self._set_arm(ARM_REST, self._fingers[0])  # IK starts from here: deterministic

    # ------------------------------------------------------------------ one frame
    def frame(self, index: int) -> tuple[np.ndarray, list[Instance]]:
        """Pose the arm and camera for frame ``index`` (render frames in order) and render it.

        Returns:
            ``(rgb, instances)``: ``rgb: uint8[H, W, 3]`` and one :class:`Instance` per visible
            annotated body (the arm split into ``robot_arm`` and ``gripper``) with at least
            :data:`MIN_INSTANCE_PIXELS` pixels.
        """
        t = index / max(self.num_frames - 1, 1)
        # Arm: IK (from the previous frame's joints) toward a point between two waypoints.
        seg_t = t * (len(self._stops) - 1)
        i = min(int(seg_t), len(self._stops) - 2)
        s = _smooth(seg_t - i)
        x, y, z, yaw = (1 - s) * self._stops[i] + s * self._stops[i + 1]
        q = self._call("calculateInverseKinematics", self.arm, EE_LINK, (x, y, z),
                       self.p.getQuaternionFromEuler((math.pi, 0.0, yaw)),
                       maxNumIterations=60, residualThreshold=1e-4)
        self._set_arm(q[:7], (1 - t) * self._fingers[0] + t * self._fingers[1])
        # Camera.
        s = _smooth(t)
        target, az, el, dist = ((1 - s) * self._cam[k][0] + s * self._cam[k][1]
                                for k in ("target", "az", "el", "dist"))
        eye = target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        view = self._call("computeViewMatrix", eye.tolist(), target.tolist(), (0, 0, 1))
        proj = self._call("computeProjectionMatrixFOV", self._fov, self.width / self.height, 0.02, 5.0)
        _, _, rgba, _, seg = self._call(
            "getCameraImage", self.width, self.height, view, proj, shadow=self._shadow,
            renderer=self.p.ER_TINY_RENDERER, flags=self.p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
            **self._light)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3].copy()
        seg = np.asarray(seg, dtype=np.int32).reshape(self.height, self.width)
        return rgb, decode_segmentation(seg, self.bodies, self.arm)
