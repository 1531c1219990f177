// fixed_plan.h: the activation plan of a model as a fixed table instead of TFLM's greedy planning at boot — an
// experiment of the probe (tflm_probe.cc) for docs/results/device.md, "The step model's arena with a fixed plan".
//
// Why: AllocateTensors plans where each activation tensor lives in the arena's head. TFLM's GreedyMemoryPlanner does
// that in working arrays it takes from the arena itself (40 B per planned buffer: requirements, two sort orders, a
// list entry, the offset), on top of the allocation-lifetime table (24 B per tensor); both are released afterwards,
// but the arena must be large enough for them once. For the streaming step model that is 2-3 KiB of a ~10 KiB arena.
// TFLM lets the application pass its own MicroMemoryPlanner (MicroAllocator::Create(arena, size, planner)); this one
//   TINYLOC_PLAN_RECORD  wraps a GreedyMemoryPlanner (so the plan is TFLM's own) and records the offset it gives
//                        each buffer; Print() writes "plan n=N offsets=o0,o1,... sizes=s0,s1,...";
//   TINYLOC_FIXED_PLAN   takes the offsets from plan.h (kPlanCount, kPlanOffsets[], kPlanSizes[], written from a
//                        recorded run of the same firmware build) and needs no working arrays. A buffer count or size
//                        other than the recorded one fails AllocateTensors (kTfLiteError), never a wrong layout.
// The buffers are the model's activation tensors, then the kernels' scratch buffers (whose sizes depend on the kernel
// build, e.g. CMSIS-NN): a plan belongs to one model AND one library build.
#ifndef TINYLOC_FIXED_PLAN_H_
#define TINYLOC_FIXED_PLAN_H_

#include <stdio.h>

#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/memory_planner/micro_memory_planner.h"
#if defined(TINYLOC_FIXED_PLAN)
#include "plan.h"
#endif

namespace tinyloc_probe {

constexpr int kMaxPlanBuffers = 512;

class FixedPlan : public tflite::MicroMemoryPlanner {
 public:
  TfLiteStatus Init(unsigned char* scratch, int scratch_size) override {
    n_ = 0;
    mismatch_ = false;
#if defined(TINYLOC_FIXED_PLAN)
    (void)scratch;
    (void)scratch_size;
    return kTfLiteOk;
#else
    return greedy_.Init(scratch, scratch_size);
#endif
  }
  TfLiteStatus AddBuffer(int size, int first_time_used, int last_time_used) override {
    if (!Add(size)) return kTfLiteError;
#if defined(TINYLOC_FIXED_PLAN)
    (void)first_time_used;
    (void)last_time_used;
    return kTfLiteOk;
#else
    return greedy_.AddBuffer(size, first_time_used, last_time_used);
#endif
  }
  TfLiteStatus AddBuffer(int size, int first_time_used, int last_time_used, int offline_offset) override {
    if (!Add(size)) return kTfLiteError;
#if defined(TINYLOC_FIXED_PLAN)
    (void)first_time_used;
    (void)last_time_used;
    (void)offline_offset;
    return kTfLiteOk;
#else
    return greedy_.AddBuffer(size, first_time_used, last_time_used, offline_offset);
#endif
  }
  size_t GetMaximumMemorySize() override {
#if defined(TINYLOC_FIXED_PLAN)
    size_t extent = 0;  // the head the plan occupies: TFLM reserves it, so no later allocation overlaps a tensor
    for (int i = 0; i < n_; ++i) {
      const size_t end = static_cast<size_t>(kPlanOffsets[i]) + static_cast<size_t>(kPlanSizes[i]);
      if (end > extent) extent = end;
    }
    return extent;
#else
    return greedy_.GetMaximumMemorySize();
#endif
  }
  int GetBufferCount() override { return n_; }
  TfLiteStatus GetOffsetForBuffer(int i, int* offset) override {
    if (i < 0 || i >= n_ || mismatch_) return kTfLiteError;
#if defined(TINYLOC_FIXED_PLAN)
    if (n_ != kPlanCount) return kTfLiteError;  // fewer buffers than recorded: not this model/build
    *offset = kPlanOffsets[i];
    return kTfLiteOk;
#else
    const TfLiteStatus st = greedy_.GetOffsetForBuffer(i, offset);
    offsets_[i] = *offset;
    return st;
#endif
  }
  bool preserves_all_tensors() const override { return false; }
  void Print() const {
    printf("plan n=%d offsets=", n_);
    for (int i = 0; i < n_; ++i) printf(i ? ",%d" : "%d", offsets_[i]);
    printf(" sizes=");
    for (int i = 0; i < n_; ++i) printf(i ? ",%d" : "%d", sizes_[i]);
    printf("\n");
  }

 private:
  bool Add(int size) {
    if (n_ >= kMaxPlanBuffers) return false;
#if defined(TINYLOC_FIXED_PLAN)
    if (n_ >= kPlanCount || size != kPlanSizes[n_]) {
      mismatch_ = true;
      return false;
    }
#endif
    sizes_[n_] = size;
    offsets_[n_] = -1;
    ++n_;
    return true;
  }
#if !defined(TINYLOC_FIXED_PLAN)
  tflite::GreedyMemoryPlanner greedy_;
#endif
  int n_ = 0;
  bool mismatch_ = false;
  int sizes_[kMaxPlanBuffers];
  int offsets_[kMaxPlanBuffers];
};

}  // namespace tinyloc_probe

#endif  // TINYLOC_FIXED_PLAN_H_
