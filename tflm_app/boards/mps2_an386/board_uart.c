/* The board functions of stm32/main.cc and of the Arduino shim (tflm_app/arduino/shim) on QEMU mps2-an386:
   UART0 (CMSDK APB UART at 0x40004000, QEMU's serial0: `-serial pty` or `-serial stdio`), millis() from SysTick,
   and a _sbrk that records the heap's high-water mark (tinyloc_heap_high, read back by keras_tinyloc.deploy.m4).

   SysTick: QEMU's mps2-an386 runs the core at 25 MHz (SYSCLK); SysTick counts processor clocks, one wrap per ms.
   QEMU models no cycles, so this is wall-clock-ish emulated time; the sketches use it only for the boot wait. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t*)(UART0_BASE + 0x00))
#define UART_STATE (*(volatile uint32_t*)(UART0_BASE + 0x04))
#define UART_CTRL (*(volatile uint32_t*)(UART0_BASE + 0x08))
#define UART_BAUDDIV (*(volatile uint32_t*)(UART0_BASE + 0x10))
#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYSCLK_HZ 25000000u

static volatile uint32_t g_ms;
void SysTick_Handler(void) { ++g_ms; }

int tinyloc_board_init(void) {
  UART_BAUDDIV = SYSCLK_HZ / 115200u;
  UART_CTRL = 3u; /* TX and RX enabled, no interrupts */
  SYST_RVR = SYSCLK_HZ / 1000u - 1u;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* processor clock, interrupt, enable */
  return 0;
}

int tinyloc_uart_read_byte(void) { return (UART_STATE & STATE_RX_FULL) ? (int)(UART_DATA & 0xFFu) : -1; }

void tinyloc_uart_write(const char* s, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = (uint8_t)s[i];
  }
}

unsigned long tinyloc_board_millis(void) { return g_ms; }

/* Heap: from `end` up to the stack region; the high-water mark is kept for the RAM figure. */
extern char end, _stack_limit;
static char* g_brk = &end;
char* tinyloc_heap_high = &end;
void* _sbrk(ptrdiff_t incr) {
  char* prev = g_brk;
  if (g_brk + incr > &_stack_limit || g_brk + incr < &end) {
    errno = ENOMEM;
    return (void*)-1;
  }
  g_brk += incr;
  if (g_brk > tinyloc_heap_high) tinyloc_heap_high = g_brk;
  return prev;
}
