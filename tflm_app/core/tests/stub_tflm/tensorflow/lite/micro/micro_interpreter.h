// TEST DOUBLE (see tflm_app/core/tests/stub_tflm/README.md)
#include "stub_tflm.h"
