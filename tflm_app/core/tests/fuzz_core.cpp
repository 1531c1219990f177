// Robustness driver for the device core, built by tests/deploy/test_core_sanitizers.py with
//   g++ -fsanitize=address,undefined -fsanitize=float-cast-overflow,float-divide-by-zero -fno-sanitize-recover=all
// so any out-of-bounds access, signed overflow, NaN/inf-to-int cast or division by zero aborts the run.
//
// It is not a parity test (harness.cpp and the replay tests compare bytes with Python); it drives every public entry
// point of tinyloc_core, tinyloc_online and tinyloc_app with hostile values from a seeded xorshift generator:
//   settings   random T/F/C/hop/step_ms/ffill (0, 1, huge, negative, INT_MIN/MAX), NaN/inf/FLT_MAX/denormal floats,
//              null arrays, zero points outside int8; CheckSettings decides, the rest must cope either way
//   stream     readings with time jumps (0, 1 ms, around the gap rule, 1e12, INT64_MIN/MAX, backwards), AP indices
//              and RSSI at and beyond their limits, random Finish/Reset, never drained on purpose sometimes
//   app        random bytes (NUL, CR, LF, '#', digits, signs, long lines) and extreme reading lines via PutChar
//   online     OnlineViterbi with lags/classes at and beyond their limits, NaN/inf emissions, extreme zero points
//   free fns   Quantize, ScaleQuantize (feature index outside 0..F-1), Requantize, ParseLine, Decode
//   FormatLine the same bytes as the host's snprintf for every format it supports (random pieces, extreme
//              values, buffers from 0 bytes up); unsupported '%' sequences only have to stay in bounds
//   T = 1      settings without a transition table (null) are valid, and rejected for T > 1
// Every array the core reads is a heap block of exactly the documented size, so ASan sees one byte too far.
//
// Bounded work is checked exactly, not by a clock: the model callback counts invocations, and the run fails
// ("FAIL ...") if one AddReading/PutChar leads to more windows than Stream's bound (GapSteps / hop + 2). The wall
// time of the slowest single call is printed (MAXCALL_US) for the test to bound as well.
//
// Usage: fuzz_core SEED ROUNDS        prints "OK ..." and exits 0, or "FAIL ..." and exits 1.
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyloc_app.h"
#include "tinyloc_core.h"
#include "tinyloc_online.h"

namespace {

uint64_t g_rng = 88172645463325252ull;

uint64_t Next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}
int Uniform(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
bool Chance(int percent) { return Uniform(100) < percent; }

float AnyFloat() {
  static const float kEdge[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -0.5f, 1e-45f, -1e-45f, 1e-38f, FLT_MAX, -FLT_MAX,
                                1e6f, 1.0000001e6f, -1e6f, 1e30f, -1e30f, 1.0000001e30f, 2e30f, 127.5f, -128.5f,
                                3e9f, -3e9f, 1099511627776.0f, 1e20f, 1.0f / 255, -120.0f, -127.0f};
  switch (Uniform(4)) {
    case 0: return NAN;
    case 1: return Chance(50) ? INFINITY : -INFINITY;
    case 2: return kEdge[Uniform(sizeof(kEdge) / sizeof(kEdge[0]))];
    default: {
      uint32_t bits = static_cast<uint32_t>(Next());
      float f;
      memcpy(&f, &bits, sizeof f);
      return f;
    }
  }
}

float SaneFloat(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(Uniform(1 << 20)) / (1 << 20); }

int AnyInt() {
  static const int kEdge[] = {0, 1, -1, 2, 5, 20, 127, 128, -128, -129, 255, 256, 4096, 4097, 65536, 1 << 30,
                              INT_MAX, INT_MIN, INT_MAX - 1, INT_MIN + 1};
  return Chance(70) ? kEdge[Uniform(sizeof(kEdge) / sizeof(kEdge[0]))] : static_cast<int>(Next());
}

int64_t AnyTime() {
  static const int64_t kEdge[] = {0, 1, -1, 999999999999LL, 1700000000000LL, INT64_MAX, INT64_MIN, INT64_MAX - 1,
                                  INT64_MIN + 1, 999999999999999999LL, -999999999999999999LL, 1LL << 62};
  return Chance(60) ? kEdge[Uniform(sizeof(kEdge) / sizeof(kEdge[0]))] : static_cast<int64_t>(Next());
}

// Wall time of the slowest single call, microseconds.
double g_max_call_us = 0.0;
const char* g_max_call_what = "";
struct CallTimer {
  explicit CallTimer(const char* what) : what_(what) { clock_gettime(CLOCK_MONOTONIC, &t0_); }
  ~CallTimer() {
    timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double us = (t1.tv_sec - t0_.tv_sec) * 1e6 + (t1.tv_nsec - t0_.tv_nsec) / 1e3;
    if (us > g_max_call_us) {
      g_max_call_us = us;
      g_max_call_what = what_;
    }
  }
  const char* what_;
  timespec t0_;
};

void Fail(const char* what, long long a, long long b) {
  printf("FAIL %s %lld %lld\n", what, a, b);
  exit(1);
}

// Settings whose arrays are heap blocks of exactly F / C*C / C elements.
struct OwnedSettings {
  tinyloc::Settings s;
  float* low;
  float* high;
  float* trans;
  float* start;
  float* end;
  const char** names;
  OwnedSettings() : low(0), high(0), trans(0), start(0), end(0), names(0) { memset(&s, 0, sizeof s); }
  ~OwnedSettings() {
    delete[] low;
    delete[] high;
    delete[] trans;
    delete[] start;
    delete[] end;
    delete[] names;
  }
};

// Valid by construction (small sizes), then, with `hostile`, one or more fields replaced by an extreme value.
void MakeSettings(OwnedSettings* o, bool hostile) {
  tinyloc::Settings& s = o->s;
  s.window = 1 + Uniform(24);
  s.n_features = 1 + Uniform(6);
  s.n_classes = 1 + Uniform(6);
  s.hop = 1 + Uniform(s.window + 2);
  s.step_ms = Chance(20) ? 1 + Uniform(3) : (Chance(10) ? INT_MAX : 200);
  s.ffill_steps = Chance(10) ? INT_MAX : Uniform(8);
  s.fill_dbm = -120.0f;
  s.input_scale = 1.0f / 255;
  s.input_zero_point = -128;
  s.output_scale = SaneFloat(0.01f, 0.5f);
  s.output_zero_point = Uniform(256) - 128;
  s.n_ops = 2;
  const int f = s.n_features, c = s.n_classes;
  o->low = new float[f];
  o->high = new float[f];
  for (int a = 0; a < f; ++a) {
    o->low[a] = SaneFloat(-110.0f, -60.0f);
    o->high[a] = Chance(20) ? o->low[a] : o->low[a] + SaneFloat(0.0f, 50.0f);
  }
  o->trans = new float[c * c];
  for (int i = 0; i < c * c; ++i) o->trans[i] = SaneFloat(-3.0f, 3.0f);
  o->start = new float[c];
  o->end = new float[c];
  o->names = new const char*[c];
  for (int i = 0; i < c; ++i) {
    o->start[i] = SaneFloat(-3.0f, 3.0f);
    o->end[i] = SaneFloat(-3.0f, 3.0f);
    o->names[i] = Chance(5) ? 0 : "room";
  }
  s.scale_low = o->low;
  s.scale_high = o->high;
  s.transitions = o->trans;
  s.start = o->start;
  s.end = o->end;
  s.class_names = o->names;
  if (!hostile) return;
  const int n = 1 + Uniform(3);
  for (int k = 0; k < n; ++k) {
    switch (Uniform(16)) {
      case 0: s.window = AnyInt(); break;
      case 1: s.n_features = AnyInt() % 8; break;  // only shrink or invalidate: the arrays hold F values
      case 2: s.n_classes = AnyInt() % 7; break;
      case 3: s.hop = AnyInt(); break;
      case 4: s.step_ms = AnyInt(); break;
      case 5: s.ffill_steps = AnyInt(); break;
      case 6: s.fill_dbm = AnyFloat(); break;
      case 7: o->low[Uniform(f)] = AnyFloat(); break;
      case 8: o->high[Uniform(f)] = AnyFloat(); break;
      case 9: s.input_scale = AnyFloat(); break;
      case 10: s.output_scale = AnyFloat(); break;
      case 11: s.input_zero_point = AnyInt(); break;
      case 12: s.output_zero_point = AnyInt(); break;
      case 13: o->trans[Uniform(c * c)] = AnyFloat(); break;
      case 14: (Chance(50) ? o->start : o->end)[Uniform(c)] = AnyFloat(); break;
      default: {
        const int which = Uniform(7);
        if (which == 0) s.scale_low = 0;
        if (which == 1) s.scale_high = 0;
        if (which == 2) s.transitions = 0;
        if (which == 3) s.start = 0;
        if (which == 4) s.end = 0;
        if (which == 5) s.class_names = 0;
        if (which == 6) s.n_ops = AnyInt();
      }
    }
  }
  if (s.n_features > f) s.n_features = f;  // never claim more than the arrays hold (that is the caller's bug)
  if (s.n_classes > c) s.n_classes = c;
}

// ------------------------------------------------------------------------------------------------ the model
struct ModelCtx {
  int t, f, c;
  long invocations;
  long printed;
};
bool FakeModel(void* ctx, const int8_t* input, int8_t* output) {
  ModelCtx* m = static_cast<ModelCtx*>(ctx);
  ++m->invocations;
  for (int i = 0; i < m->t; ++i) {
    for (int j = 0; j < m->c; ++j) output[i * m->c + j] = input[i * m->f + (j % m->f)];
  }
  return (m->invocations % 97) != 0;  // an occasional failed Invoke
}
void Print(void* ctx, const char* line) {
  ModelCtx* m = static_cast<ModelCtx*>(ctx);
  ++m->printed;
  if (strlen(line) >= 127) Fail("print_line_length", static_cast<long long>(strlen(line)), 0);
}

int64_t NextTime(int64_t t, const tinyloc::Settings& s) {
  const int64_t g = static_cast<int64_t>(tinyloc::GapSteps(s)) * (s.step_ms > 0 ? s.step_ms : 1);
  int64_t d = 0;
  switch (Uniform(12)) {
    case 0: d = 0; break;
    case 1: d = 1; break;
    case 2: d = Uniform(400); break;
    case 3: d = s.step_ms; break;
    case 4: d = g; break;
    case 5: d = g + s.step_ms; break;
    case 6: d = g + static_cast<int64_t>(s.step_ms) * 2 + Uniform(3); break;
    case 7: d = 999999999999LL; break;  // the 30-day (and more) jump
    case 8: return AnyTime();            // anywhere, including backwards
    case 9: d = -Uniform(3); break;
    default: d = Uniform(250); break;
  }
  if (d > 0 && t > INT64_MAX - d) return INT64_MAX;
  if (d < 0 && t < INT64_MIN - d) return INT64_MIN;
  return t + d;
}

// ------------------------------------------------------------------------------------------------ sections
long g_settings_ok = 0, g_settings_bad = 0, g_readings = 0, g_windows = 0, g_bytes = 0, g_pushes = 0;
long g_segments = 0;

void FuzzStream(const OwnedSettings& o) {
  const tinyloc::Settings& s = o.s;
  const size_t bytes = tinyloc::WorkspaceBytes(s);
  unsigned char* work = new unsigned char[bytes];
  int8_t* input = new int8_t[static_cast<size_t>(s.window) * static_cast<size_t>(s.n_features)];
  tinyloc::Stream stream;
  if (stream.AddReading(0, 0, -50) != tinyloc::kErrNotInitialised) Fail("uninitialised_add", 0, 0);
  if (stream.Init(s, work, bytes - 1) != tinyloc::kErrSettings) Fail("short_workspace_accepted", 0, 0);
  if (stream.Init(s, work, bytes) != tinyloc::kOk) Fail("init", 0, 0);
  const long bound = tinyloc::GapSteps(s) / s.hop + 2;
  int64_t t = Chance(50) ? AnyTime() : 1700000000000LL;
  const int n = 50 + Uniform(300);
  for (int i = 0; i < n; ++i) {
    t = NextTime(t, s);
    const int ap = Chance(90) ? Uniform(s.n_features) : AnyInt();
    const int rssi = Chance(90) ? -Uniform(128) : AnyInt();
    tinyloc::Status st;
    {
      CallTimer timer("Stream::AddReading");
      st = stream.AddReading(t, ap, rssi);
    }
    ++g_readings;
    if (Chance(3)) continue;  // not drained: the next reading of a new step must say kErrNotDrained, not break
    long w = 0;
    {
      CallTimer timer("Stream::NextWindow loop");
      while (stream.NextWindow(input)) {
        ++w;
        if (w > bound) Fail("windows_per_reading", w, bound);
      }
    }
    g_windows += w;
    (void)st;
    if (Chance(2)) {
      stream.Finish();
      while (stream.NextWindow(input)) ++g_windows;
    }
    if (Chance(1)) stream.Reset();
  }
  g_segments += stream.segments();
  delete[] input;
  delete[] work;
}

void FuzzApp(const OwnedSettings& o) {
  const tinyloc::Settings& s = o.s;
  const size_t bytes = tinyloc::AppWorkspaceBytes(s);
  unsigned char* work = new unsigned char[bytes];
  ModelCtx m = {s.window, s.n_features, s.n_classes, 0, 0};
  tinyloc::App app;
  app.HandleLine("1,0,-50");  // before Init: ignored
  app.PutChar('\n');
  if (app.Init(s, "fuzz", work, bytes - 1, FakeModel, Print, &m) != tinyloc::kErrSettings) Fail("app_short", 0, 0);
  if (app.Init(s, Chance(10) ? 0 : "fuzz", work, bytes, FakeModel, Print, &m) != tinyloc::kOk) Fail("app_init", 0, 0);
  app.PrintReady();
  const long bound = tinyloc::GapSteps(s) / s.hop + 2;
  int64_t t = 1700000000000LL;
  char line[160];
  const int n = 40 + Uniform(200);
  for (int i = 0; i < n; ++i) {
    int len = 0;
    switch (Uniform(6)) {
      case 0: {  // random bytes, any value
        len = Uniform(100);
        for (int k = 0; k < len; ++k) line[k] = static_cast<char>(Next());
        break;
      }
      case 1: {  // protocol-looking noise
        static const char kAlpha[] = "0123456789,,,--+ \t\r#resetndx";
        len = Uniform(80);
        for (int k = 0; k < len; ++k) line[k] = kAlpha[Uniform(sizeof(kAlpha) - 1)];
        break;
      }
      case 2: len = snprintf(line, sizeof line, "%s", Chance(50) ? "reset" : "end"); break;
      case 3: {
        long long tt = static_cast<long long>(AnyTime());
        len = snprintf(line, sizeof line, "%lld,%d,%d", tt, AnyInt(), AnyInt());
        break;
      }
      default: {
        t = NextTime(t, s);
        len = snprintf(line, sizeof line, "%lld,%d,%d", static_cast<long long>(t), Uniform(s.n_features + 1),
                       -Uniform(130));
      }
    }
    if (len < 0) len = 0;
    if (len > 150) len = 150;
    const long before = m.invocations;
    for (int k = 0; k < len; ++k) {
      CallTimer timer("App::PutChar");
      app.PutChar(line[k]);
      ++g_bytes;
    }
    {
      CallTimer timer("App::PutChar");
      app.PutChar('\n');
    }
    // "end" drains at most the last step's windows; a reading at most the gap bound
    if (m.invocations - before > bound) Fail("invocations_per_line", m.invocations - before, bound);
    if (Chance(3)) {
      CallTimer timer("App::AddReading");
      app.AddReading(AnyTime(), AnyInt(), AnyInt());
    }
  }
  g_windows += m.invocations;
  delete[] work;
}

void FuzzDecodeAndFree(const OwnedSettings& o, bool valid) {
  const tinyloc::Settings& s = o.s;
  // Out-of-range feature indices must not read past scale_low / scale_high (exactly F floats each).
  const int feats[] = {-1, s.n_features, s.n_features + 1, INT_MIN, INT_MAX, Uniform(8)};
  for (size_t k = 0; k < sizeof(feats) / sizeof(feats[0]); ++k) {
    if (!valid && feats[k] >= 0 && feats[k] < s.n_features) continue;  // arrays may be null when invalid
    (void)tinyloc::ScaleQuantize(s, feats[k], AnyFloat());
  }
  if (valid) {
    const int t = s.window, c = s.n_classes;
    int8_t* out = new int8_t[static_cast<size_t>(t) * static_cast<size_t>(c)];
    uint8_t* labels = new uint8_t[t];
    const size_t db = tinyloc::DecodeWorkspaceBytes(s);
    unsigned char* dw = new unsigned char[db];
    for (int i = 0; i < t * c; ++i) out[i] = static_cast<int8_t>(Next());
    if (tinyloc::Decode(s, out, labels, dw, db - 1) != -1) Fail("decode_short_workspace", 0, 0);
    int room;
    {
      CallTimer timer("Decode");
      room = tinyloc::Decode(s, out, labels, dw, db);
    }
    if (room < 0 || room >= c || labels[t - 1] != room) Fail("decode_room", room, c);
    for (int i = 0; i < t; ++i) {
      if (labels[i] >= c) Fail("decode_label", labels[i], c);
    }
    delete[] dw;
    delete[] labels;
    delete[] out;
  } else {
    unsigned char dw[64];
    uint8_t labels[4];
    int8_t out[4] = {0, 0, 0, 0};
    if (tinyloc::Decode(s, out, labels, dw, sizeof dw) != -1) Fail("decode_bad_settings", 0, 0);
  }
}

void FuzzOnline() {
  const bool hostile = Chance(40);
  int c = 1 + Uniform(8);
  int lag = Uniform(7);
  if (hostile) {
    if (Chance(50)) lag = Chance(50) ? AnyInt() : (Chance(50) ? tinyloc::kMaxLag : tinyloc::kMaxLag + 1);
    if (Chance(30)) c = AnyInt();
  }
  const int cc = c >= 1 && c <= 8 ? c : 8;  // arrays hold 8 classes at most
  float* trans = new float[cc * cc];
  float* start = new float[cc];
  float* end = new float[cc];
  for (int i = 0; i < cc * cc; ++i) trans[i] = hostile && Chance(5) ? AnyFloat() : SaneFloat(-3.0f, 3.0f);
  for (int i = 0; i < cc; ++i) {
    start[i] = hostile && Chance(5) ? AnyFloat() : SaneFloat(-3.0f, 3.0f);
    end[i] = hostile && Chance(5) ? AnyFloat() : SaneFloat(-3.0f, 3.0f);
  }
  const bool sizes_ok = c >= 1 && c <= 8 && lag >= 0 && lag <= tinyloc::kMaxLag;
  const size_t bytes = sizes_ok ? tinyloc::OnlineViterbiWorkspaceBytesFor(c, lag) : 64;
  unsigned char* work = new unsigned char[bytes];
  tinyloc::OnlineViterbi v;
  int32_t step = 0;
  int label = 0;
  if (v.Push(start, &step, &label)) Fail("online_uninitialised", 0, 0);
  if (sizes_ok && v.Init(c, trans, start, end, lag, work, bytes - 1)) Fail("online_short_workspace", c, lag);
  const bool ok = v.Init(c, trans, start, Chance(20) ? 0 : end, lag, work, bytes);
  if (ok && !sizes_ok) Fail("online_bad_sizes_accepted", c, lag);
  float em[8];
  int8_t q[8];
  uint8_t tail[8];
  const int n = 20 + Uniform(200);
  int32_t last = -1;
  for (int i = 0; i < n; ++i) {
    bool got;
    if (Chance(50)) {
      for (int j = 0; j < cc; ++j) em[j] = Chance(90) ? SaneFloat(-10.0f, 10.0f) : AnyFloat();
      CallTimer timer("OnlineViterbi::Push");
      got = v.Push(em, &step, &label);
    } else {
      for (int j = 0; j < cc; ++j) q[j] = static_cast<int8_t>(Next());
      const float scale = Chance(80) ? SaneFloat(0.01f, 1.0f) : AnyFloat();
      const int zp = Chance(80) ? Uniform(256) - 128 : AnyInt();
      CallTimer timer("OnlineViterbi::PushInt8");
      got = v.PushInt8(q, scale, zp, &step, &label);
    }
    ++g_pushes;
    if (got) {
      if (!ok || label < 0 || label >= c || step != last + 1) Fail("online_push", label, step);
      last = step;
    }
    if (Chance(2)) {
      v.Reset();
      last = -1;
    }
  }
  if (ok && v.lag() < 8) {
    const int k = v.Flush(tail);
    for (int i = 0; i < k; ++i) {
      if (tail[i] >= c) Fail("online_flush", tail[i], c);
    }
  }
  delete[] work;
  delete[] end;
  delete[] start;
  delete[] trans;
}

void FuzzFree() {
  int8_t src[16], dst[16];
  for (int i = 0; i < 16; ++i) src[i] = static_cast<int8_t>(Next());
  const float ss = AnyFloat(), sd = AnyFloat();
  const int zs = AnyInt(), zd = AnyInt();
  tinyloc::Requantize(src, dst, 16, ss, zs, sd, zd);
  tinyloc::Requantize(src, src, 16, Chance(50) ? ss : 0.05f, Chance(50) ? zs : 0, Chance(50) ? sd : 0.1f, zd);
  (void)tinyloc::Quantize(AnyFloat(), AnyFloat(), AnyInt());
  char line[80];
  const int len = Uniform(sizeof line);
  for (int i = 0; i < len; ++i) {
    static const char kAlpha[] = "0123456789012345678901234567890123456789,,--++ \t\r\nx.";
    line[i] = Chance(90) ? kAlpha[Uniform(sizeof(kAlpha) - 1)] : static_cast<char>(Next());
  }
  line[len] = '\0';
  int64_t t;
  int a, r;
  (void)tinyloc::ParseLine(line, &t, &a, &r);
  (void)tinyloc::ParseLine(0, &t, &a, &r);
  (void)tinyloc::ParseLine("999999999999999999,1000000,-1000000", &t, &a, &r);
  (void)tinyloc::ParseLine("-999999999999999999,-1000000,1000000", &t, &a, &r);
  (void)tinyloc::StatusName(AnyInt());
}

long g_formats = 0;

// FormatLine vs the host's snprintf, byte for byte and in length, in buffers from 0 bytes up, with a canary after the
// buffer that must stay untouched. Formats: random literal text around a prefix of the fixed conversion sequence
// %d|%i, %ld|%li, %u, %lu, %s, %d (so one call signature serves every format; unread trailing arguments are
// ignored by both), "%%" anywhere in the text. Null %s and unsupported sequences are checked apart.
void FuzzFormat() {
  static const char* const kText[] = {"", "room ", " ", "E", "# arena ", " bytes = ", "x", "%%", "stream F=", "-"};
  static const char* const kStr[] = {"", "hall", "living | dining", "model_ops_mismatch", "%d", "a much longer name"};
  static const char* const kConv[6][2] = {{"%d", "%i"}, {"%ld", "%li"}, {"%u", "%u"}, {"%lu", "%lu"}, {"%s", "%s"},
                                          {"%d", "%i"}};
  static const long kLong[] = {0, 1, -1, 9, 10, -10, 127, -128, INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, 1000000007L};
  char fmt[160];
  size_t n = 0;
  const int convs = Uniform(7);
  for (int i = 0; i <= convs; ++i) {
    for (const char* t = kText[Uniform(sizeof(kText) / sizeof(kText[0]))]; *t; ++t) fmt[n++] = *t;
    if (i == convs) break;
    for (const char* c = kConv[i][Uniform(2)]; *c; ++c) fmt[n++] = *c;
  }
  fmt[n] = '\0';
  long v[4];
  for (int i = 0; i < 4; ++i) v[i] = Chance(50) ? kLong[Uniform(sizeof(kLong) / sizeof(kLong[0]))] : static_cast<long>(Next());
  const int i0 = static_cast<int>(v[0]), i5 = static_cast<int>(v[3]);
  const long l1 = v[1];
  const unsigned u2 = static_cast<unsigned>(v[2]);
  const unsigned long ul3 = static_cast<unsigned long>(v[3]);
  const char* s4 = kStr[Uniform(sizeof(kStr) / sizeof(kStr[0]))];
  char want[512], got[512 + 16];
  const size_t size = Chance(30) ? static_cast<size_t>(Uniform(12)) : static_cast<size_t>(Uniform(200));
  memset(want, 0, sizeof want);
  memset(got, 0x5A, sizeof got);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  const int full = snprintf(want, size, fmt, i0, l1, u2, ul3, s4, i5);
  const size_t got_len = tinyloc::FormatLine(got, size, fmt, i0, l1, u2, ul3, s4, i5);
#pragma GCC diagnostic pop
  const size_t want_len = size == 0 ? 0 : (static_cast<size_t>(full) < size ? static_cast<size_t>(full) : size - 1);
  if (got_len != want_len) Fail("format_length", static_cast<long long>(got_len), static_cast<long long>(want_len));
  if (size > 0 && memcmp(got, want, want_len + 1) != 0) Fail("format_bytes", static_cast<long long>(size), full);
  for (size_t i = size; i < sizeof got; ++i) {
    if (got[i] != 0x5A) Fail("format_overrun", static_cast<long long>(i), static_cast<long long>(size));
  }
  char small[8];
  const char* volatile null_name = 0;  // a null %s prints "(null)", as glibc's and newlib's printf do
  if (tinyloc::FormatLine(small, sizeof small, "%s|%s", null_name, "x") != 7 ||
      strcmp(small, "(null)|") != 0) {
    Fail("format_null", 0, 0);
  }
  // Unsupported sequences (flags, widths, floats, long long, a trailing '%'): copied, never read past the buffer.
  static const char* const kOdd[] = {"%", "%5d", "%x", "%f", "%lld", "%l", "100%", "%-s", "%ls", "%l%"};
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat"
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
  (void)tinyloc::FormatLine(small, sizeof small, kOdd[Uniform(sizeof(kOdd) / sizeof(kOdd[0]))], 1, 2, 3);
#pragma GCC diagnostic pop
  if (tinyloc::FormatLine(0, 10, "x") != 0 || tinyloc::FormatLine(small, 0, "x") != 0) Fail("format_no_buffer", 0, 0);
  ++g_formats;
}

// T = 1 needs no transition table: CheckSettings accepts null transitions exactly when the window is 1, and Decode
// (which then reads start + emissions + end only) gives the label it gives with any table.
void CheckNoTransitions(const OwnedSettings& o) {
  tinyloc::Settings s = o.s;
  s.transitions = 0;
  const tinyloc::Status st = tinyloc::CheckSettings(s);
  if ((st == tinyloc::kOk) != (s.window == 1)) Fail("null_transitions", st, s.window);
  if (st != tinyloc::kOk) return;
  const int c = s.n_classes;
  int8_t* out = new int8_t[c];
  for (int j = 0; j < c; ++j) out[j] = static_cast<int8_t>(Next());
  const size_t db = tinyloc::DecodeWorkspaceBytes(s);
  unsigned char* dw = new unsigned char[db];
  uint8_t label_null = 0, label_table = 0;
  const int a = tinyloc::Decode(s, out, &label_null, dw, db);
  const int b = tinyloc::Decode(o.s, out, &label_table, dw, db);
  if (a != b || a < 0 || label_null != label_table) Fail("null_transitions_decode", a, b);
  delete[] dw;
  delete[] out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fuzz_core SEED ROUNDS\n");
    return 2;
  }
  g_rng ^= strtoull(argv[1], 0, 10) * 0x9E3779B97F4A7C15ull;
  if (g_rng == 0) g_rng = 1;
  const long rounds = strtol(argv[2], 0, 10);
  for (long i = 0; i < rounds; ++i) {
    OwnedSettings o;
    MakeSettings(&o, Chance(50));
    tinyloc::Status st;
    {
      CallTimer timer("CheckSettings");
      st = tinyloc::CheckSettings(o.s);
    }
    tinyloc::ModelInfo info;
    memset(&info, 0, sizeof info);
    info.input_ndims = Uniform(5);
    info.output_ndims = Uniform(5);
    (void)tinyloc::CheckModel(o.s, info);
    if (st == tinyloc::kOk) {
      ++g_settings_ok;
      FuzzStream(o);
      FuzzApp(o);
      FuzzDecodeAndFree(o, true);
      CheckNoTransitions(o);
    } else {
      ++g_settings_bad;
      tinyloc::Stream stream;
      unsigned char w[64];
      if (stream.Init(o.s, w, sizeof w) != tinyloc::kErrSettings) Fail("stream_bad_settings", st, 0);
      tinyloc::App app;
      ModelCtx m = {1, 1, 1, 0, 0};
      if (app.Init(o.s, "x", w, sizeof w, FakeModel, Print, &m) != tinyloc::kErrSettings) Fail("app_bad", st, 0);
      FuzzDecodeAndFree(o, false);
    }
    FuzzOnline();
    FuzzFree();
    FuzzFormat();
  }
  printf("OK settings_ok=%ld settings_bad=%ld readings=%ld windows=%ld segments=%ld bytes=%ld pushes=%ld "
         "formats=%ld\n", g_settings_ok, g_settings_bad, g_readings, g_windows, g_segments, g_bytes, g_pushes,
         g_formats);
  printf("MAXCALL_US %.1f %s\n", g_max_call_us, g_max_call_what);
  return 0;
}
