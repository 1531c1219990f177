// Arduino shim: the part of the Arduino core API that tflm_app's sketches use (Serial, millis), so that a sketch
// folder exported by keras_tinyloc compiles UNMODIFIED, as the Arduino builder compiles it (the .ino as C++ with
// Arduino.h included first), against real TFLM for the host and for Cortex-M4 under QEMU. The byte I/O and the
// clock are the board functions of tflm_app/boards/ (the same three that stm32/main.cc uses, plus millis), so the
// shim runs wherever those exist. arduino_main.cc supplies main(): setup() once, then loop() forever.
// Not a port of the Arduino core: only what the sketches call.
#ifndef TINYLOC_SHIM_ARDUINO_H_
#define TINYLOC_SHIM_ARDUINO_H_
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern "C" {
int tinyloc_board_init(void);
int tinyloc_uart_read_byte(void);
void tinyloc_uart_write(const char* s, unsigned n);
unsigned long tinyloc_board_millis(void);
}

inline unsigned long millis() { return tinyloc_board_millis(); }

// Serial: one byte of look-ahead over tinyloc_uart_read_byte (which returns -1 when nothing is pending).
class ShimSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  int available() {
    if (pending_ < 0) pending_ = tinyloc_uart_read_byte();
    return pending_ >= 0 ? 1 : 0;
  }
  int read() {
    const int c = available() ? pending_ : -1;
    pending_ = -1;
    return c;
  }
  size_t print(const char* s) { return Write(s, strlen(s)); }
  size_t print(unsigned long v) { return PrintUnsigned(v); }
  size_t print(long v) { return v < 0 ? Write("-", 1) + PrintUnsigned(0ul - static_cast<unsigned long>(v)) : PrintUnsigned(static_cast<unsigned long>(v)); }
  size_t print(int v) { return print(static_cast<long>(v)); }
  size_t print(unsigned v) { return PrintUnsigned(v); }
  size_t println() { return Write("\r\n", 2); }
  template <typename T>
  size_t println(T v) {
    return print(v) + println();
  }

 private:
  size_t Write(const char* s, size_t n) {
    tinyloc_uart_write(s, static_cast<unsigned>(n));
    return n;
  }
  size_t PrintUnsigned(unsigned long v) {
    char buf[24];
    int i = sizeof(buf);
    do {
      buf[--i] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    return Write(buf + i, sizeof(buf) - i);
  }
  int pending_ = -1;
};
extern ShimSerial Serial;

#endif  // TINYLOC_SHIM_ARDUINO_H_
