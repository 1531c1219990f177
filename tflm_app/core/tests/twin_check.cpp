// Core functions on inputs read from stdin, for tests/deploy/test_core_sanitizers.py, which compares every answer
// with the Python twin on hypothesis-generated inputs.
//
// twin_check settings   tinyloc::CheckSettings vs keras_tinyloc.deploy.device.check_settings. One case per line,
//                       whitespace-separated (floats in any strtof form: hex floats keep float32 values exact,
//                       "nan", "inf", "-inf"):
//                         T F C hop step_ms ffill_steps n_ops input_zp output_zp fill_dbm input_scale output_scale
//                         low[F] high[F] transitions[C*C] start[C] end[C]
//                       (the arrays only when 1 <= F <= kMaxFeatures and 1 <= C <= 255). Prints the status per case
//                       (0 = kOk, 4 = kErrSettings). Arrays are heap blocks of exactly their size.
// twin_check parse      tinyloc::ParseLine vs device.parse_line. One line per input line, hex-encoded (so it may
//                       hold CR, LF, any byte but NUL; "x" is the empty line). Prints "<status> <time> <ap> <rssi>"
//                       (zeros unless ok).
// twin_check requant    tinyloc::Requantize vs keras_tinyloc.deploy.streaming.requantize. One case per line:
//                       src_scale src_zp dst_scale dst_zp; prints the 256 results for q = -128..127.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyloc_core.h"
#include "tinyloc_online.h"

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

int CheckSettingsCases() {
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

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int ParseCases() {
  static char hex[8192];
  static char line[4096];
  while (scanf("%8191s", hex) == 1) {
    size_t n = 0;
    for (const char* h = hex; h[0] && h[1] && n + 1 < sizeof line; h += 2) {
      const int hi = HexDigit(h[0]), lo = HexDigit(h[1]);
      if (hi < 0 || lo < 0) {
        printf("bad input\n");
        return 2;
      }
      line[n++] = static_cast<char>(hi * 16 + lo);
    }
    line[n] = '\0';
    int64_t t = 0;
    int a = 0, r = 0;
    const int st = tinyloc::ParseLine(line, &t, &a, &r);
    printf("%d %lld %d %d\n", st, st ? 0LL : static_cast<long long>(t), st ? 0 : a, st ? 0 : r);
  }
  return 0;
}

int RequantCases() {
  int8_t src[256], dst[256];
  for (int i = 0; i < 256; ++i) src[i] = static_cast<int8_t>(i - 128);
  for (;;) {
    float ss, sd;
    int zs, zd;
    if (!ReadFloat(&ss)) break;
    if (!ReadInt(&zs) || !ReadFloat(&sd) || !ReadInt(&zd)) {
      printf("bad input\n");
      return 2;
    }
    tinyloc::Requantize(src, dst, 256, ss, zs, sd, zd);
    for (int i = 0; i < 256; ++i) printf(i ? " %d" : "%d", dst[i]);
    printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "settings") == 0) return CheckSettingsCases();
  if (argc == 2 && strcmp(argv[1], "parse") == 0) return ParseCases();
  if (argc == 2 && strcmp(argv[1], "requant") == 0) return RequantCases();
  fprintf(stderr, "usage: twin_check settings|parse|requant < cases\n");
  return 2;
}
