// TEST DOUBLE of a board's serial side, used by tests/test_replay.py over a pseudo-terminal.
//
// It runs the real protocol code (tinyloc_app) and the real core (tinyloc_core) compiled for the host, but NOT a
// model: the "model" is a fixed fake, output[t][c] = input[t][c % F] (int8 copy), which the Python test mirrors to
// compute the host's predictions. With "--flip-every N" every N-th window instead gets an output that strongly
// favours class (window index % C), so the test can check that replay reports disagreements; with
// "--setup-error" it only prints a boot error, like a sketch whose model and settings do not match.
//
// stdin/stdout are the pseudo-terminal's master side; lines go out with "\r\n" like Arduino's Serial.println.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_settings.h"
#include "tinyloc_app.h"

namespace {
unsigned char g_work[1 << 16];
long g_flip_every = 0;
long g_window = 0;

bool FakeModel(void*, const int8_t* input, int8_t* output) {
  const int t_n = model_settings::kWindow, f_n = model_settings::kNumFeatures, c_n = model_settings::kNumClasses;
  const bool flip = g_flip_every > 0 && (g_window % g_flip_every) == g_flip_every - 1;
  for (int t = 0; t < t_n; ++t) {
    for (int c = 0; c < c_n; ++c) {
      output[t * c_n + c] = flip ? static_cast<int8_t>(c == g_window % c_n ? 127 : -128) : input[t * f_n + (c % f_n)];
    }
  }
  ++g_window;
  return true;
}

void Print(void*, const char* line) {
  fputs(line, stdout);
  fputs("\r\n", stdout);
  fflush(stdout);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--flip-every") == 0) g_flip_every = atol(argv[2]);
  if (argc == 2 && strcmp(argv[1], "--setup-error") == 0) {  // a board whose boot checks failed: like the sketch,
    for (int i = 0; i < 100; ++i) {                          // repeat the error (every 0.1 s here, 2 s there)
      Print(0, "error 0 E7 model_ops_mismatch model_settings.h does not match model_data.cpp");
      usleep(100000);
    }
    return 0;
  }
  if (tinyloc::AppWorkspaceBytes(model_settings::kSettings) > sizeof(g_work)) return 2;
  tinyloc::App app;
  if (app.Init(model_settings::kSettings, model_settings::kModelName, g_work, sizeof(g_work), FakeModel, Print, 0) !=
      tinyloc::kOk) {
    return 3;
  }
  app.PrintReady();  // like a board that just booted
  char buf[256];
  for (;;) {
    const ssize_t n = read(0, buf, sizeof(buf));
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) app.PutChar(buf[i]);
  }
  return 0;
}
