"""firmware: the probe and a sketch link against the cached TFLM library; the flash split from the linker map adds up
to arm-none-eabi-size's text + data exactly, the model part is the flatbuffer, the static RAM separates the arena
buffer; compiler errors come back as one line naming the app."""
from __future__ import annotations

import pytest
from helpers import tiny_int8_mlp

from keras_tinyloc.deploy import export_c, firmware, m4
from keras_tinyloc.errors import TinyLocError


@pytest.fixture(scope="module")
def mlp():
    """An int8 MLP (Dense-ReLU-Dense on (1, 8) -> 4): FULLY_CONNECTED only, through convert."""
    return tiny_int8_mlp(seed=0)


def test_flash_split_adds_up_and_finds_the_model(mlp, m4_lib, tmp_path):
    fw = m4.build_probe(mlp, m4_lib, tmp_path)
    assert fw.path.suffix == ".elf" and fw.map_path.is_file()
    split = firmware.flash_split(fw)
    size = firmware.elf_sizes(fw.path)
    assert split["total"] == sum(split[p] for p in firmware.PARTS) == size["text"] + size["data"]
    # model_data.o holds the flatbuffer (16-byte aligned; g_model_len too when something reads it)
    assert len(mlp) <= split["model"] <= len(mlp) + 4 + 16
    assert split["tflm"] > 20_000 and split["libc"] > 1_000 and split["app"] > 500
    objects = firmware.flash_objects(fw)
    assert sum(objects.values()) == split["total"] and 0 <= objects.get("", 0) < 512  # e.g. ld's exidx entries
    top = firmware.tflm_objects(fw, 5)
    assert len(top) == 5 and [n for _, n in top] == sorted((n for _, n in top), reverse=True)
    assert all(name.endswith((".cc", ".c")) for name, _ in top) and top[0][1] <= split["tflm"]
    ram = firmware.static_ram(fw, arena_symbol="g_arena")
    assert ram["arena_buffer"] == 512 * 1024 and ram["static_without_arena"] == size["data"] + size["bss"] - 512 * 1024


def test_build_errors_name_the_app(m4_lib, tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    export_c.write_model_data(d, bytes(64))
    (d / "probe_model.h").write_text('#include "model_data.h"\nconstexpr int kProbeNumOps = 1;\n'
                                     "template <typename R> int AddProbeOps(R& r) { return r.AddNoSuchOp(); }\n")
    with pytest.raises(TinyLocError, match=r"building probe for m4 failed: .*AddNoSuchOp"):
        firmware.build("probe", d, m4_lib, tmp_path / "out")
    with pytest.raises(TinyLocError, match="firmware app 'esp32'"):
        firmware.build("esp32", d, m4_lib, tmp_path / "out")
