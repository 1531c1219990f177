"""Floor plans of the simulated houses: rooms, doors, access points and fingerprint tags.

Geometry only (no radio, no randomness). Coordinates are in metres; the published layout stores
them in centimetres (the simulator converts). Rooms are axis-aligned rectangles on a floor; several
rectangles may share one room *name* (one class), e.g. a hall on each storey. Doors join two
rectangles at a point; walking between rooms goes door to door. A stairs rectangle climbs one
storey along one axis (``climb``).

Layouts follow the In-Home houses of the paper's Table 3 (A: one-bed flat, 8 APs, 4 classes; B: 11
APs, 11 classes; C: 11 APs, 9 classes; D: 11 APs, 10 classes; B–D on two storeys) and a
SPHERE-like house ``S`` (4 APs, the 9 SPHERE room names, two storeys) used to calibrate the
simulator against real data. The real houses' plans are not published; these are plausible plans
with the published counts.
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque

import numpy as np

from keras_tinyloc.errors import TinyLocError

STOREY_M = 2.7  # floor-to-floor height
WRIST_M = 1.0  # height of the wrist-worn transmitter above its floor
AP_M = 2.0  # height of the access points above their floor
CELL_M = 0.25  # raster resolution for walls and shadowing


@dataclasses.dataclass(frozen=True)
class Rect:
    """One rectangular room area. ``climb``: for stairs, ``(axis, lo, hi)``: the height goes from
    the rectangle's floor at coordinate ``lo`` to one storey higher at ``hi`` along ``axis`` (0=x, 1=y)."""

    name: str
    floor: int
    x0: float
    y0: float
    x1: float
    y1: float
    climb: tuple[int, float, float] | None = None
    n_tags: int = 0  # 0 = from the area

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def contains(self, x, y) -> np.ndarray:
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)


@dataclasses.dataclass(frozen=True)
class Door:
    """A passage between rectangles ``a`` and ``b`` (indices into ``House.rects``) at ``(x, y)``.
    ``exit=True`` marks the front door (``b`` is ignored): the way out of the home."""

    a: int
    b: int
    x: float
    y: float
    exit: bool = False


@dataclasses.dataclass(frozen=True)
class AccessPoint:
    name: str
    rect: int
    x: float
    y: float


@dataclasses.dataclass
class House:
    """A floor plan. ``class_names``: unique room names in order (class id = index)."""

    letter: str
    rects: list[Rect]
    doors: list[Door]
    aps: list[AccessPoint]
    width: float
    depth: float
    n_floors: int

    def __post_init__(self) -> None:
        names: list[str] = []
        for r in self.rects:
            if r.name not in names:
                names.append(r.name)
        self.class_names = names
        self.rect_class = np.array([names.index(r.name) for r in self.rects], np.int64)
        self._adj: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(self.rects))}
        for k, d in enumerate(self.doors):
            if not d.exit:
                self._adj[d.a].append((d.b, k))
                self._adj[d.b].append((d.a, k))
        self.exit_door = next((k for k, d in enumerate(self.doors) if d.exit), None)
        self._tags = self._make_tags()

    # ------------------------------------------------------------------ geometry
    def z_at(self, rect: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height (m) of the wrist at positions ``(S,)`` inside rectangles ``rect`` ``(S,)``."""
        rect = np.asarray(rect)
        base = np.array([r.floor for r in self.rects], np.float64)[rect] * STOREY_M + WRIST_M
        z = base.copy()
        for i, r in enumerate(self.rects):
            if r.climb is None:
                continue
            m = rect == i
            axis, lo, hi = r.climb
            c = (x if axis == 0 else y)[m]
            z[m] += STOREY_M * np.clip((c - lo) / (hi - lo), 0.0, 1.0)
        return z

    def ap_xyz(self) -> np.ndarray:
        """``(F, 3)`` AP positions in metres."""
        return np.array(
            [[a.x, a.y, self.rects[a.rect].floor * STOREY_M + AP_M] for a in self.aps], np.float64
        )

    def raster(self) -> tuple[np.ndarray, int, int]:
        """``(n_floors, NY, NX)`` rectangle index per cell (-1 = no room: outside or a void)."""
        nx = int(math.ceil(self.width / CELL_M))
        ny = int(math.ceil(self.depth / CELL_M))
        xs = (np.arange(nx) + 0.5) * CELL_M
        ys = (np.arange(ny) + 0.5) * CELL_M
        gx, gy = np.meshgrid(xs, ys)
        out = np.full((self.n_floors, ny, nx), -1, np.int64)
        for i, r in enumerate(self.rects):
            out[r.floor][r.contains(gx, gy)] = i
        return out, ny, nx

    def walls_map(self, samples_per_m: float = 8.0) -> np.ndarray:
        """``(F, n_floors, NY, NX)`` walls crossed on the straight line from each cell to each AP.

        Counted on the cell's floor plan as the number of changes of room *class* along the line
        (open-plan areas with one name have no wall between them); a void counts as a room.
        """
        ras, ny, nx = self.raster()
        cls_ras = np.where(ras >= 0, self.rect_class[np.maximum(ras, 0)], -1)
        gx, gy = np.meshgrid((np.arange(nx) + 0.5) * CELL_M, (np.arange(ny) + 0.5) * CELL_M)
        out = np.zeros((len(self.aps), self.n_floors, ny, nx), np.float32)
        for a, ap in enumerate(self.aps):
            dist = np.hypot(gx - ap.x, gy - ap.y)
            n = int(math.ceil(dist.max() * samples_per_m)) + 2
            f = np.linspace(0.0, 1.0, n)[:, None, None]
            px = ap.x + (gx[None] - ap.x) * f
            py = ap.y + (gy[None] - ap.y) * f
            ix = np.clip((px / CELL_M).astype(np.int64), 0, nx - 1)
            iy = np.clip((py / CELL_M).astype(np.int64), 0, ny - 1)
            for fl in range(self.n_floors):
                c = cls_ras[fl][iy, ix]  # (n, NY, NX)
                out[a, fl] = (np.diff(c, axis=0) != 0).sum(axis=0)
        return out

    # ------------------------------------------------------------------ tags
    def _make_tags(self) -> list[tuple[int, float, float]]:
        """Fingerprint tags ``(rect, x, y)`` on a regular grid inside each rectangle."""
        tags = []
        for i, r in enumerate(self.rects):
            n = r.n_tags or int(np.clip(round(r.area / 2.5), 1, 12))
            w, d = r.x1 - r.x0, r.y1 - r.y0
            nx = max(1, int(round(math.sqrt(n * w / d))))
            ny = max(1, int(math.ceil(n / nx)))
            pts = [
                (r.x0 + w * (i_x + 0.5) / nx, r.y0 + d * (i_y + 0.5) / ny)
                for i_y in range(ny)
                for i_x in range(nx)
            ][:n]
            tags += [(i, x, y) for x, y in pts]
        return tags

    @property
    def tags(self) -> list[tuple[int, float, float]]:
        """Fingerprint tags ``(rect, x, y)``; tag id = index."""
        return self._tags

    # ------------------------------------------------------------------ routes
    def route(self, a: int, b: int) -> list[tuple[int, int]]:
        """Doors to walk through from rectangle ``a`` to ``b``: list of ``(door, next_rect)`` (BFS)."""
        if a == b:
            return []
        prev: dict[int, tuple[int, int]] = {a: (-1, -1)}
        q = deque([a])
        while q:
            u = q.popleft()
            for v, k in self._adj[u]:
                if v not in prev:
                    prev[v] = (u, k)
                    q.append(v)
        if b not in prev:
            raise TinyLocError(f"house {self.letter}: no route between rooms {a} and {b}")
        out = []
        v = b
        while v != a:
            u, k = prev[v]
            out.append((k, v))
            v = u
        return out[::-1]

    def tour(self) -> list[int]:
        """Rectangles in depth-first order from the exit rectangle (a walk visiting every room)."""
        start = self.doors[self.exit_door].a if self.exit_door is not None else 0
        seen, order, stack = set(), [], [start]
        while stack:
            u = stack.pop()
            if u in seen:
                continue
            seen.add(u)
            order.append(u)
            for v, _ in sorted(self._adj[u], reverse=True):
                if v not in seen:
                    stack.append(v)
        return order


def _rid(rects: list[Rect], name, floor: int | None = None) -> int:
    if isinstance(name, int):
        return name
    for i, r in enumerate(rects):
        if r.name == name and (floor is None or r.floor == floor):
            return i
    raise KeyError(name)


def house_layout(letter: str) -> House:
    """The floor plan of house ``A``, ``B``, ``C``, ``D`` or the SPHERE-like ``S``."""
    letter = str(letter).upper()
    builders = {"A": _layout_a, "B": _layout_b, "C": _layout_c, "D": _layout_d, "S": _layout_s}
    if letter not in builders:
        raise TinyLocError(f"unknown house {letter!r} (choose from A, B, C, D, S)")
    return builders[letter]()


def _build(letter, rects, door_specs, ap_specs, width, depth) -> House:
    """door_specs: (name_a, floor_a, name_b, floor_b, x, y) or ("exit", name, floor, x, y)."""
    doors = []
    for d in door_specs:
        if d[0] == "exit":
            doors.append(Door(_rid(rects, d[1], d[2]), -1, d[3], d[4], exit=True))
        else:
            doors.append(Door(_rid(rects, d[0], d[1]), _rid(rects, d[2], d[3]), d[4], d[5]))
    aps = [AccessPoint(n, _rid(rects, room, fl), x, y) for n, room, fl, x, y in ap_specs]
    return House(letter, rects, doors, aps, width, depth, 1 + max(r.floor for r in rects))


def _layout_a() -> House:
    # one-bed flat, 8.5 m x 7.5 m; tag counts as published: foyer 2, bedroom 7, living 12, bathroom 2
    rects = [
        Rect("foyer", 0, 4.0, 4.0, 6.0, 7.5, n_tags=2),
        Rect("bedroom", 0, 0.0, 4.0, 4.0, 7.5, n_tags=7),
        Rect("living room", 0, 0.0, 0.0, 8.5, 4.0, n_tags=12),
        Rect("bathroom", 0, 6.0, 4.0, 8.5, 7.5, n_tags=2),
    ]
    doors = [
        ("exit", "foyer", 0, 5.0, 7.45),
        ("foyer", 0, "living room", 0, 5.0, 4.0),
        ("foyer", 0, "bedroom", 0, 4.0, 5.5),
        ("foyer", 0, "bathroom", 0, 6.0, 5.5),
    ]
    aps = [
        ("ap_living_1", "living room", 0, 0.3, 0.3),
        ("ap_living_2", "living room", 0, 8.2, 0.3),
        ("ap_living_3", "living room", 0, 4.2, 3.7),
        ("ap_kitchen", "living room", 0, 7.5, 3.7),
        ("ap_bedroom_1", "bedroom", 0, 0.3, 7.2),
        ("ap_bedroom_2", "bedroom", 0, 3.7, 4.3),
        ("ap_foyer", "foyer", 0, 5.7, 7.2),
        ("ap_bathroom", "bathroom", 0, 8.2, 7.2),
    ]
    return _build("A", rects, doors, aps, 8.5, 7.5)


def _two_storey_core(extra_ground, extra_first):
    """Shared shell for B–D: hall + stairs in the middle (x 4–6), stairs climb along y 5→8."""
    rects = [
        Rect("hall", 0, 4.0, 0.0, 6.0, 5.0),
        Rect("stairs", 0, 4.0, 5.0, 6.0, 8.0, climb=(1, 5.0, 8.0), n_tags=2),
        Rect("landing", 1, 4.0, 0.0, 6.0, 8.0),
    ] + extra_ground + extra_first
    doors = [
        ("exit", "hall", 0, 5.0, 0.05),
        ("hall", 0, "stairs", 0, 5.0, 5.0),
        ("stairs", 0, "landing", 1, 5.0, 7.9),
    ]
    return rects, doors


def _layout_b() -> House:
    rects, doors = _two_storey_core(
        [
            Rect("living room", 0, 0.0, 0.0, 4.0, 5.0),
            Rect("dining room", 0, 0.0, 5.0, 4.0, 8.0),
            Rect("toilet", 0, 6.0, 0.0, 9.0, 2.0),
            Rect("kitchen", 0, 6.0, 2.0, 9.0, 8.0),
        ],
        [
            Rect("bedroom 1", 1, 0.0, 0.0, 4.0, 4.5),
            Rect("bedroom 2", 1, 0.0, 4.5, 4.0, 8.0),
            Rect("bathroom", 1, 6.0, 0.0, 9.0, 3.0),
            Rect("study", 1, 6.0, 3.0, 9.0, 8.0),
        ],
    )
    doors += [
        ("hall", 0, "living room", 0, 4.0, 2.5),
        ("hall", 0, "toilet", 0, 6.0, 1.0),
        ("hall", 0, "kitchen", 0, 6.0, 3.5),
        ("living room", 0, "dining room", 0, 2.0, 5.0),
        ("landing", 1, "bedroom 1", 1, 4.0, 2.5),
        ("landing", 1, "bedroom 2", 1, 4.0, 6.0),
        ("landing", 1, "bathroom", 1, 6.0, 1.5),
        ("landing", 1, "study", 1, 6.0, 5.0),
    ]
    aps = [
        ("ap_hall", "hall", 0, 5.7, 0.3),
        ("ap_living", "living room", 0, 0.3, 0.3),
        ("ap_dining", "dining room", 0, 0.3, 7.7),
        ("ap_toilet", "toilet", 0, 8.7, 0.3),
        ("ap_kitchen", "kitchen", 0, 8.7, 5.0),
        ("ap_kitchen_2", "kitchen", 0, 6.3, 7.7),
        ("ap_landing", "landing", 1, 4.3, 3.0),
        ("ap_bedroom_1", "bedroom 1", 1, 0.3, 0.3),
        ("ap_bedroom_2", "bedroom 2", 1, 0.3, 7.7),
        ("ap_bathroom", "bathroom", 1, 8.7, 0.3),
        ("ap_study", "study", 1, 8.7, 7.7),
    ]
    return _build("B", rects, doors, aps, 9.0, 8.0)


def _layout_c() -> House:
    rects, doors = _two_storey_core(
        [
            Rect("living room", 0, 0.0, 0.0, 4.0, 8.0),
            Rect("toilet", 0, 6.0, 0.0, 9.0, 2.0),
            Rect("kitchen", 0, 6.0, 2.0, 9.0, 8.0),
        ],
        [
            Rect("bedroom 1", 1, 0.0, 0.0, 4.0, 4.5),
            Rect("bedroom 2", 1, 0.0, 4.5, 4.0, 8.0),
            Rect("bathroom", 1, 6.0, 0.0, 9.0, 3.5),
        ],
    )
    rects.append(Rect("bedroom 1", 1, 6.0, 3.5, 9.0, 8.0))  # second part of a split master bedroom
    bed1b = len(rects) - 1
    doors += [
        ("hall", 0, "living room", 0, 4.0, 2.5),
        ("hall", 0, "toilet", 0, 6.0, 1.0),
        ("hall", 0, "kitchen", 0, 6.0, 3.5),
        ("landing", 1, "bedroom 1", 1, 4.0, 2.5),
        ("landing", 1, "bedroom 2", 1, 4.0, 6.0),
        ("landing", 1, "bathroom", 1, 6.0, 1.5),
        ("landing", 1, bed1b, 1, 6.0, 5.5),
    ]
    aps = [
        ("ap_hall", "hall", 0, 5.7, 0.3),
        ("ap_living_1", "living room", 0, 0.3, 0.3),
        ("ap_living_2", "living room", 0, 0.3, 7.7),
        ("ap_toilet", "toilet", 0, 8.7, 0.3),
        ("ap_kitchen_1", "kitchen", 0, 8.7, 2.3),
        ("ap_kitchen_2", "kitchen", 0, 8.7, 7.7),
        ("ap_landing", "landing", 1, 4.3, 3.0),
        ("ap_bedroom_1", "bedroom 1", 1, 0.3, 0.3),
        ("ap_bedroom_2", "bedroom 2", 1, 0.3, 7.7),
        ("ap_bathroom", "bathroom", 1, 8.7, 0.3),
        ("ap_bedroom_1b", bed1b, 1, 8.7, 7.7),
    ]
    return _build("C", rects, doors, aps, 9.0, 8.0)


def _layout_d() -> House:
    rects, doors = _two_storey_core(
        [
            Rect("living room", 0, 0.0, 0.0, 4.0, 5.0),
            Rect("dining room", 0, 0.0, 5.0, 4.0, 8.0),
            Rect("utility", 0, 6.0, 0.0, 9.0, 2.0),
            Rect("kitchen", 0, 6.0, 2.0, 9.0, 8.0),
        ],
        [
            Rect("bedroom 1", 1, 0.0, 0.0, 4.0, 4.5),
            Rect("bedroom 2", 1, 0.0, 4.5, 4.0, 8.0),
            Rect("bathroom", 1, 6.0, 0.0, 9.0, 8.0),
        ],
    )
    doors += [
        ("hall", 0, "living room", 0, 4.0, 2.5),
        ("hall", 0, "utility", 0, 6.0, 1.0),
        ("hall", 0, "kitchen", 0, 6.0, 3.5),
        ("living room", 0, "dining room", 0, 2.0, 5.0),
        ("landing", 1, "bedroom 1", 1, 4.0, 2.5),
        ("landing", 1, "bedroom 2", 1, 4.0, 6.0),
        ("landing", 1, "bathroom", 1, 6.0, 4.0),
    ]
    aps = [
        ("ap_hall", "hall", 0, 5.7, 0.3),
        ("ap_living", "living room", 0, 0.3, 0.3),
        ("ap_dining", "dining room", 0, 0.3, 7.7),
        ("ap_utility", "utility", 0, 8.7, 0.3),
        ("ap_kitchen_1", "kitchen", 0, 8.7, 4.0),
        ("ap_kitchen_2", "kitchen", 0, 6.3, 7.7),
        ("ap_landing", "landing", 1, 4.3, 3.0),
        ("ap_bedroom_1", "bedroom 1", 1, 0.3, 0.3),
        ("ap_bedroom_2", "bedroom 2", 1, 0.3, 7.7),
        ("ap_bathroom_1", "bathroom", 1, 8.7, 0.3),
        ("ap_bathroom_2", "bathroom", 1, 8.7, 7.7),
    ]
    return _build("D", rects, doors, aps, 9.0, 8.0)


def _layout_s() -> House:
    """SPHERE-like: 9 rooms (bath, bed1, bed2, hall, kitchen, living, stairs, study, toilet), 4 APs
    (Kitchen_AP, Lounge_AP, Upstairs_AP, Study_AP) — far fewer APs than rooms, as in SPHERE. Room
    placement follows what SPHERE's own statistics imply (toilet, bath, bed1 near the upstairs AP; bed2
    above the lounge, far from it; the study small and central)."""
    rects = [
        Rect("hall", 0, 4.0, 0.0, 6.0, 5.0),
        Rect("stairs", 0, 4.0, 5.0, 6.0, 8.0, climb=(1, 5.0, 8.0), n_tags=2),
        Rect("living", 0, 0.0, 0.0, 4.0, 8.0),
        Rect("study", 0, 6.0, 0.0, 9.0, 2.5),
        Rect("kitchen", 0, 6.0, 2.5, 9.0, 8.0),
        Rect("hall", 1, 4.0, 0.0, 6.0, 8.0),  # upstairs landing: annotated as hall
        Rect("bed2", 1, 0.0, 0.0, 4.0, 4.5),
        Rect("bed1", 1, 0.0, 4.5, 4.0, 8.0),
        Rect("bath", 1, 6.0, 0.0, 9.0, 3.5),
        Rect("toilet", 1, 6.0, 3.5, 9.0, 5.0),
        Rect("hall", 1, 6.0, 5.0, 9.0, 8.0),  # landing over the kitchen
    ]
    doors = [
        ("exit", "hall", 0, 5.0, 0.05),
        ("hall", 0, "stairs", 0, 5.0, 5.0),
        ("stairs", 0, "hall", 1, 5.0, 7.9),
        ("hall", 0, "living", 0, 4.0, 2.5),
        ("hall", 0, "study", 0, 6.0, 1.2),
        ("hall", 0, "kitchen", 0, 6.0, 4.0),
        ("hall", 1, "bed2", 1, 4.0, 2.0),
        ("hall", 1, "bed1", 1, 4.0, 6.5),
        ("hall", 1, "toilet", 1, 6.0, 4.2),
        ("hall", 1, "bath", 1, 6.0, 2.0),
    ]
    aps = [
        ("Kitchen_AP", "kitchen", 0, 8.7, 6.0),
        ("Lounge_AP", "living", 0, 0.3, 2.5),
        ("Upstairs_AP", "hall", 1, 4.3, 5.5),
        ("Study_AP", "study", 0, 8.7, 0.3),
    ]
    return _build("S", rects, doors, aps, 9.0, 8.0)


LETTERS = ("A", "B", "C", "D", "S")
