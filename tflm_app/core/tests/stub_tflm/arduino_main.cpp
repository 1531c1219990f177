// TEST DOUBLE (see README.md): what the Arduino core does around a sketch, until stdin ends.
#include "Arduino.h"
StubSerial Serial;
void setup();
void loop();
int main() {
  setup();
  // until the input has ended (a sketch that failed setup() never reads it: stop after a while)
  for (int i = 0, idle = 0; idle < 3 && i < 2000; ++i) {
    loop();
    if (Serial.eof()) ++idle;
  }
  return 0;
}
