// tinyloc_core: everything around the model on the device, in portable C++11.
//
// No TFLM, no Arduino headers, no heap, no exceptions. The Python twins are in keras_tinyloc/device.py and the
// host tests (tests/test_device.py, tests/test_cortex_m.py) check that both give the same bytes and labels.
//
//  1. Stream: readings (time_ms, ap_index, rssi_dbm) arrive in time order (Stream::AddReading).
//  2. Grid:   step k covers [t0 + k*step_ms, t0 + (k+1)*step_ms) ms, t0 = the first reading's time. An AP's value
//             at step k is its latest reading in a step j <= k with k - j <= ffill_steps, else fill_dbm.
//             Within a step the latest reading wins (keras_tinyloc/data/windows.py: packets_to_grid).
//  3. Windows: the last T steps in a ring buffer; a window ends at step s when s + 1 >= T and (s + 1 - T) % hop == 0
//             (make_windows). Each step is scaled (MinMaxScaling.transform, float32) and quantized to int8
//             (keras_tinyloc.quantize.quantize) as it is finished, so a window is a copy of T int8 rows.
//  4. Decode: CRF Viterbi of the model's int8 output, dequantized in float32 (quantize.dequantize) and decoded
//             in double (crf.viterbi_numpy), ties to the lowest class index.
//
// Usage (see tflm_app/arduino/tflm_app/tflm_app.ino):
//   static unsigned char work[...];                    // >= tinyloc::WorkspaceBytes(settings)
//   tinyloc::Stream stream;
//   stream.Init(settings, work, sizeof(work));
//   stream.AddReading(t, ap, rssi);                      // after every reading:
//   while (stream.NextWindow(input)) { run model; Decode(settings, output, labels, work2, ...); }
#ifndef TINYLOC_CORE_H_
#define TINYLOC_CORE_H_

#include <stddef.h>
#include <stdint.h>

namespace tinyloc {

// Error codes the sketch prints ("error E<code> <name>"); keep in sync with keras_tinyloc/device.py: STATUS.
enum Status {
  kOk = 0,
  kErrApIndex = 1,        // AP index outside 0..F-1
  kErrTimeBackwards = 2,  // a reading older than the previous one
  kErrRssiRange = 3,      // RSSI outside -127..0 dBm
  kErrSettings = 4,       // settings inconsistent (sizes, scales) or workspace too small
  kErrInputShape = 5,     // model input is not (1, T, F) int8 with the settings' quantization
  kErrOutputShape = 6,    // model output is not (1, T, C) int8 with the settings' quantization
  kErrOpCount = 7,        // the model's op codes differ from the settings' op list
  kErrNotDrained = 8,     // AddReading started a new step before NextWindow() returned false
  kErrNotInitialised = 9, // Stream used before a successful Init
  kErrParse = 10,         // a protocol line that is not "<time_ms>,<ap>,<rssi>"
};

const char* StatusName(int status);

// Model-specific values; model_settings.h provides a constexpr instance (model_settings::kSettings).
struct Settings {
  int window;         // T
  int n_features;     // F
  int n_classes;      // C (<= 255)
  int hop;            // steps between window ends (10)
  int step_ms;        // grid step (200 ms)
  int ffill_steps;    // forward-fill limit (5 steps = 1 s)
  float fill_dbm;     // "not heard" (-120)
  const float* scale_low;   // [F]
  const float* scale_high;  // [F]
  float input_scale;
  int input_zero_point;
  float output_scale;
  int output_zero_point;
  const float* transitions;  // [C*C], i -> j at [i*C + j]
  const float* start;        // [C]
  const float* end;          // [C]
  const char* const* class_names;  // [C]
  int n_ops;                 // op codes the model uses
};

// What the sketch reads from the TFLM interpreter, to check the model matches the settings.
struct ModelInfo {
  int input_dims[4];
  int input_ndims;
  bool input_is_int8;
  float input_scale;
  int input_zero_point;
  int output_dims[4];
  int output_ndims;
  bool output_is_int8;
  float output_scale;
  int output_zero_point;
  int n_op_codes;  // distinct builtin ops in model->operator_codes()
};

// kOk, or the first mismatch (kErrSettings, kErrInputShape, kErrOutputShape, kErrOpCount).
Status CheckSettings(const Settings& s);
Status CheckModel(const Settings& s, const ModelInfo& m);

// Bytes of the workspace Stream needs (T*F ring + per-AP state; +8 for alignment). constexpr for static buffers.
constexpr size_t StreamWorkspaceBytesFor(int t, int f) {
  return 8 + static_cast<size_t>(f) * (sizeof(int32_t) + 3) + static_cast<size_t>(t) * static_cast<size_t>(f);
}
// Bytes of the workspace Decode needs (2*C doubles + T*C back-pointers; +8 for alignment).
constexpr size_t DecodeWorkspaceBytesFor(int t, int c) {
  return 8 + 2 * static_cast<size_t>(c) * sizeof(double) + static_cast<size_t>(t) * static_cast<size_t>(c);
}
size_t WorkspaceBytes(const Settings& s);        // StreamWorkspaceBytesFor(s.window, s.n_features)
size_t DecodeWorkspaceBytes(const Settings& s);  // DecodeWorkspaceBytesFor(s.window, s.n_classes)

// One feature value: raw dBm -> scaled [0, 1] float32 -> int8 (twin of device.scale_quantize).
int8_t ScaleQuantize(const Settings& s, int feature, float raw_dbm);
// clamp(round_half_away(x / scale) + zero_point, -128, 127) in float32 (twin of keras_tinyloc.quantize.quantize).
int8_t Quantize(float x, float scale, int zero_point);

class Stream {
 public:
  Stream();
  // Binds settings and a caller-owned workspace (>= WorkspaceBytes(s), any alignment). kOk or kErrSettings.
  Status Init(const Settings& s, void* workspace, size_t workspace_bytes);
  // Forget all readings (a new session); the settings stay.
  void Reset();
  // Adds one reading. Rejected readings (an error code) change nothing.
  Status AddReading(int64_t time_ms, int ap_index, int rssi_dbm);
  // Finishes the steps before the current one, one at a time; returns true with the next window's
  // T*F int8 input (time-major) when one is complete. Call until it returns false after every AddReading.
  bool NextWindow(int8_t* input);
  // End of a recording: also finishes the step of the last reading (as Python's grid does).
  void Finish();
  // Step index (from the first reading) of the last window NextWindow returned; -1 before the first.
  int32_t last_window_end() const { return last_window_end_; }
  int32_t steps_done() const { return done_; }

 private:
  void FinishStep(int32_t step);
  const Settings* s_;
  int8_t* ring_;       // [T*F] quantized rows, step k at row k % T
  int8_t* prev_val_;   // [F] latest reading before the open step
  int8_t* cur_val_;    // [F] latest reading in the open step
  uint8_t* has_cur_;   // [F]
  int32_t* prev_step_; // [F] step of prev_val_, or a large negative number
  bool started_;
  int64_t t0_;
  int64_t last_t_;
  int32_t open_;       // step of the latest reading
  int32_t done_;       // steps finished so far (0..done_-1)
  int32_t limit_;      // steps that may be finished (open_ or open_+1 after Finish)
  int32_t last_window_end_;
};

// Parses one protocol line "<time_ms>,<ap_index>,<rssi_dbm>" (decimal integers, optional spaces, optional
// trailing CR/LF). kOk or kErrParse; range checks are AddReading's.
Status ParseLine(const char* line, int64_t* time_ms, int* ap_index, int* rssi_dbm);

// CRF Viterbi over a T*C int8 output (time-major): labels[T] get the best path. Returns the last step's label
// (the window's room), or -1 with kErrSettings if the workspace is too small.
int Decode(const Settings& s, const int8_t* output, uint8_t* labels, void* workspace, size_t workspace_bytes);

}  // namespace tinyloc

#endif  // TINYLOC_CORE_H_
