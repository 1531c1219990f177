// TEST DOUBLE (see README.md): the parts of the Arduino API the sketch uses, on stdin/stdout.
#ifndef STUB_ARDUINO_H_
#define STUB_ARDUINO_H_
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

inline unsigned long millis() {
  static unsigned long t = 0;
  return t += 7;
}

class StubSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  int available() {
    if (have_ || eof_) return have_ ? 1 : 0;
    const ssize_t n = ::read(0, &c_, 1);
    if (n == 1) have_ = true; else eof_ = true;
    return have_ ? 1 : 0;
  }
  int read() {
    if (!available()) return -1;
    have_ = false;
    return static_cast<unsigned char>(c_);
  }
  void print(const char* s) { fputs(s, stdout); }
  void print(unsigned long v) { printf("%lu", v); }
  void println(const char* s) { printf("%s\r\n", s); fflush(stdout); }
  void println(unsigned long v) { printf("%lu\r\n", v); fflush(stdout); }
  bool eof() const { return eof_; }
 private:
  char c_ = 0;
  bool have_ = false, eof_ = false;
};
extern StubSerial Serial;
#endif  // STUB_ARDUINO_H_
