// A C API over tinyloc_app for tests/test_replay.py: built as a shared library with a model's model_settings.h and
// driven from Python (ctypes), where the model callback runs the REAL converted model in TFLM's host interpreter.
// Together with a pseudo-terminal this is the board minus the hardware: same core, same protocol, same TFLM.
#include "model_settings.h"
#include "tinyloc_app.h"

namespace {
alignas(8) unsigned char g_work[tinyloc::AppWorkspaceBytesFor(model_settings::kWindow, model_settings::kNumFeatures,
                                                               model_settings::kNumClasses)];
tinyloc::App g_app;
}  // namespace

extern "C" int tl_init(tinyloc::ModelFn model, tinyloc::PrintFn print) {
  const int st = g_app.Init(model_settings::kSettings, model_settings::kModelName, g_work, sizeof(g_work), model,
                            print, 0);
  if (st == tinyloc::kOk) g_app.PrintReady();
  return st;
}

extern "C" void tl_put(const char* bytes, int n) {
  for (int i = 0; i < n; ++i) g_app.PutChar(bytes[i]);
}
