/* insn_count: a QEMU TCG plugin (plugin API v1, QEMU 7.2) that counts the guest instructions executed between two
 * marker addresses, exactly. Used by keras_tinyloc.deploy.m4 to measure instructions per TFLM Invoke() on the
 * emulated Cortex-M4 (QEMU models no cycles, so instructions are what can be counted exactly).
 *
 *   qemu-system-arm ... -plugin /path/libinsn_count.so,begin=0x1234,end=0x1240
 *
 * Method: every translated guest instruction gets an inline "add 1" to one 64-bit counter (inline ops run inside
 * the translated code, before the instruction; no helper call), so the counter is the exact number of instructions
 * started. The instructions at `begin` and `end` (the first instruction of two marker functions in the firmware)
 * also get a callback that reads the counter; each begin/end pair yields one count = instructions executed from the
 * begin marker's first instruction up to, not including, the end marker's first instruction. The firmware measures
 * an empty begin/end pair first, which the caller subtracts. Counts are printed at exit, one line
 * "insn_count <n>" per pair, to QEMU's log (stderr).
 *
 * Why the declarations below are written here: Debian's QEMU 7.2 ships no qemu-plugin.h, and that header is
 * GPL-2.0-or-later. This file declares only the few entry points of the stable plugin API v1 it uses, from their
 * documented signatures; the plugin is a separate program that QEMU loads, not part of keras_tinyloc.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- QEMU plugin API v1 (QEMU 7.2): the declarations this plugin uses ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
  const char *target_name;
  struct { int min; int cur; } version;
  bool system_emulation;
  union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);
/* ---- end of the API declarations ---- */

EXPORT int qemu_plugin_version = 1;

#define MAX_PAIRS 4096
static uint64_t g_executed;      /* instructions started so far (inline counter) */
static uint64_t g_begin_addr = UINT64_MAX, g_end_addr = UINT64_MAX;
static uint64_t g_started;       /* counter value at the last begin marker */
static bool g_open;
static uint64_t g_counts[MAX_PAIRS];
static unsigned g_n, g_dropped;

static void on_begin(unsigned int vcpu, void *udata) {
  (void)vcpu; (void)udata;
  g_started = g_executed;
  g_open = true;
}

static void on_end(unsigned int vcpu, void *udata) {
  (void)vcpu; (void)udata;
  if (!g_open) return;
  g_open = false;
  if (g_n < MAX_PAIRS) g_counts[g_n++] = g_executed - g_started;
  else ++g_dropped;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    const uint64_t pc = qemu_plugin_insn_vaddr(insn);
    /* the marker callbacks first, so that they read the counter before this instruction's own increment */
    if (pc == g_begin_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (pc == g_end_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &g_executed, 1);
  }
}

static void on_atexit(qemu_plugin_id_t id, void *udata) {
  (void)id; (void)udata;
  char line[64];
  for (unsigned i = 0; i < g_n; ++i) {
    snprintf(line, sizeof line, "insn_count %" PRIu64 "\n", g_counts[i]);
    qemu_plugin_outs(line);
  }
  snprintf(line, sizeof line, "insn_total %" PRIu64 " dropped %u\n", g_executed, g_dropped);
  qemu_plugin_outs(line);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    char *eq = strchr(argv[i], '=');
    if (!eq) return 1;
    const uint64_t v = strtoull(eq + 1, NULL, 0);
    if (strncmp(argv[i], "begin=", 6) == 0) g_begin_addr = v & ~(uint64_t)1; /* drop the Thumb bit */
    else if (strncmp(argv[i], "end=", 4) == 0) g_end_addr = v & ~(uint64_t)1;
    else return 1;
  }
  if (g_begin_addr == UINT64_MAX || g_end_addr == UINT64_MAX) return 1;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
  return 0;
}
