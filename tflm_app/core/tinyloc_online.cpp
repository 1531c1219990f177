// tinyloc_online: see tinyloc_online.h. Twin of keras_tinyloc/streaming.py (OnlineViterbi, requantize).
#include "tinyloc_online.h"

#include <math.h>

namespace tinyloc {

namespace {

bool AllWithin(const float* v, size_t n, float m) {
  for (size_t i = 0; i < n; ++i) {
    if (!(v[i] >= -m && v[i] <= m)) return false;  // false for NaN and +-inf
  }
  return true;
}

const float kMaxAbsScore = 1e30f;  // = tinyloc::kMaxAbsScore (tinyloc_core.h; this file does not include it)

}  // namespace

OnlineViterbi::OnlineViterbi()
    : c_(0), lag_(0), trans_(0), start_(0), end_(0), delta_(0), next_(0), em_(0), bp_(0), t_(0), row_(0) {}

bool OnlineViterbi::Init(int n_classes, const float* transitions, const float* start, const float* end, int lag,
                         void* workspace, size_t workspace_bytes) {
  c_ = 0;
  if (n_classes < 1 || n_classes > 255 || lag < 0 || lag > kMaxLag || !transitions || !start || !workspace ||
      workspace_bytes < OnlineViterbiWorkspaceBytesFor(n_classes, lag)) {
    return false;
  }
  const size_t c = static_cast<size_t>(n_classes);
  if (!AllWithin(transitions, c * c, kMaxAbsScore) || !AllWithin(start, c, kMaxAbsScore) ||
      (end && !AllWithin(end, c, kMaxAbsScore))) {
    return false;
  }
  uintptr_t p = reinterpret_cast<uintptr_t>(workspace);
  p = (p + 7u) & ~static_cast<uintptr_t>(7u);
  delta_ = reinterpret_cast<float*>(p);
  next_ = delta_ + c;
  em_ = next_ + c;
  bp_ = reinterpret_cast<uint8_t*>(em_ + c);
  trans_ = transitions;
  start_ = start;
  end_ = end;
  lag_ = lag;
  c_ = n_classes;
  Reset();
  return true;
}

void OnlineViterbi::Reset() {
  t_ = 0;
  row_ = 0;
}

int OnlineViterbi::BestFinal() const {
  int best = 0;
  float best_v = end_ ? delta_[0] + end_[0] : delta_[0];
  for (int j = 1; j < c_; ++j) {
    const float v = end_ ? delta_[j] + end_[j] : delta_[j];
    if (v > best_v) {
      best_v = v;
      best = j;
    }
  }
  return best;
}

bool OnlineViterbi::Push(const float* e, int32_t* step, int* label) {
  if (c_ == 0) return false;
  const int rows = lag_ + 1;
  if (t_ == 0) {
    for (int j = 0; j < c_; ++j) next_[j] = start_[j] + e[j];
  } else {
    uint8_t* row = bp_ + static_cast<size_t>(row_) * static_cast<size_t>(c_);
    for (int j = 0; j < c_; ++j) {
      float best = delta_[0] + trans_[j];
      int arg = 0;
      for (int i = 1; i < c_; ++i) {
        const float v = delta_[i] + trans_[i * c_ + j];
        if (v > best) {
          best = v;
          arg = i;
        }
      }
      next_[j] = best + e[j];
      row[j] = static_cast<uint8_t>(arg);
    }
  }
  float m = next_[0];
  for (int j = 1; j < c_; ++j) {
    if (next_[j] > m) m = next_[j];
  }
  for (int j = 0; j < c_; ++j) delta_[j] = next_[j] - m;
  const int64_t t = t_++;
  const int r = row_;  // row of step t
  row_ = row_ + 1 == rows ? 0 : row_ + 1;
  if (t < lag_) return false;
  int lab = BestFinal();
  int s = r;
  for (int k = 0; k < lag_; ++k) {  // back-trace D steps: label(s - 1) = bp_s[label(s)]
    lab = bp_[static_cast<size_t>(s) * static_cast<size_t>(c_) + static_cast<size_t>(lab)];
    s = s == 0 ? rows - 1 : s - 1;
  }
  const int64_t out = t - lag_;
  *step = out < 2147483647 ? static_cast<int32_t>(out) : 2147483647;
  *label = lab;
  return true;
}

bool OnlineViterbi::PushInt8(const int8_t* q, float scale, int zero_point, int32_t* step, int* label) {
  if (c_ == 0) return false;
  for (int j = 0; j < c_; ++j) {
    em_[j] = static_cast<float>(static_cast<int64_t>(q[j]) - static_cast<int64_t>(zero_point)) * scale;
  }
  return Push(em_, step, label);
}

int OnlineViterbi::Flush(uint8_t* labels) {
  if (c_ == 0 || t_ == 0) return 0;
  const int rows = lag_ + 1;
  const int n = t_ < rows ? static_cast<int>(t_) : rows;
  int lab = BestFinal();
  labels[n - 1] = static_cast<uint8_t>(lab);
  int s = row_ == 0 ? rows - 1 : row_ - 1;  // row of the last step
  for (int k = n - 1; k > 0; --k) {
    lab = bp_[static_cast<size_t>(s) * static_cast<size_t>(c_) + static_cast<size_t>(lab)];
    labels[k - 1] = static_cast<uint8_t>(lab);
    s = s == 0 ? rows - 1 : s - 1;
  }
  return n;
}

void Requantize(const int8_t* src, int8_t* dst, int n, float src_scale, int src_zp, float dst_scale, int dst_zp) {
  const float ratio = dst_scale > 0.0f ? src_scale / dst_scale : 0.0f;
  const bool int8_zps = src_zp >= -128 && src_zp <= 127 && dst_zp >= -128 && dst_zp <= 127;
  const float big = 1099511627776.0f;  // 2^40 (as tinyloc::Quantize): beyond it any zero point saturates alike
  for (int i = 0; i < n; ++i) {
    if (int8_zps) {  // every valid quantization: 32-bit arithmetic, exact (|r| > 512 saturates anyway)
      const float v = static_cast<float>(static_cast<int>(src[i]) - src_zp) * ratio;
      float r = v == v ? roundf(v) : 0.0f;
      if (r > 512.0f) r = 512.0f;
      if (r < -512.0f) r = -512.0f;
      int q = static_cast<int>(r) + dst_zp;
      if (q > 127) q = 127;
      if (q < -128) q = -128;
      dst[i] = static_cast<int8_t>(q);
      continue;
    }
    const float v = static_cast<float>(static_cast<int64_t>(src[i]) - static_cast<int64_t>(src_zp)) * ratio;
    float r = v == v ? roundf(v) : 0.0f;
    if (r > big) r = big;
    if (r < -big) r = -big;
    int64_t q = static_cast<int64_t>(r) + static_cast<int64_t>(dst_zp);
    if (q > 127) q = 127;
    if (q < -128) q = -128;
    dst[i] = static_cast<int8_t>(q);
  }
}

}  // namespace tinyloc
