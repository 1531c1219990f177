// tinyloc_online: streaming pieces of the device core for a step model (issue 7, "a streaming Mamba").
//
// Portable C++11, no heap, no exceptions, no TFLM or Arduino headers. The Python twins are in
// keras_tinyloc/streaming.py (OnlineViterbi, requantize); tests/test_streaming.py compiles this file with g++ (and
// arm-none-eabi-g++ for QEMU Cortex-M4) and checks labels and bytes are identical.
//
//  * OnlineViterbi: fixed-lag CRF Viterbi over a stream of emissions e_t (C). After step t it emits the label of
//    step t - D (D = lag, in steps; 5 Hz grid, so D = 5 is 1 s) on the best path of the prefix 0..t scored as if the
//    sequence ended at t (the CRF's end scores added; pass end = 0 to leave them out):
//        delta_0[j] = start[j] + e_0[j]
//        delta_t[j] = max_i (delta_{t-1}[i] + trans[i*C + j]) + e_t[j],   bp_t[j] = argmax_i (lowest i on ties)
//        label(t - D) = back-trace D steps along bp from argmax_j (delta_t[j] + end[j])
//    i.e. exactly the windowed Viterbi of e_0..e_t at step t - D (D = 0: its last step). delta is shifted by its
//    maximum after every step, so it stays bounded on an unbroken stream. float32, strict '>' scans.
//    Memory: 3*C floats + (D+1)*C bytes of back-pointers (OnlineViterbiWorkspaceBytesFor).
//    Init rejects C outside 1..255, D outside 0..kMaxLag and scores that are not finite or beyond
//    kMaxAbsScore (1e30, as tinyloc::CheckSettings), so with finite emissions no score overflows.
//  * Requantize: a state tensor written by the int8 step model in the output's quantization is fed back as the
//    matching input in the input's quantization: q' = clamp(roundf((float)(q - zs) * (ss / sd)) + zd, -128, 127).
//    Total for every input (streaming.requantize is the twin): a dst scale that is not > 0 gives ratio 0, a NaN
//    product rounds to 0, +-inf saturates, zero points are applied in 64 bits.
#ifndef TINYLOC_ONLINE_H_
#define TINYLOC_ONLINE_H_

#include <stddef.h>
#include <stdint.h>

namespace tinyloc {

const int kMaxLag = 4096;  // D (819 s at 5 Hz); keeps the workspace formula below 2^31 on 32-bit targets

constexpr size_t OnlineViterbiWorkspaceBytesFor(int c, int lag) {
  return 8 + 3 * static_cast<size_t>(c) * sizeof(float) + (static_cast<size_t>(lag) + 1) * static_cast<size_t>(c);
}

class OnlineViterbi {
 public:
  OnlineViterbi();
  // C in 1..255, lag >= 0; transitions [C*C] (i -> j at [i*C + j]), start [C], end [C] or 0 (no end scores).
  // The score arrays are not copied. workspace >= OnlineViterbiWorkspaceBytesFor(C, lag), any alignment.
  // Returns false (and stays unusable) on bad arguments.
  bool Init(int n_classes, const float* transitions, const float* start, const float* end, int lag,
            void* workspace, size_t workspace_bytes);
  // A new stream: forget the past steps.
  void Reset();
  // Adds step t's emissions [C]. Returns true with *step = t - lag and *label once t >= lag, else false.
  bool Push(const float* emissions, int32_t* step, int* label);
  // Same for an int8 model output [C]: dequantized in float32 as (q - zero_point) * scale.
  bool PushInt8(const int8_t* q, float scale, int zero_point, int32_t* step, int* label);
  // End of a stream: labels of the last min(lag + 1, steps) steps, oldest first, into labels[]; returns how many.
  int Flush(uint8_t* labels);
  int lag() const { return lag_; }
  // Steps pushed since Init/Reset. Step numbers (*step, steps()) saturate at 2^31 - 1 (13.6 years at 5 Hz).
  int32_t steps() const { return t_ < 2147483647 ? static_cast<int32_t>(t_) : 2147483647; }

 private:
  int BestFinal() const;
  int c_;
  int lag_;
  const float* trans_;
  const float* start_;
  const float* end_;
  float* delta_;  // [C]
  float* next_;   // [C]
  float* em_;     // [C] dequantized emissions
  uint8_t* bp_;   // [(lag+1)*C], row t % (lag+1) = bp_t
  int64_t t_;
  int row_;       // t_ % (lag+1)
};

// n int8 values from quantization (src_scale, src_zp) to (dst_scale, dst_zp); src and dst may be the same array.
void Requantize(const int8_t* src, int8_t* dst, int n, float src_scale, int src_zp, float dst_scale, int dst_zp);

}  // namespace tinyloc

#endif  // TINYLOC_ONLINE_H_
