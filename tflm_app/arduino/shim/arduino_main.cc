// Arduino shim: what the Arduino core does around a sketch (main: board init, setup() once, loop() forever),
// and what the Arduino TFLM libraries do for TFLM's log on Cortex-M: route MicroPrintf to Serial, as "# tflm: ..."
// lines (comments in tflm_app's serial protocol).
#include "Arduino.h"

#if defined(__arm__) && __has_include("tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h")
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#define TINYLOC_SHIM_DEBUG_LOG 1
#endif

ShimSerial Serial;

void setup();
void loop();

#if TINYLOC_SHIM_DEBUG_LOG
static void ShimTflmLog(const char* s) {
  static bool line_start = true;
  for (; *s; ++s) {
    if (line_start && *s != '\r' && *s != '\n') Serial.print("# tflm: ");
    const char c[1] = {*s};
    tinyloc_uart_write(c, 1);
    line_start = *s == '\n';
  }
}
#endif

int main() {
  tinyloc_board_init();
#if TINYLOC_SHIM_DEBUG_LOG
  RegisterDebugLogCallback(ShimTflmLog);
#endif
  setup();
  for (;;) loop();
}
