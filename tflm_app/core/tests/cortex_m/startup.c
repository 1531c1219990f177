/* Minimal Cortex-M4 startup for QEMU mps2-an386: vector table, FPU on, .data/.bss, semihosting I/O, main, exit.
   Used only by tests/test_cortex_m.py (a real board uses its vendor startup code). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _stack_top, _data_load, _data_start, _data_end, _bss_start, _bss_end;
extern int main(void);
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
/* -nostartfiles drops crti/crtn; __libc_init_array still calls these. */
void _init(void) {}
void _fini(void) {}
static void Fault_Handler(void) { exit(3); }

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_stack_top), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler};

void Reset_Handler(void) {
  volatile uint32_t* cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20; /* CP10/CP11 full access: the FPU */
  __asm volatile("dsb\n isb");
  uint32_t* src = &_data_load;
  for (uint32_t* dst = &_data_start; dst < &_data_end;) *dst++ = *src++;
  for (uint32_t* dst = &_bss_start; dst < &_bss_end;) *dst++ = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}
