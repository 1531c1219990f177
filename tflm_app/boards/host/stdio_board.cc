// The board functions of stm32/main.cc and of the Arduino shim on the host: the "UART" is stdin/stdout (a pipe or
// a pseudo-terminal; keras_tinyloc.deploy.m4 runs host builds behind a pty for replay), millis() from the monotonic
// clock. Reading stops the program cleanly at end of input (after flushing), so a scripted session terminates.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

extern "C" int tinyloc_board_init(void) { return 0; }

extern "C" int tinyloc_uart_read_byte(void) {
  unsigned char c;
  const ssize_t n = ::read(0, &c, 1);
  if (n == 1) return c;
  if (n == 0) {  // end of input: nothing more will come
    fflush(stdout);
    exit(0);
  }
  return -1;
}

extern "C" void tinyloc_uart_write(const char* s, unsigned n) {
  fwrite(s, 1, n, stdout);
  fflush(stdout);
}

extern "C" unsigned long tinyloc_board_millis(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long>(ts.tv_sec) * 1000ul + static_cast<unsigned long>(ts.tv_nsec / 1000000);
}
