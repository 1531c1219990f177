// Cost of the core on Cortex-M4 under QEMU (tests/test_cortex_m.py): SysTick ticks, which with
// `qemu-system-arm -icount shift=0` advance with executed instructions (QEMU models no cycles or wait states).
// Prints: "COST cal <ticks of 200000 instructions> stream <ticks for 200 steps> decode <ticks for 10 Decodes>
//          quant <ticks for 1000 ScaleQuantize> windows <n>"; the test converts ticks to instructions with cal.
#include <stdio.h>
#include <stdint.h>

#include "model_settings.h"
#include "tinyloc_core.h"

namespace {
volatile uint32_t* const kSysTick = reinterpret_cast<volatile uint32_t*>(0xE000E010u);  // CTRL, LOAD, VAL
unsigned char g_work[tinyloc::StreamWorkspaceBytesFor(model_settings::kWindow, model_settings::kNumFeatures)];
unsigned char g_dwork[tinyloc::DecodeWorkspaceBytesFor(model_settings::kWindow, model_settings::kNumClasses)];
int8_t g_in[model_settings::kWindow * model_settings::kNumFeatures];
int8_t g_out[model_settings::kWindow * model_settings::kNumClasses];
uint8_t g_labels[model_settings::kWindow];

void Start() {
  kSysTick[0] = 0;
  kSysTick[1] = 0x00FFFFFFu;
  kSysTick[2] = 0;
  kSysTick[0] = 5;  // enable, processor clock, no interrupt
}
uint32_t Ticks() { return (0x00FFFFFFu - kSysTick[2]) & 0x00FFFFFFu; }
}  // namespace

// 100000 iterations of a 2-instruction loop (subs + bne) = 200000 instructions.
uint32_t Calibrate() {
  Start();
  uint32_t n = 100000;
  __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
  return Ticks();
}

int main() {
  const tinyloc::Settings& s = model_settings::kSettings;
  const uint32_t cal = Calibrate();
  tinyloc::Stream stream;
  if (stream.Init(s, g_work, sizeof(g_work)) != tinyloc::kOk) return 1;
  // One reading per AP per step (5 Hz): steps * F readings, windows drained as they come.
  const int steps = 200;
  Start();
  int windows = 0;
  for (int k = 0; k < steps; ++k) {
    for (int a = 0; a < s.n_features; ++a) stream.AddReading(200LL * k + 10 * a, a, -40 - ((k * 7 + a * 13) % 60));
    while (stream.NextWindow(g_in)) ++windows;
  }
  const uint32_t stream_ticks = Ticks();
  for (int i = 0; i < s.window * s.n_classes; ++i) g_out[i] = static_cast<int8_t>((i * 37) % 256 - 128);
  Start();
  const int reps = 10;
  for (int r = 0; r < reps; ++r) tinyloc::Decode(s, g_out, g_labels, g_dwork, sizeof(g_dwork));
  const uint32_t decode_ticks = Ticks();
  Start();
  volatile int8_t sink = 0;
  for (int i = 0; i < 1000; ++i) sink = tinyloc::ScaleQuantize(s, i % s.n_features, -40.0f - static_cast<float>(i % 80));
  const uint32_t quant_ticks = Ticks();
  (void)sink;
  printf("COST cal %lu stream %lu decode %lu quant %lu windows %d\n", static_cast<unsigned long>(cal),
         static_cast<unsigned long>(stream_ticks), static_cast<unsigned long>(decode_ticks),
         static_cast<unsigned long>(quant_ticks), windows);
  return 0;
}
