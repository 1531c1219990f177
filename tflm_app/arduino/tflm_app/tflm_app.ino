// tflm_app: room-level indoor localisation on an Arduino board with TensorFlow Lite Micro
// (tested target: Arduino Nano 33 BLE Sense, nRF52840 Cortex-M4F; any board with an Arduino TFLM library).
//
// Do not build this folder from the repository: run
//   python -m keras_tinyloc export-sketch RUN_DIR/tflite-int8 --out my_sketch
// which copies this sketch, the portable core (tinyloc_core.*, tinyloc_app.*) and the model files
// (model_data.cpp/.h, model_settings.h) into my_sketch/, then open my_sketch/my_sketch.ino in the Arduino IDE.
//
// Serial protocol (115200 baud, see tinyloc_app.h and tflm_app/README.md):
//   host -> board: "<time_ms>,<ap_index>,<rssi_dbm>" per reading, "reset", "end"
//   board -> host: "ready ...", "room <line> <end_step> <class> <name>" per window, "error <line> E<code> <name>",
//                  "done <lines> <windows> <errors>"; setup problems are "error 0 E<code> <name> ..." lines.

// An Arduino TFLM library: "Chirale_TensorFlowLite" (maintained) or the older "Arduino_TensorFlowLite".
#if __has_include(<Chirale_TensorFlowLite.h>)
#include <Chirale_TensorFlowLite.h>
#else
#include <TensorFlowLite.h>
#endif

#include <string.h>

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

#include "model_data.h"
#include "model_settings.h"
#include "tinyloc_app.h"
#include "tinyloc_core.h"

// Globals and helpers are `static` at file scope (no anonymous namespace): the Arduino builder generates
// prototypes for .ino functions at global scope, which would make calls into a namespace ambiguous.
static constexpr unsigned long kBaud = 115200;

// The tensor arena: the measured minimum + the margin stated in model_settings.h. If AllocateTensors fails,
// the board prints "error 0 E4 arena_too_small": convert again with a larger --arena-margin.
alignas(16) static uint8_t g_tensor_arena[model_settings::kTensorArenaSize];

// Everything the core needs (ring buffer, per-AP state, Viterbi buffers, model input/output): no heap.
alignas(8) static unsigned char g_app_work[tinyloc::AppWorkspaceBytesFor(
    model_settings::kWindow, model_settings::kNumFeatures, model_settings::kNumClasses)];

// Exactly the model's ops (model_settings::AddModelOps adds kNumOps of them).
static tflite::MicroMutableOpResolver<model_settings::kNumOps> g_resolver;
alignas(tflite::MicroInterpreter) static unsigned char g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
static tflite::MicroInterpreter* g_interpreter = nullptr;
static tinyloc::App g_app;
static bool g_ready = false;
static char g_setup_error[160] = "";

static void PrintLine(void*, const char* line) { Serial.println(line); }

// ModelFn for tinyloc::App: copy the int8 window in, invoke, copy the int8 emissions out.
static bool RunModel(void*, const int8_t* input, int8_t* output) {
  TfLiteTensor* in = g_interpreter->input(0);
  memcpy(in->data.int8, input, model_settings::kWindow * model_settings::kNumFeatures);
  if (g_interpreter->Invoke() != kTfLiteOk) return false;
  memcpy(output, g_interpreter->output(0)->data.int8, model_settings::kWindow * model_settings::kNumClasses);
  return true;
}

static void SetupError(int code, const char* what) {
  tinyloc::FormatLine(g_setup_error, sizeof(g_setup_error), "error 0 E%d %s %s", code, tinyloc::StatusName(code),
                      what);
  Serial.println(g_setup_error);
}

// Distinct builtin ops of the model (an op may appear in operator_codes once per version); *unknown = the first
// one that model_settings::kOpCodes does not list (-1 if none). By number: naming every op would link TFLM's table of
// op names (3.3 KiB of flash); only the error message names the op (see UnknownOpText).
static int ModelOps(const tflite::Model* model, int* unknown) {
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
static void UnknownOpText(int op, char* why, size_t size) {
#if defined(TINYLOC_NO_OP_NAMES)
  tinyloc::FormatLine(why, size, "the model uses builtin op %d, which model_settings.h does not list", op);
#else
  tinyloc::FormatLine(why, size, "the model uses %s, which model_settings.h does not list",
                      tflite::EnumNameBuiltinOperator(static_cast<tflite::BuiltinOperator>(op)));
#endif
}

static void FillInfo(const TfLiteTensor* t, int* dims, int* ndims, bool* is_int8, float* scale, int* zero_point) {
  *ndims = t->dims->size > 4 ? 4 : t->dims->size;
  for (int i = 0; i < *ndims; ++i) dims[i] = t->dims->data[i];
  *is_int8 = t->type == kTfLiteInt8;
  *scale = t->params.scale;
  *zero_point = t->params.zero_point;
}

void setup() {
  Serial.begin(kBaud);
  const unsigned long start = millis();
  while (!Serial && millis() - start < 3000) {
  }

  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    SetupError(tinyloc::kErrSettings, "flatbuffer schema version differs from this TFLM library");
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

  // The settings header must describe this model: shapes, quantization, op list.
  tinyloc::ModelInfo info = {};
  info.n_op_codes = n_op_codes;
  FillInfo(g_interpreter->input(0), info.input_dims, &info.input_ndims, &info.input_is_int8, &info.input_scale,
           &info.input_zero_point);
  FillInfo(g_interpreter->output(0), info.output_dims, &info.output_ndims, &info.output_is_int8,
           &info.output_scale, &info.output_zero_point);
  const tinyloc::Status st = tinyloc::CheckModel(model_settings::kSettings, info);
  if (st != tinyloc::kOk) {
    SetupError(st, "model_settings.h does not match model_data.cpp (export both from the same convert dir)");
    return;
  }
  if (g_app.Init(model_settings::kSettings, model_settings::kModelName, g_app_work, sizeof(g_app_work), RunModel,
                 PrintLine, nullptr) != tinyloc::kOk) {
    SetupError(tinyloc::kErrSettings, "core workspace");
    return;
  }
  g_ready = true;
  // arena_used_bytes() is NOT the smallest arena that works (see tflm_app/README.md, "Arena size"); the arena is the
  // measured minimum + a margin (model_settings.h).
  char arena_line[128];
  tinyloc::FormatLine(arena_line, sizeof(arena_line),
                      "# arena %d bytes = measured minimum %d + margin %d (TFLM reports %u used)",
                      model_settings::kTensorArenaSize, model_settings::kArenaMeasuredBytes,
                      model_settings::kArenaMarginBytes, static_cast<unsigned>(g_interpreter->arena_used_bytes()));
  Serial.println(arena_line);
  g_app.PrintReady();
}

void loop() {
  if (!g_ready) {  // keep telling the host what went wrong in setup()
    static unsigned long last = 0;
    if (millis() - last > 2000) {
      last = millis();
      Serial.println(g_setup_error);
    }
    return;
  }

  // Replay / recorded data: readings arrive over the serial line protocol.
  while (Serial.available() > 0) {
    g_app.PutChar(static_cast<char>(Serial.read()));
  }

  // ======================= BLE SCAN: live readings instead of the serial replay ========================
  // On a Nano 33 BLE Sense, a BLE scan feeds the same core. With the ArduinoBLE library:
  //   setup():  BLE.begin(); BLE.scanForUuid(...) or BLE.scan(true);
  //   loop():   BLEDevice p = BLE.available();
  //             if (p) {
  //               int ap = ApIndexFor(p.address());   // position of the beacon in model_settings::kFeatureNames
  //               if (ap >= 0) g_app.AddReading(millis(), ap, p.rssi());  // rooms are printed per window
  //             }
  // ApIndexFor is yours to write: the AP order must be the training data's (model_settings::kFeatureNames).
  // ====================================================================================================
}
