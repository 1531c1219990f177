// Arduino shim (keras_tinyloc's test/emulation builds, not an Arduino library): the Arduino TFLM libraries'
// umbrella header. The sketch includes <TensorFlowLite.h> and then the TFLM headers it uses; in the shim builds
// those come from the real TFLM source kit on the include path, so this header has nothing to add.
#ifndef TINYLOC_SHIM_TENSORFLOWLITE_H_
#define TINYLOC_SHIM_TENSORFLOWLITE_H_
#endif  // TINYLOC_SHIM_TENSORFLOWLITE_H_
