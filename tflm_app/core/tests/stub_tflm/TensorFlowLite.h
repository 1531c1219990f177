// TEST DOUBLE (see README.md): the Arduino TFLM library header
#include "stub_tflm.h"
