// TEST DOUBLE: minimal stand-ins for the TFLM API the sketch uses (see README.md). Not TFLM.
#ifndef STUB_TFLM_H_
#define STUB_TFLM_H_
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model_settings.h"

#ifndef STUB_OPS
#define STUB_OPS model_settings::kNumOps
#endif
#ifndef STUB_IN_SCALE_FACTOR
#define STUB_IN_SCALE_FACTOR 1.0f
#endif
#ifndef STUB_OUT_C
#define STUB_OUT_C model_settings::kNumClasses
#endif
#ifndef STUB_ARENA_NEEDED
#define STUB_ARENA_NEEDED 1000
#endif

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
struct TfLiteIntArray { int size; int data[4]; };
struct TfLiteQuantizationParams { float scale; int32_t zero_point; };
union TfLitePtrUnion { int8_t* int8; float* f; };
struct TfLiteTensor { TfLiteType type; TfLitePtrUnion data; TfLiteIntArray* dims; TfLiteQuantizationParams params; };

#define TFLITE_SCHEMA_VERSION 3

namespace tflite {
typedef int BuiltinOperator;
struct OperatorCode { int code; };
struct OperatorCodes {
  OperatorCode items[16];
  int n;
  unsigned size() const { return static_cast<unsigned>(n); }
  const OperatorCode* Get(unsigned i) const { return &items[i]; }
};
inline BuiltinOperator GetBuiltinCode(const OperatorCode* c) { return c->code; }
// The stub model's op k (code 100 + k) is model_settings::kOpNames[k]; STUB_WRONG_OP renames its last op.
inline const char* EnumNameBuiltinOperator(BuiltinOperator op) {
  const int k = op - 100;
#ifdef STUB_WRONG_OP
  if (k == model_settings::kNumOps - 1) return "SOFTMAX";
#endif
  return k >= 0 && k < model_settings::kNumOps ? model_settings::kOpNames[k] : "UNKNOWN";
}
struct Model {
  OperatorCodes codes;
  unsigned version() const { return TFLITE_SCHEMA_VERSION; }
  const OperatorCodes* operator_codes() const { return &codes; }
};
inline const Model* GetModel(const void*) {
  static Model m;
  m.codes.n = STUB_OPS + 1;  // one op twice (another version): must count once
  for (int i = 0; i < m.codes.n - 1; ++i) m.codes.items[i].code = 100 + i;
  m.codes.items[m.codes.n - 1].code = 100;
  return &m;
}

template <unsigned int N>
class MicroMutableOpResolver {
 public:
  MicroMutableOpResolver() : n_(0) {}
  TfLiteStatus Add() { return n_ < N ? (++n_, kTfLiteOk) : kTfLiteError; }
  TfLiteStatus AddFullyConnected() { return Add(); }
  TfLiteStatus AddReshape() { return Add(); }
  TfLiteStatus AddLogistic() { return Add(); }
  TfLiteStatus AddMul() { return Add(); }
  TfLiteStatus AddAdd() { return Add(); }
 private:
  unsigned n_;
};

class MicroInterpreter {
 public:
  template <unsigned int N>
  MicroInterpreter(const Model*, const MicroMutableOpResolver<N>&, uint8_t* arena, size_t arena_size)
      : arena_(arena), size_(arena_size) {}
  TfLiteStatus AllocateTensors() {
    if (size_ < STUB_ARENA_NEEDED) return kTfLiteError;
    const int t = model_settings::kWindow;
    in_dims_ = {3, {1, t, model_settings::kNumFeatures, 0}};
    out_dims_ = {3, {1, t, STUB_OUT_C, 0}};
    in_ = {kTfLiteInt8, {reinterpret_cast<int8_t*>(arena_)}, &in_dims_,
           {model_settings::kInputScale * STUB_IN_SCALE_FACTOR, model_settings::kInputZeroPoint}};
    out_ = {kTfLiteInt8, {reinterpret_cast<int8_t*>(arena_) + t * model_settings::kNumFeatures}, &out_dims_,
            {model_settings::kOutputScale, model_settings::kOutputZeroPoint}};
    return kTfLiteOk;
  }
  TfLiteTensor* input(int) { return &in_; }
  TfLiteTensor* output(int) { return &out_; }
  TfLiteStatus Invoke() {  // the fake model: output[t][c] = input[t][c % F]
    const int f = model_settings::kNumFeatures, c = model_settings::kNumClasses;
    for (int t = 0; t < model_settings::kWindow; ++t)
      for (int k = 0; k < c; ++k) out_.data.int8[t * c + k] = in_.data.int8[t * f + (k % f)];
    return kTfLiteOk;
  }
  size_t arena_used_bytes() const { return STUB_ARENA_NEEDED; }
 private:
  uint8_t* arena_;
  size_t size_;
  TfLiteIntArray in_dims_, out_dims_;
  TfLiteTensor in_, out_;
};
}  // namespace tflite
#endif  // STUB_TFLM_H_
