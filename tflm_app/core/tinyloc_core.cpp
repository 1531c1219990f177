// tinyloc_core: see tinyloc_core.h. Twin of keras_tinyloc/device.py (keep the arithmetic identical).
#include "tinyloc_core.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

namespace tinyloc {

namespace {

const int32_t kNever = -2000000000;  // prev_step_ of an AP not heard yet

// Rounds a pointer up to `align` bytes (workspaces are plain byte buffers of any alignment).
unsigned char* AlignUp(void* p, size_t align) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  v = (v + align - 1) & ~static_cast<uintptr_t>(align - 1);
  return reinterpret_cast<unsigned char*>(v);
}

bool WindowEndsAt(const Settings& s, int32_t step) {
  return step + 1 >= s.window && (step + 1 - s.window) % s.hop == 0;
}

// |v| <= m, false for NaN (and for +-inf while m is finite).
bool Within(float v, float m) { return v >= -m && v <= m; }

bool AllWithin(const float* v, int n, float m) {
  for (int i = 0; i < n; ++i) {
    if (!Within(v[i], m)) return false;
  }
  return true;
}

// clamp(round_half_away(v) + zero_point, -128, 127); NaN rounds to 0; exact for every int zero point.
int8_t RoundToInt8(float v, int zero_point) {
  float r = v == v ? roundf(v) : 0.0f;  // half away from zero
  if (zero_point >= -128 && zero_point <= 127) {  // every valid setting: 32-bit, cheap on a Cortex-M
    if (r > 512.0f) r = 512.0f;                   // beyond +-512 the sum saturates whatever the zero point
    if (r < -512.0f) r = -512.0f;
    int q = static_cast<int>(r) + zero_point;
    if (q > 127) q = 127;
    if (q < -128) q = -128;
    return static_cast<int8_t>(q);
  }
  const float big = 1099511627776.0f;  // 2^40: beyond it every int zero point saturates the same way
  if (r > big) r = big;
  if (r < -big) r = -big;
  int64_t q = static_cast<int64_t>(r) + static_cast<int64_t>(zero_point);
  if (q > 127) q = 127;
  if (q < -128) q = -128;
  return static_cast<int8_t>(q);
}

}  // namespace

const char* StatusName(int status) {
  switch (status) {
    case kOk: return "ok";
    case kErrApIndex: return "ap_index_out_of_range";
    case kErrTimeBackwards: return "time_backwards";
    case kErrRssiRange: return "rssi_out_of_range";
    case kErrSettings: return "bad_settings";
    case kErrInputShape: return "model_input_mismatch";
    case kErrOutputShape: return "model_output_mismatch";
    case kErrOpCount: return "model_ops_mismatch";
    case kErrNotDrained: return "windows_not_drained";
    case kErrNotInitialised: return "not_initialised";
    case kErrParse: return "bad_line";
    default: return "unknown";
  }
}

Status CheckSettings(const Settings& s) {
  if (s.window < 1 || s.window > kMaxWindow || s.n_features < 1 || s.n_features > kMaxFeatures ||
      s.n_classes < 1 || s.n_classes > 255 || s.hop < 1 || s.step_ms < 1 || s.ffill_steps < 0 || s.n_ops < 1) {
    return kErrSettings;
  }
  if (!s.scale_low || !s.scale_high || !s.start || !s.end || !s.class_names) return kErrSettings;
  if (!s.transitions && s.window != 1) return kErrSettings;  // T = 1: Decode reads no transition
  if (!Within(s.fill_dbm, kMaxAbsDbm)) return kErrSettings;
  for (int a = 0; a < s.n_features; ++a) {
    const float low = s.scale_low[a], high = s.scale_high[a];
    if (!Within(low, kMaxAbsDbm) || !Within(high, kMaxAbsDbm)) return kErrSettings;
    const float span = high - low;
    if (span > 0.0f && !Within(1.0f / span, FLT_MAX)) return kErrSettings;  // ScaleQuantize's 1 / span
  }
  if (!(s.input_scale > 0.0f && s.input_scale <= kMaxScale)) return kErrSettings;
  if (!(s.output_scale > 0.0f && s.output_scale <= kMaxScale)) return kErrSettings;
  if (s.input_zero_point < -128 || s.input_zero_point > 127) return kErrSettings;
  if (s.output_zero_point < -128 || s.output_zero_point > 127) return kErrSettings;
  if ((s.transitions && !AllWithin(s.transitions, s.n_classes * s.n_classes, kMaxAbsScore)) ||
      !AllWithin(s.start, s.n_classes, kMaxAbsScore) || !AllWithin(s.end, s.n_classes, kMaxAbsScore)) {
    return kErrSettings;
  }
  return kOk;
}

namespace {
bool ShapeIs(const int* dims, int ndims, int a, int b) {
  // (1, a, b), or (a, b) for a model exported without the batch dimension.
  if (ndims == 3) return dims[0] == 1 && dims[1] == a && dims[2] == b;
  if (ndims == 2) return dims[0] == a && dims[1] == b;
  return false;
}
}  // namespace

Status CheckModel(const Settings& s, const ModelInfo& m) {
  Status st = CheckSettings(s);
  if (st != kOk) return st;
  if (!m.input_is_int8 || !ShapeIs(m.input_dims, m.input_ndims, s.window, s.n_features) ||
      m.input_scale != s.input_scale || m.input_zero_point != s.input_zero_point) {
    return kErrInputShape;
  }
  if (!m.output_is_int8 || !ShapeIs(m.output_dims, m.output_ndims, s.window, s.n_classes) ||
      m.output_scale != s.output_scale || m.output_zero_point != s.output_zero_point) {
    return kErrOutputShape;
  }
  if (m.n_op_codes != s.n_ops) return kErrOpCount;
  return kOk;
}

size_t WorkspaceBytes(const Settings& s) { return StreamWorkspaceBytesFor(s.window, s.n_features); }

size_t DecodeWorkspaceBytes(const Settings& s) { return DecodeWorkspaceBytesFor(s.window, s.n_classes); }

int32_t GapSteps(const Settings& s) { return s.window > kMinGapSteps ? s.window : kMinGapSteps; }

int8_t Quantize(float x, float scale, int zero_point) {
  // float32 division, as numpy does on float32 arrays; a scale that is not > 0 (settings reject it) quantizes 0.
  const float v = scale > 0.0f ? x / scale : 0.0f;
  return RoundToInt8(v, zero_point);
}

int8_t ScaleQuantize(const Settings& s, int feature, float raw_dbm) {
  if (feature < 0 || feature >= s.n_features || !s.scale_low || !s.scale_high) {
    return Quantize(0.0f, s.input_scale, s.input_zero_point);
  }
  const float low = s.scale_low[feature];
  const float span = s.scale_high[feature] - low;
  const float inv = span > 0.0f ? 1.0f / span : 0.0f;
  float x = (raw_dbm - low) * inv;
  if (x < 0.0f) x = 0.0f;
  if (x > 1.0f) x = 1.0f;
  return Quantize(x, s.input_scale, s.input_zero_point);
}

Stream::Stream()
    : s_(0), ring_(0), prev_val_(0), cur_val_(0), has_cur_(0), prev_step_(0), started_(false), t0_(0),
      last_t_(0), base_(0), open_(0), done_(0), limit_(0), pending_(false), pending_end_(0), pending_number_(0),
      last_window_end_(-1), segments_(0) {}

Status Stream::Init(const Settings& s, void* workspace, size_t workspace_bytes) {
  s_ = 0;
  if (CheckSettings(s) != kOk || !workspace || workspace_bytes < WorkspaceBytes(s)) return kErrSettings;
  const size_t f = static_cast<size_t>(s.n_features);
  unsigned char* p = AlignUp(workspace, 8);
  prev_step_ = reinterpret_cast<int32_t*>(p);
  p += f * sizeof(int32_t);
  ring_ = reinterpret_cast<int8_t*>(p);
  p += static_cast<size_t>(s.window) * f;
  prev_val_ = reinterpret_cast<int8_t*>(p);
  p += f;
  cur_val_ = reinterpret_cast<int8_t*>(p);
  p += f;
  has_cur_ = p;
  s_ = &s;
  Reset();
  return kOk;
}

void Stream::Reset() {
  started_ = false;
  t0_ = last_t_ = 0;
  base_ = 0;
  open_ = done_ = limit_ = 0;
  pending_ = false;
  pending_end_ = 0;
  pending_number_ = 0;
  last_window_end_ = -1;
  segments_ = 0;
  if (!s_) return;
  for (int a = 0; a < s_->n_features; ++a) {
    prev_step_[a] = kNever;
    prev_val_[a] = 0;
    cur_val_[a] = 0;
    has_cur_[a] = 0;
  }
}

Status Stream::AddReading(int64_t time_ms, int ap_index, int rssi_dbm) {
  if (!s_) return kErrNotInitialised;
  if (ap_index < 0 || ap_index >= s_->n_features) return kErrApIndex;
  if (rssi_dbm < -127 || rssi_dbm > 0) return kErrRssiRange;
  if (started_ && time_ms < last_t_) return kErrTimeBackwards;
  bool restart = !started_;
  int32_t step = 0;
  if (started_) {
    // time_ms >= last_t_ >= t0_, so the difference is in [0, 2^64): exact in unsigned arithmetic.
    const uint64_t steps = (static_cast<uint64_t>(time_ms) - static_cast<uint64_t>(t0_)) /
                           static_cast<uint64_t>(s_->step_ms);
    if (steps > static_cast<uint64_t>(open_) + static_cast<uint64_t>(GapSteps(*s_)) ||
        steps > static_cast<uint64_t>(kMaxSegmentSteps)) {
      restart = true;
    } else {
      step = static_cast<int32_t>(steps);
    }
  }
  if (started_ && (restart || step > open_)) {
    if (done_ < open_ || pending_) return kErrNotDrained;
    for (int a = 0; a < s_->n_features; ++a) {
      if (has_cur_[a]) {
        prev_val_[a] = cur_val_[a];
        prev_step_[a] = open_;
        has_cur_[a] = 0;
      }
    }
    if (restart) {
      // End the segment as Finish() + NextWindow() would: finish its last step now; a window ending there
      // stays in the ring (pending_) and is the next one NextWindow returns, before any step of the new segment.
      if (done_ == open_) {
        FinishStep(open_);
        ++done_;
        if (WindowEndsAt(*s_, open_)) {
          pending_ = true;
          pending_end_ = open_;
          pending_number_ = base_ + open_;
        }
      }
      const int64_t room = INT64_MAX - base_;  // step numbers saturate instead of overflowing
      base_ = static_cast<int64_t>(open_) + 1 < room ? base_ + open_ + 1 : INT64_MAX;
      for (int a = 0; a < s_->n_features; ++a) prev_step_[a] = kNever;
    } else {
      open_ = step;
      if (limit_ < open_) limit_ = open_;
    }
  }
  if (restart) {
    started_ = true;
    t0_ = time_ms;
    open_ = done_ = limit_ = 0;
    ++segments_;
  }
  last_t_ = time_ms;
  cur_val_[ap_index] = static_cast<int8_t>(rssi_dbm);
  has_cur_[ap_index] = 1;
  return kOk;
}

void Stream::Finish() {
  if (s_ && started_ && limit_ < open_ + 1) limit_ = open_ + 1;
}

void Stream::FinishStep(int32_t step) {
  const int f = s_->n_features;
  int8_t* row = ring_ + static_cast<size_t>(step % s_->window) * static_cast<size_t>(f);
  for (int a = 0; a < f; ++a) {
    float raw = s_->fill_dbm;
    if (step == open_ && has_cur_[a]) {
      raw = static_cast<float>(cur_val_[a]);
    } else if (prev_step_[a] != kNever && step - prev_step_[a] <= s_->ffill_steps) {
      raw = static_cast<float>(prev_val_[a]);
    }
    row[a] = ScaleQuantize(*s_, a, raw);
  }
}

void Stream::CopyWindow(int32_t end_step, int8_t* input) const {
  const size_t f = static_cast<size_t>(s_->n_features);
  for (int k = 0; k < s_->window; ++k) {
    const int32_t src = end_step - s_->window + 1 + k;
    memcpy(input + static_cast<size_t>(k) * f, ring_ + static_cast<size_t>(src % s_->window) * f, f);
  }
}

bool Stream::NextWindow(int8_t* input) {
  if (!s_) return false;
  if (pending_) {
    CopyWindow(pending_end_, input);
    last_window_end_ = pending_number_;
    pending_ = false;
    return true;
  }
  while (done_ < limit_) {
    const int32_t step = done_;
    FinishStep(step);
    ++done_;
    if (WindowEndsAt(*s_, step)) {
      CopyWindow(step, input);
      last_window_end_ = base_ + step;
      return true;
    }
  }
  return false;
}

namespace {
// Parses an optionally signed decimal integer; advances *p. Spaces around it are skipped.
bool ParseInt(const char** p, int64_t* out) {
  const char* c = *p;
  while (*c == ' ' || *c == '\t') ++c;
  bool neg = false;
  if (*c == '-' || *c == '+') {
    neg = (*c == '-');
    ++c;
  }
  if (*c < '0' || *c > '9') return false;
  int64_t v = 0;
  int digits = 0;
  while (*c >= '0' && *c <= '9') {
    if (++digits > 18) return false;
    v = v * 10 + (*c - '0');
    ++c;
  }
  while (*c == ' ' || *c == '\t') ++c;
  *out = neg ? -v : v;
  *p = c;
  return true;
}
}  // namespace

namespace {
// Appends to a bounded buffer; keeps it NUL-terminated, drops what does not fit.
struct Out {
  char* buf;
  size_t size;
  size_t n;
  void Put(char c) {
    if (n + 1 < size) buf[n++] = c;
  }
  void Str(const char* s) {
    if (!s) s = "(null)";
    while (*s) Put(*s++);
  }
  void Unsigned(unsigned long v) {
    char tmp[24];
    int k = 0;
    do {
      tmp[k++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    while (k) Put(tmp[--k]);
  }
  void Signed(long v) {
    if (v < 0) {
      Put('-');
      Unsigned(0ul - static_cast<unsigned long>(v));  // exact for LONG_MIN too
    } else {
      Unsigned(static_cast<unsigned long>(v));
    }
  }
};
}  // namespace

size_t FormatLine(char* buf, size_t size, const char* fmt, ...) {
  if (!buf || size == 0) return 0;
  Out o = {buf, size, 0};
  va_list ap;
  va_start(ap, fmt);
  for (const char* p = fmt ? fmt : ""; *p; ++p) {
    if (*p != '%') {
      o.Put(*p);
      continue;
    }
    const char* start = p;
    const bool is_long = p[1] == 'l';
    const char conv = is_long ? p[2] : p[1];
    if (conv == 'd' || conv == 'i') {
      o.Signed(is_long ? va_arg(ap, long) : static_cast<long>(va_arg(ap, int)));
    } else if (conv == 'u') {
      o.Unsigned(is_long ? va_arg(ap, unsigned long) : static_cast<unsigned long>(va_arg(ap, unsigned)));
    } else if (conv == 's' && !is_long) {
      o.Str(va_arg(ap, const char*));
    } else if (conv == '%' && !is_long) {
      o.Put('%');
    } else {  // not a conversion this formatter knows: copy the '%' and go on after it
      o.Put(*start);
      continue;
    }
    p += is_long ? 2 : 1;
  }
  va_end(ap);
  buf[o.n] = '\0';
  return o.n;
}

Status ParseLine(const char* line, int64_t* time_ms, int* ap_index, int* rssi_dbm) {
  if (!line) return kErrParse;
  const char* p = line;
  int64_t t = 0, a = 0, r = 0;
  if (!ParseInt(&p, &t) || *p++ != ',') return kErrParse;
  if (!ParseInt(&p, &a) || *p++ != ',') return kErrParse;
  if (!ParseInt(&p, &r)) return kErrParse;
  while (*p == '\r' || *p == '\n') ++p;
  if (*p != '\0') return kErrParse;
  if (a < -1000000 || a > 1000000 || r < -1000000 || r > 1000000) return kErrParse;
  *time_ms = t;
  *ap_index = static_cast<int>(a);
  *rssi_dbm = static_cast<int>(r);
  return kOk;
}

int Decode(const Settings& s, const int8_t* output, uint8_t* labels, void* workspace, size_t workspace_bytes) {
  if (CheckSettings(s) != kOk || !workspace || workspace_bytes < DecodeWorkspaceBytes(s)) return -1;
  const int c_n = s.n_classes;
  const int t_n = s.window;
  unsigned char* p = AlignUp(workspace, 8);
  double* delta = reinterpret_cast<double*>(p);
  double* next = delta + c_n;
  uint8_t* back = reinterpret_cast<uint8_t*>(next + c_n);
  // Emissions: quantize.dequantize (float32 (q - zp) * scale), then crf.viterbi_numpy in float64:
  // delta_0 = start + e_0; cand[i][j] = delta[i] + trans[i][j]; back[t][j] = first argmax_i;
  // delta'[j] = max_i cand + e_t[j]; last = first argmax_j (delta[j] + end[j]).
  // The float32 emission goes through a volatile so no compiler fuses the product into a later add (FMA).
  for (int j = 0; j < c_n; ++j) {
    volatile float e = static_cast<float>(output[j] - s.output_zero_point) * s.output_scale;
    delta[j] = static_cast<double>(s.start[j]) + static_cast<double>(e);
  }
  for (int t = 1; t < t_n; ++t) {
    const int8_t* row = output + static_cast<size_t>(t) * static_cast<size_t>(c_n);
    for (int j = 0; j < c_n; ++j) {
      double best = delta[0] + static_cast<double>(s.transitions[j]);
      int arg = 0;
      for (int i = 1; i < c_n; ++i) {
        const double cand = delta[i] + static_cast<double>(s.transitions[i * c_n + j]);
        if (cand > best) {
          best = cand;
          arg = i;
        }
      }
      volatile float e = static_cast<float>(row[j] - s.output_zero_point) * s.output_scale;
      next[j] = best + static_cast<double>(e);
      back[static_cast<size_t>(t) * static_cast<size_t>(c_n) + static_cast<size_t>(j)] = static_cast<uint8_t>(arg);
    }
    for (int j = 0; j < c_n; ++j) delta[j] = next[j];
  }
  int last = 0;
  double best = delta[0] + static_cast<double>(s.end[0]);
  for (int j = 1; j < c_n; ++j) {
    const double v = delta[j] + static_cast<double>(s.end[j]);
    if (v > best) {
      best = v;
      last = j;
    }
  }
  labels[t_n - 1] = static_cast<uint8_t>(last);
  for (int t = t_n - 1; t > 0; --t) {
    labels[t - 1] = back[static_cast<size_t>(t) * static_cast<size_t>(c_n) + labels[t]];
  }
  return last;
}

}  // namespace tinyloc
