/* Cortex-M4F startup for QEMU mps2-an386, shared by every firmware keras_tinyloc.deploy.m4 links (the measurement
   probe and the sketches): vector table, FPU on, .data/.bss, the stack region painted with kStackPaint (so the
   stack high-water mark can be read back), C++ constructors, main, exit. A real board uses its vendor startup.

   Faults: the handlers print "fault <ipsr> pc=<stacked pc>" over semihosting when semihosting is on
   (TINYLOC_SEMIHOSTING), then stop QEMU with exit status 3, so a crash (e.g. TFLM with a too-small arena) is a
   clean, recognisable failure of that one emulator run. */
#include <stdint.h>

extern uint32_t _stack_top, _stack_limit, _data_load, _data_start, _data_end, _bss_start, _bss_end;
extern int main(void);
extern void __libc_init_array(void);
void Reset_Handler(void);

#define kStackPaint 0xC5C5C5C5u

/* -nostartfiles drops crti/crtn; __libc_init_array still calls these (weak: crti/crtn win when linked). */
__attribute__((weak)) void _init(void) {}
__attribute__((weak)) void _fini(void) {}

/* Semihosting call (ARM "bkpt 0xAB"): QEMU -semihosting answers it. */
int tinyloc_semihost(int op, void* arg) {
  register int r0 __asm__("r0") = op;
  register void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* SYS_EXIT_EXTENDED (0x20): ADP_Stopped_ApplicationExit (0x20026) with an exit status. Never returns. */
void tinyloc_semihost_exit(int status) {
  uint32_t block[2] = {0x20026u, (uint32_t)status};
  tinyloc_semihost(0x20, block);
  for (;;) {
  }
}

static void PutHex(char* p, uint32_t v) {
  for (int i = 7; i >= 0; --i, v >>= 4) p[i] = "0123456789abcdef"[v & 15];
}

__attribute__((used)) static void FaultReport(uint32_t* frame) {
  uint32_t ipsr;
  __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
#if defined(TINYLOC_SEMIHOSTING)
  char msg[] = "fault xxxxxxxx pc=xxxxxxxx\n";
  PutHex(msg + 6, ipsr);
  PutHex(msg + 18, frame[6]);
  tinyloc_semihost(0x04, msg); /* SYS_WRITE0 */
#else
  (void)frame;
  (void)PutHex;
#endif
  tinyloc_semihost_exit(3);
}

__attribute__((naked)) static void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "b FaultReport\n");
}

static void Default_Tick(void) {}
void SysTick_Handler(void) __attribute__((weak, alias("Default_Tick")));  /* board_uart.c counts milliseconds */

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_stack_top), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler};

void Reset_Handler(void) {
  volatile uint32_t* cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20; /* CP10/CP11 full access: the FPU */
  __asm__ volatile("dsb\n isb");
  uint32_t* src = &_data_load;
  for (uint32_t* dst = &_data_start; dst < &_data_end;) *dst++ = *src++;
  for (uint32_t* dst = &_bss_start; dst < &_bss_end;) *dst++ = 0;
  /* Paint the stack region below this function's frame (64 bytes of headroom). */
  uint32_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t* p = &_stack_limit; p < (uint32_t*)(sp - 64); ++p) *p = kStackPaint;
  __libc_init_array();
  tinyloc_semihost_exit(main());
}
