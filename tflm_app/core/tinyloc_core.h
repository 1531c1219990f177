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
//     Gaps:   a reading more than G = GapSteps(s) = max(T, kMinGapSteps) steps after the previous reading's step
//             (or one that would put a segment past kMaxSegmentSteps) ends the segment as Finish() would (its last
//             step is finished, its windows emitted) and starts a new one at that reading (new t0, empty ring,
//             no forward-fill across). Step numbers continue: the new segment's step 0 is the old segment's last
//             step + 1, so a gap of any length costs O(F) work and no model runs (device.input_windows is the twin).
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

// Gap rule (see 3. above): a new segment starts when a reading's step is more than GapSteps(s) after the
// previous reading's step. kMinGapSteps = 20 steps = 4 s at 200 ms (keeps a window = 1 stream from restarting
// on every silent step).
const int kMinGapSteps = 20;
// Steps a segment may span before a reading starts a new one (int32 step arithmetic; 2^30 * 200 ms = 6.8 years).
// Overridable at compile time for the tests only.
#ifndef TINYLOC_MAX_SEGMENT_STEPS
#define TINYLOC_MAX_SEGMENT_STEPS (1 << 30)
#endif
const int32_t kMaxSegmentSteps = TINYLOC_MAX_SEGMENT_STEPS;

// Limits CheckSettings enforces (keras_tinyloc/deploy/device.py: check_settings is the twin). They keep every
// size formula below 2^31 and every float operation of the core finite (no NaN reaches a comparison or a cast).
const int kMaxWindow = 4096;           // T
const int kMaxFeatures = 4096;         // F
const float kMaxAbsDbm = 1e6f;         // |fill_dbm|, |scale_low|, |scale_high|
const float kMaxScale = 1e6f;          // input_scale, output_scale in (0, kMaxScale]
const float kMaxAbsScore = 1e30f;      // |transitions|, |start|, |end|

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
  const float* transitions;  // [C*C], i -> j at [i*C + j]; may be null when window == 1 (Decode never reads it:
                             // the label is argmax(start + e + end)), so a T = 1 firmware carries no C*C table
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

// The one validation of settings (Stream::Init, Decode, App::Init and CheckModel call it): kOk or kErrSettings.
// Rejected: T outside 1..kMaxWindow, F outside 1..kMaxFeatures, C outside 1..255, hop < 1, step_ms < 1,
// ffill_steps < 0, n_ops < 1, a null array (transitions may be null when T = 1); fill_dbm / scale_low / scale_high not finite or beyond kMaxAbsDbm;
// a feature with 0 < high - low whose 1 / (high - low) is not finite (float32); input_scale / output_scale not in
// (0, kMaxScale]; zero points outside -128..127; a CRF score not finite or beyond kMaxAbsScore.
Status CheckSettings(const Settings& s);
// kOk, or the first mismatch (kErrSettings, kErrInputShape, kErrOutputShape, kErrOpCount).
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
int32_t GapSteps(const Settings& s);             // max(s.window, kMinGapSteps)

// One feature value: raw dBm -> scaled [0, 1] float32 -> int8 (twin of device.scale_quantize). A feature index
// outside 0..F-1 (or null scale arrays) quantizes 0.0 instead of reading outside the arrays.
int8_t ScaleQuantize(const Settings& s, int feature, float raw_dbm);
// clamp(round_half_away(x / scale) + zero_point, -128, 127) in float32 (twin of keras_tinyloc.quantize.quantize).
// Total for every input: a scale that is not > 0 quantizes 0.0 (Python raises), a NaN quotient rounds to 0,
// +-inf saturates; the sum is formed in 64 bits, so any int zero point is exact.
int8_t Quantize(float x, float scale, int zero_point);

class Stream {
 public:
  Stream();
  // Binds settings and a caller-owned workspace (>= WorkspaceBytes(s), any alignment). kOk or kErrSettings.
  Status Init(const Settings& s, void* workspace, size_t workspace_bytes);
  // Forget all readings (a new session); the settings stay.
  void Reset();
  // Adds one reading. Rejected readings (an error code) change nothing. O(F) work whatever the time jump
  // (see Gaps above); any int64 time is safe.
  Status AddReading(int64_t time_ms, int ap_index, int rssi_dbm);
  // Finishes the steps before the current one, one at a time; returns true with the next window's
  // T*F int8 input (time-major) when one is complete. Call until it returns false after every AddReading
  // (between two AddReading calls it returns at most GapSteps / hop + 2 windows).
  bool NextWindow(int8_t* input);
  // End of a recording: also finishes the step of the last reading (as Python's grid does).
  void Finish();
  // Step number of the last window NextWindow returned (steps since Init/Reset, segments back to back); -1 before.
  int64_t last_window_end() const { return last_window_end_; }
  // Steps finished since Init/Reset (all segments).
  int64_t steps_done() const { return base_ + done_; }
  // Segments started since Init/Reset (0 before the first reading; +1 at the first reading and at every gap).
  int64_t segments() const { return segments_; }

 private:
  void FinishStep(int32_t step);
  void CopyWindow(int32_t end_step, int8_t* input) const;
  const Settings* s_;
  int8_t* ring_;       // [T*F] quantized rows, step k at row k % T
  int8_t* prev_val_;   // [F] latest reading before the open step
  int8_t* cur_val_;    // [F] latest reading in the open step
  uint8_t* has_cur_;   // [F]
  int32_t* prev_step_; // [F] step of prev_val_, or a large negative number
  bool started_;
  int64_t t0_;         // time of the segment's first reading
  int64_t last_t_;
  int64_t base_;       // step number of the segment's step 0
  int32_t open_;       // step of the latest reading, in the segment
  int32_t done_;       // steps of the segment finished so far (0..done_-1)
  int32_t limit_;      // steps that may be finished (open_ or open_+1 after Finish)
  bool pending_;       // the previous segment's last window is in the ring, not yet returned
  int32_t pending_end_;        // its end step in the previous segment
  int64_t pending_number_;     // its step number
  int64_t last_window_end_;
  int64_t segments_;
};

// snprintf for the sketches' protocol lines without stdio (newlib's printf family is 5-8 KiB of flash on a Cortex-M;
// this is a few hundred bytes). Conversions: %d %i (int), %ld %li (long), %u (unsigned), %lu (unsigned long), %s
// (a null pointer prints "(null)"), %%; no flags, width, precision or floating point. Any other '%' sequence is
// copied as it stands. Writes at most size - 1 characters and a NUL (nothing when size is 0); returns the number of
// characters written (not, as snprintf, the number that would have been).
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
size_t FormatLine(char* buf, size_t size, const char* fmt, ...);

// Parses one protocol line "<time_ms>,<ap_index>,<rssi_dbm>" (decimal integers, optional spaces, optional
// trailing CR/LF). kOk or kErrParse; range checks are AddReading's.
Status ParseLine(const char* line, int64_t* time_ms, int* ap_index, int* rssi_dbm);

// CRF Viterbi over a T*C int8 output (time-major): labels[T] get the best path. Returns the last step's label
// (the window's room), or -1 with kErrSettings if the workspace is too small.
int Decode(const Settings& s, const int8_t* output, uint8_t* labels, void* workspace, size_t workspace_bytes);

}  // namespace tinyloc

#endif  // TINYLOC_CORE_H_
