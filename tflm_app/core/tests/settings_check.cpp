// tinyloc::CheckSettings on settings read from stdin, for tests/deploy/test_core_sanitizers.py, which compares every
// verdict with the Python twin (keras_tinyloc.deploy.device.check_settings) on hypothesis-generated settings.
//
// One case per line, whitespace-separated (floats in any strtof form: hex floats keep float32 values exact,
// "nan", "inf", "-inf"):
//   T F C hop step_ms ffill_steps n_ops input_zp output_zp fill_dbm input_scale output_scale
//   low[F] high[F] transitions[C*C] start[C] end[C]
// Prints one status per case (0 = kOk, 4 = kErrSettings). Arrays are heap blocks of exactly their size.
#include <stdio.h>
#include <stdlib.h>

#include "tinyloc_core.h"

namespace {

bool ReadInt(int* v) {
  long long x;
  if (scanf("%lld", &x) != 1 || x < -2147483647LL - 1 || x > 2147483647LL) return false;
  *v = static_cast<int>(x);
  return true;
}

bool ReadFloat(float* v) {
  char buf[64];
  if (scanf("%63s", buf) != 1) return false;
  *v = strtof(buf, 0);
  return true;
}

bool ReadFloats(float* v, long n) {
  for (long i = 0; i < n; ++i) {
    if (!ReadFloat(v + i)) return false;
  }
  return true;
}

}  // namespace

int main() {
  const char* names[1] = {"x"};
  for (;;) {
    tinyloc::Settings s;
    if (!ReadInt(&s.window)) break;
    if (!ReadInt(&s.n_features) || !ReadInt(&s.n_classes) || !ReadInt(&s.hop) || !ReadInt(&s.step_ms) ||
        !ReadInt(&s.ffill_steps) || !ReadInt(&s.n_ops) || !ReadInt(&s.input_zero_point) ||
        !ReadInt(&s.output_zero_point) || !ReadFloat(&s.fill_dbm) || !ReadFloat(&s.input_scale) ||
        !ReadFloat(&s.output_scale)) {
      printf("bad input\n");
      return 2;
    }
    // Arrays are read only for sizes the core could accept; otherwise the line holds none.
    const bool sized = s.n_features >= 1 && s.n_features <= tinyloc::kMaxFeatures && s.n_classes >= 1 &&
                       s.n_classes <= 255;
    const long f = sized ? s.n_features : 0, c = sized ? s.n_classes : 0;
    float* low = new float[f + 1];
    float* high = new float[f + 1];
    float* trans = new float[c * c + 1];
    float* start = new float[c + 1];
    float* end = new float[c + 1];
    if (!ReadFloats(low, f) || !ReadFloats(high, f) || !ReadFloats(trans, c * c) || !ReadFloats(start, c) ||
        !ReadFloats(end, c)) {
      printf("bad input\n");
      return 2;
    }
    s.scale_low = low;
    s.scale_high = high;
    s.transitions = trans;
    s.start = start;
    s.end = end;
    s.class_names = names;  // entries are not read by CheckSettings
    printf("%d\n", static_cast<int>(tinyloc::CheckSettings(s)));
    delete[] end;
    delete[] start;
    delete[] trans;
    delete[] high;
    delete[] low;
  }
  return 0;
}
