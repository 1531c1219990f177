// tflm_app_stream: streaming room localisation with a Mamba *step model* (issue 7): the model consumes one 5 Hz
// step at a time and keeps only its state; a fixed-lag CRF Viterbi prints the room of each step kLag steps later.
//
// Files next to this sketch (`python -m keras_tinyloc export-sketch STEP_DIR --out SKETCH` copies them; STEP_DIR
// comes from keras_tinyloc.deploy.export_stream.export_step_model, which writes the last three):
//   tinyloc_core.{h,cpp}   grid / forward-fill / scaling / int8 quantization (window = 1, hop = 1: every step)
//   tinyloc_online.{h,cpp} OnlineViterbi (fixed lag) and Requantize (state feedback)
//   model_data.{cc,h}      the int8 step model: inputs x_t (1,F) + per block conv (1,K-1,E), ssm (1,E,N)
//   model_settings.h       window 1, hop 1, x_t / emissions quantization, CRF scores, op list, arena size
//   step_settings.h        which tensor is which, state sizes and quantizations, kLag
//
// Serial protocol (115200 baud), as tflm_app's except that rooms are per step:
//   host -> board: "<time_ms>,<ap_index>,<rssi_dbm>" per reading, "reset", "end"
//   board -> host: "ready ..." (at boot and after "reset"), "room <step> <class> <name>" per step (kLag steps
//                  late), "error ..." (a failed setup: its reason, repeated for every line received),
//                  "done <lines> <steps> <errors>" (after "end" the last kLag steps are flushed).
// Memory besides the TFLM arena: the states (step_settings::kStateTotal bytes), the stream workspace and the
// decoder's 3*C floats + (kLag+1)*C bytes: nothing grows with time.

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

#include "model_data.h"
#include "model_settings.h"
#include "step_settings.h"
#include "tinyloc_core.h"
#include "tinyloc_online.h"

static constexpr unsigned long kBaud = 115200;
alignas(16) static uint8_t g_tensor_arena[model_settings::kTensorArenaSize];
alignas(8) static unsigned char g_stream_work[tinyloc::StreamWorkspaceBytesFor(1, model_settings::kNumFeatures)];
alignas(8) static unsigned char g_decode_work[tinyloc::OnlineViterbiWorkspaceBytesFor(model_settings::kNumClasses,
                                                                                      step_settings::kLag)];
// TINYLOC_STAGGER = 0 (default): one state set, never reset. TINYLOC_STAGGER = T > 1 (e.g. the training window, 20):
// two state sets, each reset every T steps, T/2 apart; step t's emissions come from the set with T/2..T-1 steps of
// context (at t = T-1 + k*T/2 exactly the windowed model's). 2 invokes per step, 2x the state bytes, same arena.
// Why: the int8 state cannot hold decays slower than ~1 - 1/256 per step, so on an unbroken stream it can freeze
// (docs/results/streaming.md, "Unbroken streams").
#ifndef TINYLOC_STAGGER
#define TINYLOC_STAGGER 0
#endif
static constexpr int kStateSets = TINYLOC_STAGGER > 1 ? 2 : 1;
static int8_t g_states[kStateSets][step_settings::kStateTotal];  // each state in its *input* quantization
static int8_t g_x[model_settings::kNumFeatures];
static int8_t g_em[kStateSets][model_settings::kNumClasses];

static tflite::MicroMutableOpResolver<model_settings::kNumOps> g_resolver;
alignas(tflite::MicroInterpreter) static unsigned char g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
static tflite::MicroInterpreter* g_interpreter = nullptr;
static tinyloc::Stream g_stream;
static tinyloc::OnlineViterbi g_decoder;
static bool g_ready = false;
static const char* g_setup_error = "";
static char g_line[64];
static size_t g_line_len = 0;
static long g_lines = 0, g_steps = 0, g_errors = 0;

// A failed setup: print the reason now, and again for every line the host sends (replay sends "reset" first).
static void SetupError(const char* line) {
  g_setup_error = line;
  Serial.println(line);
}

static void ZeroStates(int8_t* states) {
  int off = 0;
  for (int s = 0; s < step_settings::kNumStates; ++s) {
    memset(states + off, step_settings::kStateInZeroPoint[s], step_settings::kStateSize[s]);
    off += step_settings::kStateSize[s];
  }
}

static void ZeroAllStates() {
  for (int k = 0; k < kStateSets; ++k) ZeroStates(g_states[k]);
}

static void PrintRoom(int32_t step, int label) {
  char buf[96];
  tinyloc::FormatLine(buf, sizeof(buf), "room %ld %d %s", static_cast<long>(step), label,
                      model_settings::kClassNames[label]);
  Serial.println(buf);
}

// One invoke of the step model: x_t and `states` in; emissions to `em`, new states requantized back into `states`.
static bool Invoke(int8_t* states, const int8_t* x, int8_t* em) {
  memcpy(g_interpreter->input(step_settings::kXInput)->data.int8, x, model_settings::kNumFeatures);
  int off = 0;
  for (int s = 0; s < step_settings::kNumStates; ++s) {
    memcpy(g_interpreter->input(step_settings::kStateInput[s])->data.int8, states + off, step_settings::kStateSize[s]);
    off += step_settings::kStateSize[s];
  }
  if (g_interpreter->Invoke() != kTfLiteOk) return false;
  off = 0;
  for (int s = 0; s < step_settings::kNumStates; ++s) {
    tinyloc::Requantize(g_interpreter->output(step_settings::kStateOutput[s])->data.int8, states + off,
                        step_settings::kStateSize[s], step_settings::kStateOutScale[s],
                        step_settings::kStateOutZeroPoint[s], step_settings::kStateInScale[s],
                        step_settings::kStateInZeroPoint[s]);
    off += step_settings::kStateSize[s];
  }
  memcpy(em, g_interpreter->output(step_settings::kEmissionsOutput)->data.int8, model_settings::kNumClasses);
  return true;
}

// One 5 Hz step (index g_steps since the last reset): run the state set(s), push the emissions to the decoder.
static bool RunStep(const int8_t* x) {
  int pick = 0;
#if TINYLOC_STAGGER > 1
  const long period = TINYLOC_STAGGER, half = TINYLOC_STAGGER / 2;
  for (int k = 0; k < 2; ++k) {
    const long off = k ? half : 0;
    if (g_steps < off) continue;
    if ((g_steps - off) % period == 0) ZeroStates(g_states[k]);
    if (!Invoke(g_states[k], x, g_em[k])) return false;
  }
  pick = (g_steps < half || g_steps % period >= half) ? 0 : 1;
#else
  if (!Invoke(g_states[0], x, g_em[0])) return false;
#endif
  int32_t step;
  int label;
  if (g_decoder.PushInt8(g_em[pick], model_settings::kOutputScale, model_settings::kOutputZeroPoint, &step, &label)) {
    PrintRoom(step, label);
  }
  ++g_steps;
  return true;
}

static void Drain() {
  while (g_stream.NextWindow(g_x)) {
    if (!RunStep(g_x)) Serial.println("error 0 E4 invoke_failed");
  }
}

static void ResetAll() {
  g_stream.Reset();
  g_decoder.Reset();
  ZeroAllStates();
  g_lines = g_steps = g_errors = 0;
}

// "ready ..." at boot and after "reset". arena= the arena this sketch declares (measured minimum + margin). Not
// arena_used_bytes(): that is not the smallest arena that works (a step model reports 7,676 B and needs 10,992 B).
static void PrintReady() {
  char buf[112];
  tinyloc::FormatLine(buf, sizeof(buf), "ready %s stream F=%d C=%d lag=%d stagger=%d arena=%d",
                      model_settings::kModelName, model_settings::kNumFeatures, model_settings::kNumClasses,
                      step_settings::kLag, TINYLOC_STAGGER, model_settings::kTensorArenaSize);
  Serial.println(buf);
}

static void HandleLine(const char* line) {
  if (strcmp(line, "reset") == 0) {
    ResetAll();
    PrintReady();
    return;
  }
  if (strcmp(line, "end") == 0) {
    g_stream.Finish();
    Drain();
    uint8_t tail[step_settings::kLag + 1];
    const int n = g_decoder.Flush(tail);  // steps - n .. steps - 1; those up to steps - 1 - kLag are printed
    for (int i = 0; i < n; ++i) {
      const int32_t step = g_decoder.steps() - n + i;
      if (step > g_decoder.steps() - 1 - step_settings::kLag) PrintRoom(step, tail[i]);
    }
    char buf[64];
    tinyloc::FormatLine(buf, sizeof(buf), "done %ld %ld %ld", g_lines, g_steps, g_errors);
    Serial.println(buf);
    ResetAll();
    return;
  }
  ++g_lines;
  int64_t t;
  int ap, rssi;
  int st = tinyloc::ParseLine(line, &t, &ap, &rssi);
  if (st == tinyloc::kOk) st = g_stream.AddReading(t, ap, rssi);
  if (st != tinyloc::kOk) {
    ++g_errors;
    char buf[64];
    tinyloc::FormatLine(buf, sizeof(buf), "error %ld E%d %s", g_lines, st, tinyloc::StatusName(st));
    Serial.println(buf);
    return;
  }
  Drain();
}

void setup() {
  Serial.begin(kBaud);
  const unsigned long start = millis();
  while (!Serial && millis() - start < 3000) {
  }
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION || model_settings::AddModelOps(g_resolver) != model_settings::kNumOps) {
    SetupError("error 0 E4 settings: schema version or op list");
    return;
  }
  // In place, in static storage: a function-local static object would register its destructor with atexit(), which
  // links newlib's exit machinery into the firmware (a board never exits).
  g_interpreter = new (g_interpreter_storage)
      tflite::MicroInterpreter(model, g_resolver, g_tensor_arena, model_settings::kTensorArenaSize);
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    SetupError("error 0 E4 arena_too_small");
    return;
  }
  // The wiring of step_settings.h must be this model's: tensor counts, int8 everywhere, sizes.
  bool ok = static_cast<int>(g_interpreter->inputs_size()) == step_settings::kNumInputs &&
            static_cast<int>(g_interpreter->outputs_size()) == step_settings::kNumOutputs &&
            g_interpreter->input(step_settings::kXInput)->bytes == static_cast<size_t>(model_settings::kNumFeatures) &&
            g_interpreter->output(step_settings::kEmissionsOutput)->bytes ==
                static_cast<size_t>(model_settings::kNumClasses);
  for (int s = 0; ok && s < step_settings::kNumStates; ++s) {
    const TfLiteTensor* in = g_interpreter->input(step_settings::kStateInput[s]);
    const TfLiteTensor* out = g_interpreter->output(step_settings::kStateOutput[s]);
    ok = in->type == kTfLiteInt8 && out->type == kTfLiteInt8 &&
         in->bytes == static_cast<size_t>(step_settings::kStateSize[s]) && out->bytes == in->bytes &&
         in->params.scale == step_settings::kStateInScale[s] && out->params.scale == step_settings::kStateOutScale[s];
  }
  if (!ok) {
    SetupError("error 0 E5 step_settings.h does not match model_data.cc (export both together)");
    return;
  }
  if (g_stream.Init(model_settings::kSettings, g_stream_work, sizeof(g_stream_work)) != tinyloc::kOk ||
      !g_decoder.Init(model_settings::kNumClasses, model_settings::kTransitions, model_settings::kStart,
                      model_settings::kEnd, step_settings::kLag, g_decode_work, sizeof(g_decode_work))) {
    SetupError("error 0 E4 settings");
    return;
  }
  ZeroAllStates();
  g_ready = true;
  PrintReady();
}

void loop() {
  if (!g_ready) {
    while (Serial.available() > 0) {
      if (Serial.read() == '\n') Serial.println(g_setup_error);
    }
    return;
  }
  while (Serial.available() > 0) {
    const char c = static_cast<char>(Serial.read());
    if (c == '\n') {
      g_line[g_line_len] = '\0';
      if (g_line_len && g_line[g_line_len - 1] == '\r') g_line[g_line_len - 1] = '\0';
      HandleLine(g_line);
      g_line_len = 0;
    } else if (g_line_len + 1 < sizeof(g_line)) {
      g_line[g_line_len++] = c;
    }
  }
}
