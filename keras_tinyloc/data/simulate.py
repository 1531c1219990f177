"""A physically grounded simulator of the In-Home BLE houses, written in the published layout.

``simulate_house(letter, out_dir, seed, scale)`` writes ``out_dir/house_X/`` exactly as the published
archive is laid out (``metadata/*.dat``, ``experiments/{fingerprint_floor, living_1..N}/
rx_wearable_data.dat`` + ``tag_annotations.dat``), so :mod:`keras_tinyloc.data.inhome` reads real and
simulated houses through the same code.

The model, from the room up:

* **Floor plan** (:mod:`keras_tinyloc.data.floorplan`): rooms, doors, storeys, APs, fingerprint tags.
* **Mobility.** Scripted ("fingerprint") walks visit every tag of every room, standing at each;
  free-living days are room visits with log-normal dwell times (minutes in living rooms and
  bedrooms), spots inside a room held for about a minute, walks along door-to-door routes at about
  1 m/s (the stairs slower), so halls and stairs appear only briefly in transit, and periods outside
  the home (no packet heard, no annotation).
* **Radio.** Per packet and AP: log-distance path loss ``P0 − 10·n·log10(d)`` on the 3-D distance,
  an attenuation per interior wall crossed (counted on the raster of the wearer's storey) and per
  storey (reduced on the open stairwell), a spatially correlated log-normal shadowing map per AP (a
  static part for the house plus a small part that changes per recording), body shadowing that
  depends on the wearer's heading relative to the AP (the heading follows the walk, or a random
  facing while standing, plus a fast wrist/torso wobble), a slow AR(1) fading term, and a fast term
  (fading + measurement noise) that only affects the reported value. A packet is received when a
  logistic detection curve around the receiver sensitivity (50 % at −103 dBm) applied to the
  slowly varying level says so; each AP has a Gilbert–Elliott interference channel whose bad state
  raises that threshold (bursty drop-outs of the weaker links, the strong ones survive), and a rarer
  wearable-level Gilbert–Elliott channel silences all APs at once. Received RSSI is rounded to an
  integer in −110..0 dBm. Packets are sent at 5 Hz with up to 30 ms of jitter; a packet that no AP
  heard leaves no row. In houses A–D each AP is down for a whole free-living recording with
  probability 0.1 (SPHERE lacks one of its four APs in every sequence; house S copies SPHERE's
  pattern exactly).

The constants in :class:`RadioParams` were calibrated against the real SPHERE Challenge house
(per-AP reception, missing-run lengths, packet-to-packet change, nearest-AP level); the comparison
is in ``docs/results/simulator_realism.md`` (``benchmarks/simulator_realism.py``).

Everything is drawn from ``numpy.random.Generator`` s seeded by ``(seed, letter[, recording])``: the
same ``(letter, seed, scale)`` gives byte-identical files. House ``A`` at scale 1 takes about 1 s.

Not simulated (the published archive has them): ``accelerometer_filtered.dat`` and
``activity_annotation_times.dat``; nothing in this project reads them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from keras_tinyloc import paths
from keras_tinyloc.data import floorplan
from keras_tinyloc.data.floorplan import CELL_M, STOREY_M, WRIST_M, House
from keras_tinyloc.errors import TinyLocError

# Table 3 of the paper: scripted (fingerprint) and free-living minutes, living sessions (23 in all).
# "S" is the SPHERE-like house used to compare the simulator with real data.
HOUSE_SPEC: dict[str, dict] = {
    "A": {"fingerprint_min": 39.0, "living_min": 49.6, "n_living": 4},
    "B": {"fingerprint_min": 117.8, "living_min": 47.2, "n_living": 5},
    "C": {"fingerprint_min": 82.0, "living_min": 237.0, "n_living": 7},
    "D": {"fingerprint_min": 97.0, "living_min": 178.4, "n_living": 7},
    # SPHERE-like: like the real house, one AP is switched off in each recording (Study_AP, then Lounge_AP)
    "S": {"fingerprint_min": 60.0, "living_min": 180.0, "n_living": 6,
          "ap_off": {"fingerprint_floor": [3], "living_1": [3], "living_2": [3], "living_3": [3],
                     "living_4": [1], "living_5": [1], "living_6": [1]}},
}
SIM_VERSION = 4  # bump when the simulator's output changes (names the cached copies)
PACKET_MS = 200  # 5 Hz
RSSI_MIN, RSSI_MAX = -110, 0
WEARABLE_ID = 1
START = np.datetime64("2017-03-06T09:00:00.000", "ms")


@dataclasses.dataclass(frozen=True)
class RadioParams:
    """Radio-channel constants (dB, dBm, m, packets). Calibrated against SPHERE (see module doc)."""

    p0_dbm: float = -52.0  # RSSI at 1 m, line of sight, facing the AP
    path_exp: float = 2.7  # log-distance path-loss exponent
    wall_db: float = 8.0  # per interior wall crossed (brick)
    floor_db: float = 22.0  # per storey between wearer and AP
    stairwell_factor: float = 0.3  # fraction of the floor loss on the stairs (open stairwell)
    shadow_db: float = 3.0  # static log-normal shadowing (std), spatially correlated
    shadow_corr_m: float = 1.0  # correlation length of the shadowing map
    day_shadow_db: float = 1.5  # per-recording change of the shadowing map (std)
    body_db: float = 10.0  # body shadowing when the AP is straight behind the wearer
    slow_db: float = 4.0  # slow fading std (AR(1)); decides reception together with the mean
    slow_rho: float = 0.995  # slow fading correlation from packet to packet (~40 s)
    fast_db: float = 4.4  # fast fading + measurement noise std (not in detection)
    fast_hold: float = 0.5  # probability that a packet repeats the previous packet's fast term
    sens_dbm: float = -103.0  # 50 % detection point of the receiver
    sens_slope_db: float = 1.5  # width of the logistic detection curve
    ge_good_to_bad: float = 0.004  # per-AP Gilbert–Elliott interference channel (mean good run 50 s)
    ge_bad_to_good: float = 0.01  # (mean bad run 20 s)
    ge_bad_db: float = 25.0  # threshold rise (desensitisation) in the bad state
    dev_good_to_bad: float = 0.0003  # wearable-level drop-outs (all APs miss)
    dev_bad_to_good: float = 0.04
    jitter_ms: int = 30  # advertising jitter, uniform in [0, jitter_ms)
    ap_outage_prob: float = 0.1  # chance that an AP is down for a whole free-living recording (houses A–D)


DEFAULT_RADIO = RadioParams()
TURN_RHO = 0.9  # wrist/torso turning: packet-to-packet correlation (~2 s)
TURN_STD_RAD = 0.8  # and its spread (rad)

_TRANSIT = ("hall", "foyer", "landing", "stairs")
_WEIGHTS = {  # destination weights of free-living room visits (by name keyword)
    "living": 5.0, "lounge": 5.0, "kitchen": 3.0, "bedroom 1": 3.0, "bedroom": 3.0,
    "bedroom 2": 1.0, "bed2": 3.0, "bed1": 1.0, "dining": 1.5, "study": 0.6, "utility": 0.4,
    "bathroom": 1.0, "bath": 1.0, "toilet": 1.0,
}
_DWELL_S = {  # median dwell (s) of a free-living visit, log-normal
    "living": 200, "lounge": 200, "kitchen": 150, "bed": 200, "dining": 150, "study": 60,
    "utility": 60, "bath": 100, "toilet": 50,
}


def _weight(name: str) -> float:
    if any(k in name for k in _TRANSIT):
        return 0.0
    for k in sorted(_WEIGHTS, key=len, reverse=True):
        if k in name:
            return _WEIGHTS[k]
    return 1.0


def _dwell_median(name: str) -> float:
    for k, v in _DWELL_S.items():
        if k in name:
            return float(v)
    return 240.0


# --------------------------------------------------------------------------- mobility
class _Timeline:
    """Piecewise-linear trajectory: segments of standing (kind 0), walking (1) and being out (2)."""

    def __init__(self, house: House, rng: np.random.Generator, rect: int, x: float, y: float):
        self.h, self.rng = house, rng
        self.t = 0.0
        self.rect, self.x, self.y = rect, x, y
        self.heading = float(rng.uniform(-math.pi, math.pi))
        self.seg: list[tuple] = []  # (t0, t1, x0, y0, x1, y1, rect, heading, kind)

    def _add(self, dur, x1, y1, rect, kind, heading=None):
        if dur <= 0:
            return
        h = self.heading if heading is None else heading
        self.seg.append((self.t, self.t + dur, self.x, self.y, x1, y1, rect, h, kind))
        self.t += dur
        self.x, self.y, self.heading = x1, y1, h

    def stay(self, dur: float, heading: float | None = None) -> None:
        if heading is None:
            heading = float(self.rng.uniform(-math.pi, math.pi))
        self._add(dur, self.x, self.y, self.rect, 0, heading)

    def _leg(self, x1, y1, rect, speed):
        dist = math.hypot(x1 - self.x, y1 - self.y)
        if dist < 1e-6:
            return
        heading = math.atan2(y1 - self.y, x1 - self.x)
        self._add(dist / speed, x1, y1, rect, 1, heading)

    def walk_to(self, rect: int, x: float, y: float, pause_transit: float = 0.0) -> None:
        """Walk door to door to ``(x, y)`` in ``rect``; maybe pause briefly in transit rooms."""
        speed = float(self.rng.uniform(0.8, 1.2))
        for door, nxt in self.h.route(self.rect, rect):
            d = self.h.doors[door]
            self._leg(d.x, d.y, self.rect, speed * (0.35 if self.h.rects[self.rect].climb else 1.0))
            self.rect = nxt
            if pause_transit and any(k in self.h.rects[nxt].name for k in _TRANSIT):
                if self.rng.random() < pause_transit:
                    self.stay(float(self.rng.uniform(2.0, 10.0)))
        self._leg(x, y, rect, speed * (0.35 if self.h.rects[rect].climb else 1.0))
        self.rect = rect

    def go_out(self, dur: float) -> None:
        """Leave by the front door, stay out ``dur`` s (no packets), come back in."""
        k = self.h.exit_door
        d = self.h.doors[k]
        self.walk_to(d.a, d.x, d.y)
        self._add(dur, d.x, d.y, d.a, 2)

    def random_spot(self, rect: int, margin: float = 0.4) -> tuple[float, float]:
        r = self.h.rects[rect]
        mx = min(margin, (r.x1 - r.x0) / 3)
        my = min(margin, (r.y1 - r.y0) / 3)
        return float(self.rng.uniform(r.x0 + mx, r.x1 - mx)), float(self.rng.uniform(r.y0 + my, r.y1 - my))

    def arrays(self, end: float) -> dict[str, np.ndarray]:
        seg = [s for s in self.seg if s[0] < end]
        a = np.array(seg, np.float64)
        a[-1, 1] = max(a[-1, 1], end)
        keys = ("t0", "t1", "x0", "y0", "x1", "y1", "rect", "heading", "kind")
        return {k: a[:, i] for i, k in enumerate(keys)}


def _scripted(house: House, rng: np.random.Generator, dur_s: float) -> _Timeline:
    """Walk the tour, standing at the tags of every room; repeat until ``dur_s``."""
    order = house.tour()
    tags_by_rect = {i: [k for k, (r, _, _) in enumerate(house.tags) if r == i] for i in range(len(house.rects))}

    def plan(limit: int, reverse: bool) -> list[int]:
        rects = order[::-1] if reverse else order
        out = []
        for r in rects:
            tg = tags_by_rect[r]
            out += tg[::-1][:limit] if reverse else tg[:limit]
        return out

    # choose how many tags per room fit (every room at least once) and the standing time per tag
    max_tags = max(len(v) for v in tags_by_rect.values())
    limit, dwell = max_tags, 3.0
    for limit in range(max_tags, 0, -1):
        probe = _Timeline(house, np.random.default_rng(0), order[0], *house.tags[tags_by_rect[order[0]][0]][1:])
        visits = plan(limit, False)
        for k in visits:
            r, x, y = house.tags[k]
            probe.walk_to(r, x, y)
        dwell = (dur_s - probe.t) / max(1, len(visits))  # probe.t = walking time alone
        if dwell >= 3.0 or limit == 1:
            break
    dwell = float(np.clip(dwell, 2.0, 45.0))
    first = house.tags[plan(limit, False)[0]]
    tl = _Timeline(house, rng, first[0], first[1], first[2])
    rep = 0
    while tl.t < dur_s:
        for k in plan(limit, rep % 2 == 1):
            r, x, y = house.tags[k]
            tl.walk_to(r, x, y)
            tl.stay(dwell * float(rng.uniform(0.8, 1.2)))
            if tl.t >= dur_s:
                break
        rep += 1
    return tl


def _free_living(house: House, rng: np.random.Generator, dur_s: float) -> _Timeline:
    """Room visits with long log-normal dwells; rare trips outside the home."""
    names = [r.name for r in house.rects]
    # a room's weight is split among its rectangles by area
    cls_area = np.bincount(house.rect_class, weights=[r.area for r in house.rects])
    w = np.array([_weight(n) * r.area / cls_area[house.rect_class[i]] for i, (n, r) in enumerate(zip(names, house.rects))])
    w = w / w.sum()
    start = int(rng.choice(len(w), p=w))
    tl = _Timeline(house, rng, start, *_Timeline(house, rng, start, 0, 0).random_spot(start))
    cur = start
    while tl.t < dur_s:
        # a visit: several spots inside the room
        name = names[cur]
        visit = float(_dwell_median(name) * np.exp(0.8 * rng.standard_normal()))
        t_end = tl.t + visit
        while tl.t < t_end and tl.t < dur_s:
            tl.stay(float(np.clip(rng.exponential(60.0), 5.0, 400.0)))
            if rng.random() < 0.7:
                tl.walk_to(cur, *tl.random_spot(cur))
        if tl.t >= dur_s:
            break
        if house.exit_door is not None and rng.random() < 0.06:
            tl.go_out(float(np.clip(300.0 * np.exp(0.7 * rng.standard_normal()), 60.0, 1800.0)))
            cur = tl.rect
        p = w.copy()
        same = house.rect_class == house.rect_class[cur]
        p[same] = 0.0
        p /= p.sum()
        nxt = int(rng.choice(len(p), p=p))
        tl.walk_to(nxt, *tl.random_spot(nxt), pause_transit=0.3)
        cur = nxt
    return tl


# --------------------------------------------------------------------------- radio
def _smooth_field(rng, shape, sigma_cells: float, std: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    z = rng.standard_normal(shape)
    f = gaussian_filter(z, sigma=sigma_cells, mode="reflect")
    s = f.std()
    return (f / (s if s > 0 else 1.0) * std).astype(np.float32)


def _gilbert_elliott(rng, n: int, p_gb: float, p_bg: float) -> np.ndarray:
    """``(n,)`` bool, True = bad state, of a two-state Markov chain (run lengths geometric)."""
    bad = np.zeros(n, bool)
    if n == 0 or p_gb <= 0:
        return bad
    t = 0
    state_bad = rng.random() < p_gb / (p_gb + p_bg)
    while t < n:
        k = max(16, int(n * p_gb * 1.5) + 16)
        good = rng.geometric(p_gb, size=k)
        badr = rng.geometric(p_bg, size=k)
        runs = np.empty(2 * k, np.int64)
        if state_bad:
            runs[0::2], runs[1::2] = badr, good
        else:
            runs[0::2], runs[1::2] = good, badr
        ends = t + np.cumsum(runs)
        starts = ends - runs
        flags = np.zeros(2 * k, bool)
        flags[0 if state_bad else 1 :: 2] = True
        for s, e in zip(starts[flags], ends[flags]):
            if s >= n:
                break
            bad[s : min(e, n)] = True
        t = int(ends[-1])
    return bad


class _Radio:
    """Mean-field maps of one house: walls crossed and static shadowing per AP, floor and cell."""

    def __init__(self, house: House, rng: np.random.Generator, params: RadioParams):
        self.h, self.p = house, params
        self.walls = house.walls_map()  # (F, floors, NY, NX)
        self.ny, self.nx = self.walls.shape[2:]
        sig = params.shadow_corr_m / CELL_M
        self.shadow = np.stack(
            [_smooth_field(rng, (house.n_floors, self.ny, self.nx), (0, sig, sig), params.shadow_db) for _ in house.aps]
        )
        self.ap = house.ap_xyz()
        self.ap_floor = np.array([house.rects[a.rect].floor for a in house.aps], np.float64)

    def packets(self, rng, traj: dict[str, np.ndarray], inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RSSI ``(S, F)`` int16 and received mask ``(S, F)`` for packets at trajectory samples."""
        p = self.p
        s_n, f_n = len(traj["x"]), len(self.h.aps)
        x, y, z, rect, heading = traj["x"], traj["y"], traj["z"], traj["rect"], traj["heading"]
        floor = np.array([r.floor for r in self.h.rects], np.int64)[rect]
        ix = np.clip((x / CELL_M).astype(np.int64), 0, self.nx - 1)
        iy = np.clip((y / CELL_M).astype(np.int64), 0, self.ny - 1)
        sig = p.shadow_corr_m / CELL_M
        day = np.stack(
            [_smooth_field(rng, (self.h.n_floors, self.ny, self.nx), (0, sig, sig), p.day_shadow_db) for _ in self.h.aps]
        )
        dx = self.ap[None, :, 0] - x[:, None]
        dy = self.ap[None, :, 1] - y[:, None]
        dz = self.ap[None, :, 2] - z[:, None]
        d = np.maximum(np.sqrt(dx**2 + dy**2 + dz**2), 0.3)
        storeys = np.abs((z - WRIST_M)[:, None] / STOREY_M - self.ap_floor[None, :])
        on_stairs = np.array([r.climb is not None for r in self.h.rects])[rect]
        storeys[on_stairs] *= p.stairwell_factor  # an open stairwell: little floor in the way
        a_idx = np.arange(f_n)[None, :]
        walls = self.walls[a_idx, floor[:, None], iy[:, None], ix[:, None]]
        shadow = self.shadow[a_idx, floor[:, None], iy[:, None], ix[:, None]]
        shadow = shadow + day[a_idx, floor[:, None], iy[:, None], ix[:, None]]
        behind = 0.5 * (1.0 - np.cos(np.arctan2(dy, dx) - heading[:, None]))
        mean = (
            p.p0_dbm
            - 10.0 * p.path_exp * np.log10(d)
            - p.wall_db * walls
            - p.floor_db * storeys
            + shadow
            - p.body_db * behind
        )
        from scipy.signal import lfilter

        slow = lfilter([math.sqrt(1 - p.slow_rho**2)], [1.0, -p.slow_rho], rng.standard_normal((s_n, f_n)), axis=0)
        level = mean + p.slow_db * slow  # what decides reception
        # fast term: a new draw with probability 1 - fast_hold, else the previous packet's (real receivers
        # often report the same value for consecutive packets: SPHERE's packet-to-packet change peaks at 0)
        fresh = rng.random((s_n, f_n)) >= p.fast_hold
        fresh[0] = True
        src = np.maximum.accumulate(np.where(fresh, np.arange(s_n)[:, None], 0), axis=0)
        fast = rng.standard_normal((s_n, f_n))[src, np.arange(f_n)[None, :]]
        rssi = level + p.fast_db * fast  # what the receiver reports
        # Gilbert–Elliott interference bursts raise the receiver's threshold: weak links drop out in bursts
        desense = np.zeros((s_n, f_n))
        for a in range(f_n):
            desense[_gilbert_elliott(rng, s_n, p.ge_good_to_bad, p.ge_bad_to_good), a] = p.ge_bad_db
        p_det = 1.0 / (1.0 + np.exp(-(level - p.sens_dbm - desense) / p.sens_slope_db))
        dev_bad = _gilbert_elliott(rng, s_n, p.dev_good_to_bad, p.dev_bad_to_good)
        rx = (rng.random((s_n, f_n)) < p_det) & ~dev_bad[:, None] & inside[:, None]
        val = np.clip(np.rint(rssi), RSSI_MIN, RSSI_MAX).astype(np.int16)
        return val, rx


# --------------------------------------------------------------------------- sampling
def _sample(house: House, tl: _Timeline, rng, dur_s: float, step_s: float) -> dict[str, np.ndarray]:
    """Positions at times ``k * step_s`` (plus a small wander while standing)."""
    seg = tl.arrays(dur_s)
    t = np.arange(0.0, dur_s, step_s)
    i = np.clip(np.searchsorted(seg["t0"], t, side="right") - 1, 0, len(seg["t0"]) - 1)
    span = np.maximum(seg["t1"][i] - seg["t0"][i], 1e-9)
    f = np.clip((t - seg["t0"][i]) / span, 0.0, 1.0)
    x = seg["x0"][i] + f * (seg["x1"][i] - seg["x0"][i])
    y = seg["y0"][i] + f * (seg["y1"][i] - seg["y0"][i])
    kind = seg["kind"][i].astype(np.int64)
    from scipy.signal import lfilter

    wander = lfilter([0.1], [1.0, -0.99], rng.standard_normal((len(t), 3)), axis=0) * 0.15 / math.sqrt(0.01 / (1 - 0.99**2))
    still = kind == 0
    x = x + np.where(still, wander[:, 0], 0.0)
    y = y + np.where(still, wander[:, 1], 0.0)
    rect = seg["rect"][i].astype(np.int64)
    # the wrist turns with the arm and the torso: a fast AR(1) wobble of the heading on top of the
    # segment's heading (walking direction, or a random facing while standing)
    turn = lfilter([math.sqrt(1 - TURN_RHO**2)], [1.0, -TURN_RHO], rng.standard_normal(len(t))) * TURN_STD_RAD
    heading = seg["heading"][i] + np.where(still, 0.6 * wander[:, 2] / 0.15, 0.0) + turn
    z = house.z_at(rect, x, y)
    return {"t": t, "x": x, "y": y, "z": z, "rect": rect, "heading": heading, "kind": kind}


def _nearest_tags(house: House, rect: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tag id nearest to each position among the tags of the same rectangle ``(S,)``."""
    tags = np.array([(r, tx, ty) for r, tx, ty in house.tags], np.float64)
    d = np.hypot(x[:, None] - tags[None, :, 1], y[:, None] - tags[None, :, 2])
    d[rect[:, None] != tags[None, :, 0].astype(np.int64)] = np.inf
    return np.argmin(d, axis=1)


# --------------------------------------------------------------------------- writing
def _ts_strings(ms: np.ndarray) -> np.ndarray:
    """Absolute ``YYYY-MM-DD HH:MM:SS.fff`` strings for integer ms offsets from :data:`START`."""
    s = np.datetime_as_string(START + ms.astype("timedelta64[ms]"), unit="ms")
    return np.char.replace(s, "T", " ")


def _write_csv(path: Path, header: str, columns: list[np.ndarray]) -> None:
    cols = [np.asarray(c).astype(str) for c in columns]
    if len(cols[0]):
        body = cols[0]
        for c in cols[1:]:
            body = np.char.add(np.char.add(body, ","), c)
        text = header + "\n" + "\n".join(body.tolist()) + "\n"
    else:
        text = header + "\n"
    path.write_text(text)


def _cm(v) -> np.ndarray:
    return np.rint(np.asarray(v, np.float64) * 100.0).astype(np.int64)


def _write_metadata(house: House, meta: Path) -> None:
    meta.mkdir(parents=True)
    ap = house.ap_xyz()
    ids = np.arange(1, len(house.aps) + 1)
    _write_csv(meta / "ap_coordinates.dat", "ap_id,x,y,z", [ids, _cm(ap[:, 0]), _cm(ap[:, 1]), _cm(ap[:, 2])])
    macs = np.array([f"b8:27:eb:00:{house.letter.encode()[0]:02x}:{i:02x}" for i in ids])
    _write_csv(meta / "ap_mac_addresses.dat", "ap_id,mac", [ids, macs])
    ap_room = house.rect_class[[a.rect for a in house.aps]]
    _write_csv(meta / "ap_rooms.dat", "ap_id,room_id", [ids, ap_room])
    _write_csv(meta / "floor_aps.dat", "floor,ap_id", [[house.rects[a.rect].floor for a in house.aps], ids])
    tag_ids = np.arange(len(house.tags))
    tag_rect = np.array([r for r, _, _ in house.tags], np.int64)
    _write_csv(meta / "floor_tags.dat", "floor,tag_id", [[house.rects[r].floor for r in tag_rect], tag_ids])
    _write_csv(meta / "room_names.dat", "room_id,room_name", [np.arange(len(house.class_names)), np.array(house.class_names)])
    _write_csv(meta / "room_tags.dat", "room_id,tag_id", [house.rect_class[tag_rect], tag_ids])
    tx = np.array([x for _, x, _ in house.tags])
    ty = np.array([y for _, _, y in house.tags])
    tz = house.z_at(tag_rect, tx, ty)
    _write_csv(meta / "tag_coordinates.dat", "tag_id,x,y,z", [tag_ids, _cm(tx), _cm(ty), _cm(tz)])
    adj = [(i, j) for i in tag_ids for j in tag_ids if i < j and tag_rect[i] == tag_rect[j]
           and math.hypot(tx[i] - tx[j], ty[i] - ty[j]) < 2.5]
    a = np.array(adj, np.int64).reshape(-1, 2)
    _write_csv(meta / "tag_adjacency.dat", "tag_id,adjacent_tag_id", [a[:, 0], a[:, 1]])
    _write_csv(meta / "act_desc.dat", "act_id,description",
               [np.arange(4), np.array(["walking", "standing", "sitting", "lying"])])


def _write_recording(house: House, radio: _Radio, rng, folder: Path, tl: _Timeline, dur_s: float, t0_ms: int,
                     ap_off: list[int] = ()) -> dict:
    folder.mkdir(parents=True)
    traj = _sample(house, tl, rng, dur_s, PACKET_MS / 1000.0)
    inside = traj["kind"] != 2
    val, rx = radio.packets(rng, traj, inside)
    rx[:, list(ap_off)] = False
    n = len(traj["t"])
    jitter = rng.integers(0, max(1, radio.p.jitter_ms), size=n)
    t_ms = t0_ms + np.arange(n, dtype=np.int64) * PACKET_MS + jitter
    s_idx, a_idx = np.nonzero(rx)  # row-major: time order, then AP order
    ts = _ts_strings(t_ms[s_idx])
    _write_csv(folder / "rx_wearable_data.dat", "timestamp,ap_id,wearable_id,rssi",
               [ts, a_idx + 1, np.full(len(s_idx), WEARABLE_ID), val[s_idx, a_idx]])
    # annotations at 1 Hz while at home: nearest tag of the current room
    ann = np.flatnonzero(inside[:: 5]) * 5
    tags = _nearest_tags(house, traj["rect"][ann], traj["x"][ann], traj["y"][ann])
    tag_xyz = np.array([(x, y) for _, x, y in house.tags])
    tz = house.z_at(np.array([r for r, _, _ in house.tags]), tag_xyz[:, 0], tag_xyz[:, 1])
    _write_csv(folder / "tag_annotations.dat", "timestamp,annotator_id,tag,tag_coord_x,tag_coord_y,tag_coord_z",
               [_ts_strings(t0_ms + ann.astype(np.int64) * PACKET_MS + 100), np.zeros(len(ann), np.int64), tags,
                _cm(tag_xyz[tags, 0]), _cm(tag_xyz[tags, 1]), _cm(tz[tags])])
    ids = np.arange(1, len(house.aps) + 1)
    _write_csv(folder / "ap_mac_ref.dat", "ap_id,mac",
               [ids, np.array([f"b8:27:eb:00:{house.letter.encode()[0]:02x}:{i:02x}" for i in ids])])
    _write_csv(folder / "wear_mac_ref.dat", "wearable_id,mac", [np.array([WEARABLE_ID]), np.array(["c0:ff:ee:00:00:01"])])
    cls = house.rect_class[traj["rect"]]
    return {
        "packets": int(n),
        "rows": int(len(s_idx)),
        "seconds_outside": float((~inside).sum() * PACKET_MS / 1000.0),
        "rooms_visited": sorted({house.class_names[c] for c in np.unique(cls[inside])}),
    }


def simulate_house(
    letter: str,
    out_dir: str | os.PathLike,
    seed: int = 0,
    scale: float = 1.0,
    radio: RadioParams = DEFAULT_RADIO,
    overwrite: bool = False,
) -> Path:
    """Simulate house ``letter`` (``A``–``D``, or the SPHERE-like ``S``) into ``out_dir/house_X``.

    Args:
        letter: house letter.
        out_dir: parent directory; ``out_dir/house_X`` is written atomically.
        seed: seeds the one random generator (same seed → identical files).
        scale: multiplies every duration of Table 3 (e.g. 0.05 for tests).
        radio: radio-channel constants.
        overwrite: replace an existing ``house_X``.

    Returns:
        The path of ``house_X``.
    """
    letter = str(letter).upper()
    if letter not in HOUSE_SPEC:
        raise TinyLocError(f"unknown house {letter!r} (choose from {', '.join(HOUSE_SPEC)})")
    if not (scale > 0 and math.isfinite(scale)):
        raise TinyLocError(f"scale {scale!r}: must be a positive number")
    spec = HOUSE_SPEC[letter]
    house = floorplan.house_layout(letter)
    ss = np.random.SeedSequence([int(seed), ord(letter)])
    rng = np.random.default_rng(ss)
    radio_model = _Radio(house, rng, radio)
    fp_s = spec["fingerprint_min"] * 60.0 * scale
    n_liv = spec["n_living"]
    shares = rng.dirichlet(np.full(n_liv, 6.0))
    liv_s = spec["living_min"] * 60.0 * scale * shares
    final = Path(out_dir) / f"house_{letter}"
    info = {"simulator_version": SIM_VERSION, "letter": letter, "seed": int(seed), "scale": float(scale), "radio": dataclasses.asdict(radio),
            "class_names": house.class_names, "ap_names": [a.name for a in house.aps], "recordings": {}}
    with paths.atomic_dir(final, overwrite=overwrite) as tmp:
        _write_metadata(house, tmp / "metadata")
        exp = tmp / "experiments"
        recs = [("fingerprint_floor", fp_s, "scripted")] + [(f"living_{i + 1}", float(s), "free") for i, s in enumerate(liv_s)]
        for k, (name, dur, kind) in enumerate(recs):
            sub = np.random.default_rng([int(seed), ord(letter), k])
            tl = _scripted(house, sub, dur) if kind == "scripted" else _free_living(house, sub, dur)
            t0_ms = int(k) * 86_400_000  # one recording per day
            if "ap_off" in spec:
                off = list(spec["ap_off"].get(name, []))
            elif kind == "free":  # receivers that were down on that day (SPHERE lacks one AP in every sequence)
                draw = np.random.default_rng([int(seed), ord(letter), k, 1]).random(len(house.aps))
                off = [int(a) for a in np.flatnonzero(draw < radio.ap_outage_prob)]
            else:
                off = []
            info["recordings"][name] = {"seconds": round(dur, 3), "aps_off": [house.aps[a].name for a in off],
                                        **_write_recording(house, radio_model, sub, exp / name, tl, dur, t0_ms, off)}
        (tmp / "simulation.json").write_text(json.dumps(info, indent=2) + "\n")
    return final
