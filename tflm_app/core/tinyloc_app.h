// tinyloc_app: the serial line protocol of the sketch, portable C++11 (no TFLM, no Arduino, no heap, no stdio).
//
// The Arduino sketch and the STM32 main only connect this to a UART and to TFLM (the ModelFn callback), so the
// protocol is the same on every board and is tested on the host (tests/test_replay.py drives it over a
// pseudo-terminal with a stand-in model).
//
// Host -> board, one line each ('\n' or "\r\n"):
//   <time_ms>,<ap_index>,<rssi_dbm>   a reading (decimal integers), counted as reading line 1, 2, ... since reset
//   reset                             forget the session; the board answers "ready ..."
//   end                               end of the session: finish the last step, print its windows, then "done ..."
//   (empty lines and lines starting with '#' are ignored and not counted; a line longer than kMaxLine bytes or
//    holding a NUL byte is a bad line, E10)
// Board -> host:
//   ready <model> T=<T> F=<F> C=<C>
//   room <line> <end_step> <class_index> <class_name>     one per window, <line> = the reading that completed it,
//                                                         <end_step> = Stream::last_window_end() (a gap longer
//                                                         than GapSteps restarts the grid: see tinyloc_core.h)
//   error <line> E<code> <status_name>                    a reading rejected (see tinyloc::Status)
//   done <reading_lines> <windows> <errors>
#ifndef TINYLOC_APP_H_
#define TINYLOC_APP_H_

#include <stddef.h>
#include <stdint.h>

#include "tinyloc_core.h"

namespace tinyloc {

// Runs the model on a T*F int8 input, writing the T*C int8 output. Returns false if inference failed.
typedef bool (*ModelFn)(void* ctx, const int8_t* input, int8_t* output);
// Writes one line of text (no newline included; the callee adds "\r\n" or "\n").
typedef void (*PrintFn)(void* ctx, const char* line);

const int kInvokeFailed = 11;  // printed as "error <line> E11 invoke_failed"
const size_t kMaxLine = 63;     // longer lines are rejected as bad lines (E10)

// Workspace the App needs: stream + decode workspaces + model input/output + labels, each rounded up to 8 bytes.
constexpr size_t Round8(size_t n) { return (n + 7) & ~static_cast<size_t>(7); }
constexpr size_t AppWorkspaceBytesFor(int t, int f, int c) {
  return Round8(StreamWorkspaceBytesFor(t, f)) + Round8(DecodeWorkspaceBytesFor(t, c)) +
         Round8(static_cast<size_t>(t) * static_cast<size_t>(f)) + Round8(static_cast<size_t>(t) * static_cast<size_t>(c)) +
         Round8(static_cast<size_t>(t)) + 8;
}
size_t AppWorkspaceBytes(const Settings& s);  // AppWorkspaceBytesFor(s.window, s.n_features, s.n_classes)

class App {
 public:
  App();
  // kOk, or kErrSettings when the settings are inconsistent or the workspace is too small.
  Status Init(const Settings& s, const char* model_name, void* workspace, size_t workspace_bytes, ModelFn model,
              PrintFn print, void* ctx);
  void PrintReady();
  // Feed received bytes; a complete line is handled at '\n'.
  void PutChar(char c);
  // Handle one line (without its newline).
  void HandleLine(const char* line);

  // For the sketch's own use (e.g. a BLE scan): add a reading directly; returns the core status.
  Status AddReading(int64_t time_ms, int ap_index, int rssi_dbm);
  int64_t reading_lines() const { return lines_; }
  int64_t windows() const { return windows_; }
  int64_t errors() const { return errors_; }

 private:
  void Reset();
  void DrainWindows();
  void PrintError(int code, const char* name);
  const Settings* s_;
  const char* model_name_;
  Stream stream_;
  ModelFn model_;
  PrintFn print_;
  void* ctx_;
  unsigned char* decode_work_;
  size_t decode_bytes_;
  int8_t* input_;
  int8_t* output_;
  uint8_t* labels_;
  char line_[kMaxLine + 1];
  size_t line_len_;
  bool line_overflow_;  // too long, or a NUL byte: the line is bad whatever else it holds
  int64_t lines_;
  int64_t windows_;
  int64_t errors_;
};

}  // namespace tinyloc

#endif  // TINYLOC_APP_H_
