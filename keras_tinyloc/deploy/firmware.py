"""Build tflm_app programs against a cached TFLM library (``tflm_app/Makefile``) and measure a linked firmware.

* :func:`build` — ``make -C tflm_app firmware APP=... TARGET=host|m4``: the exported sketch **unmodified** (``stm32``:
  ``stm32/main.cc``; ``arduino`` / ``stream``: the ``.ino`` compiled as the Arduino builder does, against the shim in
  ``tflm_app/arduino/shim``) or the measurement ``probe`` (``tflm_app/probe/tflm_probe.cc``), with the board files of
  the target (``tflm_app/boards/``: QEMU mps2-an386 UART/SysTick/startup for ``m4``, stdio for ``host``).
* :func:`flash_split` — where a linked Cortex-M firmware's flash goes, from the linker map: every input section that
  lands in flash (``.text`` with read-only data, ``.ARM.exidx``, the load image of ``.data``) is attributed to the
  file it came from — ``tflm`` (the TFLM library), ``model`` (``model_data``), ``libc`` (newlib-nano, libm, libgcc,
  libstdc++ and the other toolchain libraries) or ``app`` (everything else: the sketch, the core, the board, the
  shim); padding counts with the section before it. The parts add up to ``arm-none-eabi-size``'s text + data exactly.
* :func:`static_ram` — ``.data`` + ``.bss``, with the tensor-arena buffer reported apart (the device figures count
  the *minimal* arena instead of the buffer the sketch declares).

A hand-written map parser rather than a library: none in the registries reads GNU ld maps; the format is stable.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from keras_tinyloc.deploy import tflm_kit
from keras_tinyloc.errors import TinyLocError

APPS = ("stm32", "arduino", "stream", "probe")
FLASH_SECTIONS = (".text", ".ARM.exidx", ".data")
PARTS = ("tflm", "model", "app", "libc")
ARENA_SYMBOL = "g_tensor_arena"  # stm32/main.cc and the .ino sketches; the probe's is g_arena


@dataclasses.dataclass(frozen=True)
class Firmware:
    """A linked program: ``path`` (``.elf`` for m4, an executable for host), ``map_path`` (linker map)."""

    app: str
    target: str
    path: Path
    map_path: Path


def build(app: str, sketch_dir: Path, lib: tflm_kit.Library, out_dir: Path, app_defs: tuple[str, ...] = (),
          app_opt: str = "-Os", gc_sections: bool = True, timeout: float = 600.0) -> Firmware:
    """Compile and link ``app`` from ``sketch_dir`` against ``lib`` into ``out_dir``.

    ``app_defs``/``app_opt``: extra defines and the optimisation level of the program's own files (the library's
    are ``lib``'s); ``gc_sections`` False links without ``--gc-sections`` (every section kept).

    ``sketch_dir`` holds what the app needs: an ``export-sketch`` folder (stm32/arduino), a streaming sketch folder
    (stream), or ``probe_model.h`` + ``model_data.cc`` (probe). Raises TinyLocError with the compiler's messages.
    """
    if app not in APPS:
        raise TinyLocError(f"firmware app {app!r}: choose from {', '.join(APPS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "--no-print-directory", "-C", str(tflm_kit.APP_DIR), "firmware", f"APP={app}",
           f"TARGET={lib.target}", f"SKETCH={Path(sketch_dir).resolve()}", f"LIB={lib.dir}",
           f"BUILD={out_dir.resolve()}", f"TFLM_DIR={lib.kit}", f"APP_DEFS={' '.join(app_defs)}",
           f"APP_OPT={app_opt}", *([] if gc_sections else ["LD_GC="])]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    exe = out_dir / (f"{app}.elf" if lib.target == "m4" else app)
    if res.returncode != 0 or not exe.is_file():
        text = (res.stdout + res.stderr).splitlines()
        errors = [ln.strip() for ln in text if re.search(r"\b(error|undefined reference)\b|\bld: ", ln)
                  and not ln.lstrip().startswith(("arm-none-eabi-", "g++ ", "gcc ", "make"))]
        raise TinyLocError(f"building {app} for {lib.target} failed: "
                           + (" | ".join(errors[:4]) or " | ".join(text[-3:]))[:1200])
    return Firmware(app, lib.target, exe, Path(str(exe) + ".map"))


def elf_sizes(path: Path) -> dict[str, int]:
    """``arm-none-eabi-size``: text (code + read-only data + exidx), data, bss."""
    out = subprocess.run(["arm-none-eabi-size", str(path)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def _part(origin: str) -> str:
    name = origin.strip()
    if "libtensorflow-microlite.a" in name:
        return "tflm"
    if re.search(r"(^|/)model_data\.(o|cc\.o|cpp\.o)$", name):
        return "model"
    if "arm-none-eabi" in name or re.search(r"lib(c|m|gcc|g|nosys|rdimon|stdc\+\+|supc\+\+)[_a-z]*\.a", name) \
            or re.search(r"crt\w*\.o$", name):
        return "libc"
    return "app"


_SECTION_HEAD = re.compile(r"^(\.[\w.]+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+).*)?$")
_INPUT = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*))?$")


def flash_objects(fw: Firmware) -> dict[str, int]:
    """Flash bytes per input file of the link (``libtensorflow-microlite.a(micro_allocator.cc.o)``, ``main.o``, ...),
    from the linker map; ``""`` = bytes without an input file (linker-generated, e.g. unwind-table entries, ~100 B).
    Each input section counts from its address to the next one's (merged string sections are listed with their size
    before merging, and overlap the next section) and padding counts with the section before it, so the values add up
    to the output sections' sizes."""
    try:
        lines = fw.map_path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise TinyLocError(f"{fw.map_path}: cannot read the linker map ({exc.strerror})") from None
    try:
        start = lines.index("Linker script and memory map")
    except ValueError:
        raise TinyLocError(f"{fw.map_path}: not a GNU ld map") from None
    sections: dict[str, dict] = {}
    cur = None
    pending = None
    for line in lines[start + 1:]:
        if line and not line.startswith(" "):
            m = _SECTION_HEAD.match(line)
            cur, pending = None, None
            if m and m.group(1) in FLASH_SECTIONS:
                cur = sections.setdefault(m.group(1), {"head": None, "items": []})
                if m.group(2):
                    cur["head"] = (int(m.group(2), 16), int(m.group(3), 16))
            continue
        if cur is None:
            continue
        stripped = line.strip()
        if cur["head"] is None and re.fullmatch(r"0x[0-9a-f]+\s+0x[0-9a-f]+.*", stripped):
            a, b = stripped.split()[:2]  # a long output-section name: its address and size on the next line
            cur["head"] = (int(a, 16), int(b, 16))
            continue
        m = _INPUT.match(line)
        if m is None:
            # a long input-section name on its own line: address/size/file follow on the next line
            pending = stripped if stripped.startswith(".") and " " not in stripped else None
            continue
        name, addr, size, origin = m.group(1) or pending, int(m.group(2), 16), int(m.group(3), 16), m.group(4)
        pending = None
        if size == 0:
            continue
        if name == "*fill*":
            cur["items"].append((addr, size, None))
        elif origin and (origin.endswith(".o") or origin.endswith(")")):
            cur["items"].append((addr, size, origin.strip()))
    objects: dict[str, int] = {}
    for name, sec in sections.items():
        if sec["head"] is None:
            if sec["items"]:
                raise TinyLocError(f"{fw.map_path}: no address/size for output section {name}")
            continue  # an empty output section (ld prints only its name)
        base, total = sec["head"]
        items = sorted(sec["items"])
        last = ""
        counted = 0
        for i, (addr, size, origin) in enumerate(items):
            nxt = items[i + 1][0] if i + 1 < len(items) else base + total
            eff = max(0, min(size, nxt - addr))
            origin = origin or last  # padding counts with the section before it
            objects[origin] = objects.get(origin, 0) + eff
            counted += eff
            last = origin
        if total != counted:
            objects[""] = objects.get("", 0) + total - counted  # linker-generated bytes
    return objects


def flash_split(fw: Firmware) -> dict[str, int]:
    """Flash bytes per part (``PARTS``) and ``total`` (:func:`flash_objects` grouped; linker-generated bytes count as
    ``app``)."""
    parts = dict.fromkeys(PARTS, 0)
    for origin, n in flash_objects(fw).items():
        parts[_part(origin) if origin else "app"] += n
    parts["total"] = sum(parts[p] for p in PARTS)
    return parts


def tflm_objects(fw: Firmware, top: int = 12) -> list[tuple[str, int]]:
    """The ``top`` largest TFLM library members in flash: ``[("micro_allocator.cc", bytes), ...]``."""
    out = [(re.sub(r"^.*\((.*)\.o\)$", r"\1", o), n) for o, n in flash_objects(fw).items() if _part(o) == "tflm"]
    return sorted(out, key=lambda kv: -kv[1])[:top]


def symbol_sizes(fw: Firmware) -> dict[str, int]:
    """``{symbol (demangled): size}`` of the sized symbols of ``fw`` (``nm -S -C``)."""
    nm = "arm-none-eabi-nm" if fw.target == "m4" else "nm"
    out = subprocess.run([nm, "-S", "-C", str(fw.path)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def static_ram(fw: Firmware, arena_symbol: str = ARENA_SYMBOL) -> dict[str, int]:
    """``{"data", "bss", "arena_buffer", "static_without_arena"}`` bytes of an m4 firmware."""
    s = elf_sizes(fw.path)
    arena = sum(v for k, v in symbol_sizes(fw).items() if k.split("::")[-1] == arena_symbol)
    return {"data": s["data"], "bss": s["bss"], "arena_buffer": arena,
            "static_without_arena": s["data"] + s["bss"] - arena}
