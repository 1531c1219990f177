// tflm_app for STM32 (any Cortex-M4F/M7 part with a UART; e.g. NUCLEO-F446RE / NUCLEO-L476RG, USART2 = ST-Link VCP).
//
// Same program as the Arduino sketch: TFLM with exactly the model's ops, the arena from model_settings.h, the
// serial line protocol of tinyloc_app.h, one room printed per window. The board specifics are three functions:
//   tinyloc_board_init()          clocks + UART at 115200 8N1 (CubeMX-generated code does this)
//   tinyloc_uart_read_byte()      next received byte or -1
//   tinyloc_uart_write(s, n)      blocking write
// With STM32 HAL (USE_HAL_DRIVER defined, as in every CubeIDE project) they are implemented below on huart2;
// otherwise link your own.
//
// Builds:
//   STM32CubeIDE: add this file with -DTINYLOC_NO_MAIN and call tinyloc_setup() / tinyloc_loop() from the
//                 USER CODE blocks of the generated main.c (see tflm_app/README.md).
//   Makefile:     make TFLM_TREE=/path/to/tflm-tree STARTUP=... LDSCRIPT=... (see Makefile).
#include <string.h>

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"
// after TFLM's headers: AddModelOps may name TFLM's int8-only kernels (-DTINYLOC_INT8_KERNELS)
#include "model_data.h"
#include "model_settings.h"
#include "tinyloc_app.h"
#include "tinyloc_core.h"

// TFLM's Cortex-M port (cortex_m_generic) drops its own messages (e.g. why AllocateTensors failed) unless the
// application registers a callback; ours prints them as "# tflm: ..." comment lines.
#if defined(__arm__) && __has_include("tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h")
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#define TINYLOC_TFLM_LOG_CALLBACK 1
#endif

extern "C" {
int tinyloc_board_init(void);
int tinyloc_uart_read_byte(void);
void tinyloc_uart_write(const char* s, unsigned n);
void tinyloc_setup(void);
void tinyloc_loop(void);
}

#if defined(USE_HAL_DRIVER)
#include "main.h"  // CubeMX: pulls in stm32xxxx_hal.h
extern UART_HandleTypeDef huart2;
extern "C" int tinyloc_board_init(void) { return 0; }  // CubeMX's main() already ran MX_USART2_UART_Init()
extern "C" int tinyloc_uart_read_byte(void) {
  uint8_t c;
  return HAL_UART_Receive(&huart2, &c, 1, 0) == HAL_OK ? c : -1;
}
extern "C" void tinyloc_uart_write(const char* s, unsigned n) {
  HAL_UART_Transmit(&huart2, reinterpret_cast<uint8_t*>(const_cast<char*>(s)), static_cast<uint16_t>(n), 100);
}
#endif

namespace {

alignas(16) uint8_t g_tensor_arena[model_settings::kTensorArenaSize];
alignas(8) unsigned char g_app_work[tinyloc::AppWorkspaceBytesFor(
    model_settings::kWindow, model_settings::kNumFeatures, model_settings::kNumClasses)];
tflite::MicroMutableOpResolver<model_settings::kNumOps> g_resolver;
alignas(tflite::MicroInterpreter) unsigned char g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_interpreter = nullptr;
tinyloc::App g_app;
bool g_ready = false;

void Write(const char* s) { tinyloc_uart_write(s, static_cast<unsigned>(strlen(s))); }

#if defined(TINYLOC_TFLM_LOG_CALLBACK)
// TFLM calls this with pieces of text (a message, then "\r\n"): start each line with "# tflm: ".
void TflmLog(const char* s) {
  static bool line_start = true;
  for (; *s; ++s) {
    if (*s == '\r') continue;
    if (line_start && *s != '\n') Write("# tflm: ");
    if (*s == '\n') {
      Write("\r\n");
    } else {
      tinyloc_uart_write(s, 1);
    }
    line_start = *s == '\n';
  }
}
#endif

void PrintLine(void*, const char* line) {
  Write(line);
  Write("\r\n");
}

bool RunModel(void*, const int8_t* input, int8_t* output) {
  memcpy(g_interpreter->input(0)->data.int8, input, model_settings::kWindow * model_settings::kNumFeatures);
  if (g_interpreter->Invoke() != kTfLiteOk) return false;
  memcpy(output, g_interpreter->output(0)->data.int8, model_settings::kWindow * model_settings::kNumClasses);
  return true;
}

char g_setup_error[160] = "";

void SetupError(int code, const char* what) {
  tinyloc::FormatLine(g_setup_error, sizeof(g_setup_error), "error 0 E%d %s %s", code, tinyloc::StatusName(code),
                      what);
  PrintLine(nullptr, g_setup_error);
}

// Distinct builtin ops of the model (an op may appear in operator_codes once per version); *unknown = the first
// one that model_settings::kOpCodes does not list (-1 if none). By number: naming every op would link TFLM's table of
// op names (3.3 KiB of flash); only the error message names the op (see UnknownOpText).
int ModelOps(const tflite::Model* model, int* unknown) {
  const auto* codes = model->operator_codes();
  const int n = codes ? static_cast<int>(codes->size()) : 0;
  int distinct = 0;
  *unknown = -1;
  for (int i = 0; i < n; ++i) {
    const tflite::BuiltinOperator op = tflite::GetBuiltinCode(codes->Get(i));
    bool seen = false;
    for (int j = 0; j < i && !seen; ++j) seen = tflite::GetBuiltinCode(codes->Get(j)) == op;
    if (seen) continue;
    ++distinct;
    bool listed = false;
    for (int k = 0; k < model_settings::kNumOps && !listed; ++k) listed = op == model_settings::kOpCodes[k];
    if (!listed && *unknown < 0) *unknown = op;
  }
  return distinct;
}

// "the model uses MUL, which model_settings.h does not list". With TINYLOC_NO_OP_NAMES defined the op is named by its
// builtin code ("... uses builtin op 18, ...", see tensorflow/lite/schema/schema_generated.h): 3.3 KiB less flash
// when TFLM's own messages, which name ops too, are stripped (-DTF_LITE_STRIP_ERROR_STRINGS).
void UnknownOpText(int op, char* why, size_t size) {
#if defined(TINYLOC_NO_OP_NAMES)
  tinyloc::FormatLine(why, size, "the model uses builtin op %d, which model_settings.h does not list", op);
#else
  tinyloc::FormatLine(why, size, "the model uses %s, which model_settings.h does not list",
                      tflite::EnumNameBuiltinOperator(static_cast<tflite::BuiltinOperator>(op)));
#endif
}

void FillInfo(const TfLiteTensor* t, int* dims, int* ndims, bool* is_int8, float* scale, int* zero_point) {
  *ndims = t->dims->size > 4 ? 4 : t->dims->size;
  for (int i = 0; i < *ndims; ++i) dims[i] = t->dims->data[i];
  *is_int8 = t->type == kTfLiteInt8;
  *scale = t->params.scale;
  *zero_point = t->params.zero_point;
}

}  // namespace

extern "C" void tinyloc_setup(void) {
#if defined(TINYLOC_TFLM_LOG_CALLBACK)
  RegisterDebugLogCallback(TflmLog);
#endif
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    SetupError(tinyloc::kErrSettings, "flatbuffer schema version differs from this TFLM tree");
    return;
  }
  if (model_settings::AddModelOps(g_resolver) != model_settings::kNumOps) {
    SetupError(tinyloc::kErrOpCount, "an op of model_settings.h could not be added to the resolver");
    return;
  }
  // Ops first: TFLM cannot allocate a graph with an op the resolver lacks, and would report it as an allocation
  // failure; name the op instead.
  int unknown_op = -1;
  const int n_op_codes = ModelOps(model, &unknown_op);
  if (unknown_op >= 0) {
    char why[96];
    UnknownOpText(unknown_op, why, sizeof(why));
    SetupError(tinyloc::kErrOpCount, why);
    return;
  }
  // In place, in static storage: a function-local static object would register its destructor with atexit(), which
  // links newlib's exit machinery into the firmware (a board never exits).
  g_interpreter = new (g_interpreter_storage)
      tflite::MicroInterpreter(model, g_resolver, g_tensor_arena, model_settings::kTensorArenaSize);
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    SetupError(tinyloc::kErrSettings, "arena_too_small: AllocateTensors failed (raise --arena-margin)");
    return;
  }
  tinyloc::ModelInfo info = {};
  info.n_op_codes = n_op_codes;
  FillInfo(g_interpreter->input(0), info.input_dims, &info.input_ndims, &info.input_is_int8, &info.input_scale,
           &info.input_zero_point);
  FillInfo(g_interpreter->output(0), info.output_dims, &info.output_ndims, &info.output_is_int8,
           &info.output_scale, &info.output_zero_point);
  const tinyloc::Status st = tinyloc::CheckModel(model_settings::kSettings, info);
  if (st != tinyloc::kOk) {
    SetupError(st, "model_settings.h does not match model_data (export both from the same convert dir)");
    return;
  }
  if (g_app.Init(model_settings::kSettings, model_settings::kModelName, g_app_work, sizeof(g_app_work), RunModel,
                 PrintLine, nullptr) != tinyloc::kOk) {
    SetupError(tinyloc::kErrSettings, "core workspace");
    return;
  }
  g_ready = true;
  // arena_used_bytes() is what TFLM reports after allocation; it is NOT the smallest arena that works (a step
  // model reports 7,676 B and needs 10,992 B): the arena is the measured minimum + a margin (model_settings.h).
  char line[128];
  tinyloc::FormatLine(line, sizeof(line),
                      "# arena %d bytes = measured minimum %d + margin %d (TFLM reports %u used)",
                      model_settings::kTensorArenaSize, model_settings::kArenaMeasuredBytes,
                      model_settings::kArenaMarginBytes, static_cast<unsigned>(g_interpreter->arena_used_bytes()));
  PrintLine(nullptr, line);
  g_app.PrintReady();
}

extern "C" void tinyloc_loop(void) {
  if (!g_ready) {  // setup failed: answer every line the host sends with the reason (the boot line may be lost)
    for (int c = tinyloc_uart_read_byte(); c >= 0; c = tinyloc_uart_read_byte()) {
      if (c == '\n') PrintLine(nullptr, g_setup_error);
    }
    return;
  }
  for (int c = tinyloc_uart_read_byte(); c >= 0; c = tinyloc_uart_read_byte()) {
    g_app.PutChar(static_cast<char>(c));
  }
  // BLE SCAN: on a board with a BLE radio (e.g. STM32WB), call g_app.AddReading(ms, ap_index, rssi) here for
  // each advertisement heard, with ap_index = the beacon's position in model_settings::kFeatureNames.
}

#ifndef TINYLOC_NO_MAIN
int main(void) {
  tinyloc_board_init();
  tinyloc_setup();
  for (;;) tinyloc_loop();
}
#endif
