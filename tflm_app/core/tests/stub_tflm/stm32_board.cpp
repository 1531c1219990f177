// TEST DOUBLE (see README.md): the three board functions of stm32/main.cc on stdin/stdout; exits at end of input.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern "C" int tinyloc_board_init(void) { return 0; }
extern "C" int tinyloc_uart_read_byte(void) {
  char c;
  if (::read(0, &c, 1) == 1) return static_cast<unsigned char>(c);
  fflush(stdout);
  exit(0);
}
extern "C" void tinyloc_uart_write(const char* s, unsigned n) { fwrite(s, 1, n, stdout); }
