// tflm_probe: the measurement firmware of keras_tinyloc.deploy.m4 — one .tflite model in real TFLM on QEMU
// mps2-an386 (Cortex-M4F), driven over semihosting. Not a sketch: the sketches are tflm_app/stm32/main.cc and
// tflm_app/arduino/*; this program exists to measure a model on the emulated core.
//
// Build inputs: probe_model.h (generated: the flatbuffer as g_model, kProbeNumOps, AddProbeOps(resolver) with
// exactly the model's ops). Command line (semihosting SYS_GET_CMDLINE; QEMU -semihosting-config ...,arg=...):
//   probe arena N              build an interpreter with an N-byte arena, AllocateTensors, Invoke once on zeros.
//                              exit 0 + "probe ok used=<arena_used_bytes>"; exit 1 "probe alloc_failed";
//                              exit 2 "probe invoke_failed"; a crash exits 3 (startup.c fault handler).
//   probe run N IN OUT         arena N; for each sample in the host file IN (all input tensors' bytes, in input
//                              order, back to back) invoke once and append all output tensors' bytes to OUT.
//                              Every Invoke() sits between the marker calls tinyloc_insn_begin/_end (counted by
//                              tflm_app/tools/insn_count.c); before them two calibration pairs run: an empty one
//                              and one around a loop of exactly 401 instructions.
//   probe record N             RecordingMicroInterpreter: the arena's allocations by type and per node (bytes
//                              each node's Init/Prepare took as persistent buffers), printed as "rec ..." lines.
// Built with -DTINYLOC_PLAN_RECORD / -DTINYLOC_FIXED_PLAN, arena and run plan the activations with fixed_plan.h's
// planner (arena mode then also prints the recorded plan); without them, TFLM's default planner.
// Every mode ends with "probe stack=<bytes>" (stack high-water mark of this program, from the painted stack).
// TFLM's own messages (MicroPrintf) are forwarded to the semihosting console, prefixed "tflm: ".
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
// after TFLM's headers: AddProbeOps may name TFLM's int8-only kernels (-DTINYLOC_INT8_KERNELS)
#include "probe_model.h"
#if defined(TINYLOC_PLAN_RECORD) || defined(TINYLOC_FIXED_PLAN)
#include "fixed_plan.h"  // arena / run modes plan with tinyloc_probe::FixedPlan (an experiment; see that file)
tinyloc_probe::FixedPlan g_plan;
#endif

extern "C" {
int tinyloc_semihost(int op, void* arg);
void initialise_monitor_handles(void);
extern uint32_t _stack_limit, _stack_top;
__attribute__((noipa, used)) void tinyloc_insn_begin(void) { __asm__ volatile("nop"); }
__attribute__((noipa, used)) void tinyloc_insn_end(void) { __asm__ volatile("nop\n nop"); }
}

namespace {

constexpr uint32_t kStackPaint = 0xC5C5C5C5u;
constexpr size_t kMaxArena = 512 * 1024;
alignas(16) uint8_t g_arena[kMaxArena];
tflite::MicroMutableOpResolver<kProbeNumOps> g_resolver;

size_t StackHighWater() {
  const uint32_t* p = &_stack_limit;
  while (p < &_stack_top && *p == kStackPaint) ++p;
  return reinterpret_cast<uintptr_t>(&_stack_top) - reinterpret_cast<uintptr_t>(p);
}

void TflmLog(const char* s) {
  static bool line_start = true;
  for (; *s; ++s) {
    if (line_start && *s != '\r' && *s != '\n') fputs("tflm: ", stdout);
    if (*s != '\r') putchar(*s);
    line_start = *s == '\n';
  }
}

int Finish(int code) {
  printf("probe stack=%u\n", static_cast<unsigned>(StackHighWater()));
  fflush(stdout);
  return code;
}

// --------------------------------------------------------------------------------------------- record mode
// Wrapped registrations: the same kernels, with Init/Prepare bracketed to attribute persistent bytes to nodes.
const tflite::RecordingMicroAllocator* g_rec = nullptr;
TFLMRegistration g_orig[kProbeNumOps + 1], g_wrapped[kProbeNumOps + 1];
int g_init_node = 0, g_prepare_node = 0;
constexpr int kMaxNodes = 1024;
size_t g_node_init[kMaxNodes], g_node_prepare[kMaxNodes];

size_t PersistentNow() {
  return g_rec ? g_rec->GetRecordedAllocation(tflite::RecordedAllocationType::kPersistentBufferData).used_bytes : 0;
}

template <int K>
void* WrappedInit(TfLiteContext* c, const char* b, size_t n) {
  const size_t before = PersistentNow();
  void* r = g_orig[K].init ? g_orig[K].init(c, b, n) : nullptr;
  if (g_init_node < kMaxNodes) g_node_init[g_init_node] = PersistentNow() - before;
  ++g_init_node;
  return r;
}

template <int K>
TfLiteStatus WrappedPrepare(TfLiteContext* c, TfLiteNode* node) {
  const size_t before = PersistentNow();
  const TfLiteStatus r = g_orig[K].prepare ? g_orig[K].prepare(c, node) : kTfLiteOk;
  if (g_prepare_node < kMaxNodes) g_node_prepare[g_prepare_node] = PersistentNow() - before;
  ++g_prepare_node;
  return r;
}

template <int K>
struct Wrap {
  static void Set() {
    g_wrapped[K].init = WrappedInit<K>;
    g_wrapped[K].prepare = WrappedPrepare<K>;
    Wrap<K - 1>::Set();
  }
};
template <>
struct Wrap<-1> {
  static void Set() {}
};

class WrappingResolver : public tflite::MicroOpResolver {
 public:
  explicit WrappingResolver(const tflite::MicroOpResolver& inner) : inner_(inner) {}
  const TFLMRegistration* FindOp(tflite::BuiltinOperator op) const override { return Wrapped(inner_.FindOp(op)); }
  const TFLMRegistration* FindOp(const char* op) const override { return Wrapped(inner_.FindOp(op)); }
  tflite::TfLiteBridgeBuiltinParseFunction GetOpDataParser(tflite::BuiltinOperator op) const override {
    return inner_.GetOpDataParser(op);
  }

 private:
  const TFLMRegistration* Wrapped(const TFLMRegistration* r) const {
    if (!r) return r;
    for (int k = 0; k < n_; ++k)
      if (g_orig[k].builtin_code == r->builtin_code && g_orig[k].invoke == r->invoke) return &g_wrapped[k];
    if (n_ > kProbeNumOps) return r;
    g_orig[n_] = *r;
    const auto init = g_wrapped[n_].init;
    const auto prepare = g_wrapped[n_].prepare;
    g_wrapped[n_] = *r;
    g_wrapped[n_].init = init;
    g_wrapped[n_].prepare = prepare;
    return &g_wrapped[n_++];
  }
  const tflite::MicroOpResolver& inner_;
  mutable int n_ = 0;
};

int Record(const tflite::Model* model, size_t arena) {
  Wrap<kProbeNumOps>::Set();
  static WrappingResolver resolver(g_resolver);
  static tflite::RecordingMicroInterpreter it(model, resolver, g_arena, arena);
  g_rec = &it.GetMicroAllocator();
  if (it.AllocateTensors() != kTfLiteOk) {
    puts("probe alloc_failed");
    return Finish(1);
  }
  using T = tflite::RecordedAllocationType;
  const struct {
    T type;
    const char* name;
  } kinds[] = {{T::kTfLiteEvalTensorData, "eval_tensors"},
               {T::kPersistentTfLiteTensorData, "persistent_tensors"},
               {T::kPersistentTfLiteTensorQuantizationData, "persistent_quantization"},
               {T::kPersistentBufferData, "persistent_buffers"},
               {T::kTfLiteTensorVariableBufferData, "variable_buffers"},
               {T::kNodeAndRegistrationArray, "node_and_registration"},
               {T::kOpData, "op_data"}};
  for (const auto& k : kinds) {
    const tflite::RecordedAllocation a = g_rec->GetRecordedAllocation(k.type);
    printf("rec type %s used=%u requested=%u count=%u\n", k.name, static_cast<unsigned>(a.used_bytes),
           static_cast<unsigned>(a.requested_bytes), static_cast<unsigned>(a.count));
  }
  const tflite::SubGraph* sg = model->subgraphs()->Get(0);
  const int nodes = static_cast<int>(sg->operators()->size());
  for (int i = 0; i < nodes && i < kMaxNodes; ++i) {
    const auto* code = model->operator_codes()->Get(sg->operators()->Get(i)->opcode_index());
    const int op = code->deprecated_builtin_code() < 127 ? code->deprecated_builtin_code()
                                                         : static_cast<int>(code->builtin_code());
    printf("rec node %d %s init=%u prepare=%u\n", i,
           tflite::EnumNameBuiltinOperator(static_cast<tflite::BuiltinOperator>(op)),
           static_cast<unsigned>(g_node_init[i]), static_cast<unsigned>(g_node_prepare[i]));
  }
  printf("rec nodes=%d tensors=%u used=%u\n", nodes, static_cast<unsigned>(sg->tensors()->size()),
         static_cast<unsigned>(it.arena_used_bytes()));
  g_rec->PrintAllocations();  // "tflm: [RecordingMicroAllocator] Arena allocation total/head/tail N bytes" + types
  return Finish(0);
}

// --------------------------------------------------------------------------------------------- arena / run
size_t InputBytes(tflite::MicroInterpreter& it) {
  size_t n = 0;
  for (size_t i = 0; i < it.inputs_size(); ++i) n += it.input(i)->bytes;
  return n;
}

int Run(const tflite::Model* model, size_t arena, const char* in_path, const char* out_path) {
#if defined(TINYLOC_PLAN_RECORD) || defined(TINYLOC_FIXED_PLAN)
  static tflite::MicroInterpreter it(model, g_resolver, tflite::MicroAllocator::Create(g_arena, arena, &g_plan));
#else
  static tflite::MicroInterpreter it(model, g_resolver, g_arena, arena);
#endif
  if (it.AllocateTensors() != kTfLiteOk) {
    puts("probe alloc_failed");
    return Finish(1);
  }
  const size_t used = it.arena_used_bytes();
  // The two calibration pairs for the instruction counter: empty, then exactly 1 + 2*200 instructions.
  tinyloc_insn_begin();
  tinyloc_insn_end();
  tinyloc_insn_begin();
  __asm__ volatile("movs r3, #200\n1: subs r3, #1\n bne 1b" ::: "r3", "cc");
  tinyloc_insn_end();
  if (!in_path) {  // arena mode: one invoke on zeros
    for (size_t i = 0; i < it.inputs_size(); ++i) memset(it.input(i)->data.raw, 0, it.input(i)->bytes);
    tinyloc_insn_begin();
    const TfLiteStatus st = it.Invoke();
    tinyloc_insn_end();
    if (st != kTfLiteOk) {
      puts("probe invoke_failed");
      return Finish(2);
    }
#if defined(TINYLOC_PLAN_RECORD)
    g_plan.Print();
#endif
    printf("probe ok used=%u\n", static_cast<unsigned>(used));
    return Finish(0);
  }
  FILE* in = fopen(in_path, "rb");
  FILE* out = fopen(out_path, "wb");
  if (!in || !out) {
    puts("probe io_failed");
    return Finish(4);
  }
  int samples = 0;
  for (;;) {
    bool complete = true;
    for (size_t i = 0; i < it.inputs_size() && complete; ++i) {
      TfLiteTensor* t = it.input(i);
      complete = fread(t->data.raw, 1, t->bytes, in) == t->bytes;
    }
    if (!complete) break;
    tinyloc_insn_begin();
    const TfLiteStatus st = it.Invoke();
    tinyloc_insn_end();
    if (st != kTfLiteOk) {
      printf("probe invoke_failed sample=%d\n", samples);
      return Finish(2);
    }
    for (size_t i = 0; i < it.outputs_size(); ++i) fwrite(it.output(i)->data.raw, 1, it.output(i)->bytes, out);
    ++samples;
  }
  fclose(in);
  fclose(out);
  printf("probe run samples=%d input_bytes=%u used=%u\n", samples, static_cast<unsigned>(InputBytes(it)),
         static_cast<unsigned>(used));
  return Finish(0);
}

}  // namespace

int main(void) {
  initialise_monitor_handles();
  RegisterDebugLogCallback(TflmLog);
  static char cmdline[256];
  struct {
    char* buf;
    int len;
  } block = {cmdline, sizeof(cmdline) - 1};
  if (tinyloc_semihost(0x15, &block) != 0) {  // SYS_GET_CMDLINE
    puts("probe no_cmdline");
    return 5;
  }
  cmdline[block.len] = '\0';
  char* argv[8] = {};
  int argc = 0;
  for (char* tok = strtok(cmdline, " "); tok && argc < 8; tok = strtok(nullptr, " ")) argv[argc++] = tok;
  if (argc < 3) {
    puts("probe usage: probe arena|run|record N [IN OUT]");
    return 5;
  }
  const size_t arena = strtoul(argv[2], nullptr, 10);
  if (arena == 0 || arena > kMaxArena) {
    printf("probe bad_arena max=%u\n", static_cast<unsigned>(kMaxArena));
    return 5;
  }
  const tflite::Model* model = tflite::GetModel(g_model);
  if (AddProbeOps(g_resolver) != kProbeNumOps) {
    puts("probe ops_failed");
    return 5;
  }
  if (strcmp(argv[1], "arena") == 0) return Run(model, arena, nullptr, nullptr);
  if (strcmp(argv[1], "run") == 0 && argc >= 5) return Run(model, arena, argv[3], argv[4]);
  if (strcmp(argv[1], "record") == 0) return Record(model, arena);
  puts("probe usage: probe arena|run|record N [IN OUT]");
  return 5;
}
