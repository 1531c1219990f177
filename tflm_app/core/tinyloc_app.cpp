// tinyloc_app: see tinyloc_app.h. keras_tinyloc/replay.py is the host side of this protocol.
#include "tinyloc_app.h"

#include <string.h>

namespace tinyloc {

namespace {

// A fixed-size line being built (no stdio on the device side).
class Line {
 public:
  Line() : n_(0) { buf_[0] = '\0'; }
  Line& Str(const char* s) {
    while (s && *s && n_ + 1 < sizeof(buf_)) buf_[n_++] = *s++;
    buf_[n_] = '\0';
    return *this;
  }
  Line& Int(int64_t v) {
    char tmp[24];
    int k = 0;
    const bool neg = v < 0;
    uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
    do {
      tmp[k++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u);
    if (neg) tmp[k++] = '-';
    char out[24];
    for (int i = 0; i < k; ++i) out[i] = tmp[k - 1 - i];
    out[k] = '\0';
    return Str(out);
  }
  const char* c_str() const { return buf_; }

 private:
  char buf_[128];
  size_t n_;
};

}  // namespace

size_t AppWorkspaceBytes(const Settings& s) { return AppWorkspaceBytesFor(s.window, s.n_features, s.n_classes); }

App::App()
    : s_(0), model_name_(""), model_(0), print_(0), ctx_(0), decode_work_(0), decode_bytes_(0), input_(0),
      output_(0), labels_(0), line_len_(0), line_overflow_(false), lines_(0), windows_(0), errors_(0) {
  line_[0] = '\0';
}

Status App::Init(const Settings& s, const char* model_name, void* workspace, size_t workspace_bytes, ModelFn model,
                 PrintFn print, void* ctx) {
  s_ = 0;
  if (CheckSettings(s) != kOk || !workspace || !model || !print || workspace_bytes < AppWorkspaceBytes(s)) {
    return kErrSettings;
  }
  const size_t t = static_cast<size_t>(s.window);
  unsigned char* p = static_cast<unsigned char*>(workspace);
  const size_t stream_bytes = Round8(WorkspaceBytes(s));
  Status st = stream_.Init(s, p, stream_bytes);
  if (st != kOk) return st;
  p += stream_bytes;
  decode_work_ = p;
  decode_bytes_ = Round8(DecodeWorkspaceBytes(s));
  p += decode_bytes_;
  input_ = reinterpret_cast<int8_t*>(p);
  p += Round8(t * static_cast<size_t>(s.n_features));
  output_ = reinterpret_cast<int8_t*>(p);
  p += Round8(t * static_cast<size_t>(s.n_classes));
  labels_ = p;
  s_ = &s;
  model_name_ = model_name ? model_name : "";
  model_ = model;
  print_ = print;
  ctx_ = ctx;
  Reset();
  return kOk;
}

void App::Reset() {
  stream_.Reset();
  lines_ = windows_ = errors_ = 0;
  line_len_ = 0;
  line_overflow_ = false;
}

void App::PrintReady() {
  if (!s_) return;
  Line l;
  l.Str("ready ").Str(model_name_).Str(" T=").Int(s_->window).Str(" F=").Int(s_->n_features).Str(" C=").Int(
      s_->n_classes);
  print_(ctx_, l.c_str());
}

void App::PrintError(int code, const char* name) {
  Line l;
  l.Str("error ").Int(lines_).Str(" E").Int(code).Str(" ").Str(name);
  print_(ctx_, l.c_str());
  ++errors_;
}

void App::DrainWindows() {
  while (stream_.NextWindow(input_)) {
    if (!model_(ctx_, input_, output_)) {
      PrintError(kInvokeFailed, "invoke_failed");
      continue;
    }
    const int room = Decode(*s_, output_, labels_, decode_work_, decode_bytes_);
    Line l;
    l.Str("room ").Int(lines_).Str(" ").Int(stream_.last_window_end()).Str(" ").Int(room).Str(" ").Str(
        room >= 0 ? s_->class_names[room] : "?");
    print_(ctx_, l.c_str());
    ++windows_;
  }
}

Status App::AddReading(int64_t time_ms, int ap_index, int rssi_dbm) {
  if (!s_) return kErrNotInitialised;
  const Status st = stream_.AddReading(time_ms, ap_index, rssi_dbm);
  if (st == kOk) DrainWindows();
  return st;
}

void App::HandleLine(const char* line) {
  if (!s_) return;
  while (*line == ' ' || *line == '\t') ++line;
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) --n;
  if (n == 0 || line[0] == '#') return;
  if (n == 5 && strncmp(line, "reset", 5) == 0) {
    Reset();
    PrintReady();
    return;
  }
  if (n == 3 && strncmp(line, "end", 3) == 0) {
    stream_.Finish();
    DrainWindows();
    Line l;
    l.Str("done ").Int(lines_).Str(" ").Int(windows_).Str(" ").Int(errors_);
    print_(ctx_, l.c_str());
    Reset();
    return;
  }
  ++lines_;
  int64_t t = 0;
  int ap = 0, rssi = 0;
  Status st = ParseLine(line, &t, &ap, &rssi);
  if (st == kOk) st = AddReading(t, ap, rssi);
  if (st != kOk) PrintError(st, StatusName(st));
}

void App::PutChar(char c) {
  if (c == '\n') {
    line_[line_len_] = '\0';
    if (line_overflow_) {
      if (s_) {
        ++lines_;
        PrintError(kErrParse, StatusName(kErrParse));
      }
    } else {
      HandleLine(line_);
    }
    line_len_ = 0;
    line_overflow_ = false;
    return;
  }
  if (c == '\0') {
    line_overflow_ = true;  // would cut the line short in HandleLine: a bad line instead
  } else if (line_len_ < kMaxLine) {
    line_[line_len_++] = c;
  } else {
    line_overflow_ = true;
  }
}

}  // namespace tinyloc
