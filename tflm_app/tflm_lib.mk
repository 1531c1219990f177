# tflm_app/tflm_lib.mk: the TensorFlow Lite Micro library from an offline source kit, for the host (g++, reference
# kernels) or Cortex-M4F (arm-none-eabi-g++, hard float, CMSIS-NN kernels). Used by tflm_app/Makefile (`make lib`),
# which also takes its include paths and flags from here. keras_tinyloc.deploy.tflm_kit caches one library per
# content hash of THIS file + the kit files the target's manifest lists + OPT + TFLM_DEFS + the compiler's version,
# so edits to the firmware rules in tflm_app/Makefile do not invalidate cached libraries.
#
#   make -f tflm_lib.mk lib TARGET=m4|host BUILD=DIR [TFLM_DIR=KIT] [OPT=-Os] [TFLM_DEFS=-DTF_LITE_STRIP_ERROR_STRINGS]
#
# The flags are those of TFLM's own Makefile for these targets (as the kit's Makefile), OPT for every file.

LIB_MK_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
TFLM_DIR ?= $(abspath $(LIB_MK_DIR)/../../shared/third_party/tflite-micro-kit)
TARGET ?= m4
OPT ?= -Os
TFLM_DEFS ?=
BUILD ?= build/$(TARGET)

ifeq ($(TARGET),m4)
  CROSS ?= arm-none-eabi-
  CPU := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
  TFLM_TARGET_FLAGS := $(CPU) -DCMSIS_NN -mlittle-endian -fomit-frame-pointer -DTF_LITE_MCU_DEBUG_LOG -DCPU_M4=1 \
    -funsigned-char '-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE="ARMCM4.h"' -DARMCM4 -DARM_NN_ENABLE_F16=0 \
    -DARM_NN_ENABLE_F32=0
  TFLM_TARGET_INC := -I$(TFLM_DIR)/third_party/cmsis/Cortex_DFP/Device/ARMCM4/Include \
    -I$(TFLM_DIR)/third_party/cmsis/CMSIS/Core/Include -I$(TFLM_DIR)/third_party/cmsis \
    -I$(TFLM_DIR)/third_party/cmsis_nn -I$(TFLM_DIR)/third_party/cmsis_nn/Include
else ifeq ($(TARGET),host)
  CROSS ?=
  CPU :=
  TFLM_TARGET_FLAGS := -DTF_LITE_USE_CTIME
  TFLM_TARGET_INC :=
else
  $(error TARGET=$(TARGET): use TARGET=m4 or TARGET=host)
endif
CXX := $(CROSS)g++
CC := $(CROSS)gcc
AR := $(CROSS)ar

TFLM_COMMON := -fno-unwind-tables -fno-asynchronous-unwind-tables -ffunction-sections -fdata-sections \
  -fmessage-length=0 -DTF_LITE_STATIC_MEMORY -DTF_LITE_DISABLE_X86_NEON -DKERNELS_OPTIMIZED_FOR_SPEED $(OPT) \
  $(TFLM_TARGET_FLAGS) $(TFLM_DEFS)
TFLM_INC := -I$(TFLM_DIR) -I$(TFLM_DIR)/third_party/gemmlowp -I$(TFLM_DIR)/third_party/flatbuffers/include \
  -I$(TFLM_DIR)/third_party/kissfft -I$(TFLM_DIR)/third_party/ruy $(TFLM_TARGET_INC)
MANIFEST := $(TFLM_DIR)/manifests/$(TARGET)-files.txt
TFLM_SRCS = $(shell grep -E '\.(cc|c)$$' $(MANIFEST))
TFLM_OBJS = $(patsubst %,$(BUILD)/obj/%.o,$(TFLM_SRCS))
TFLM_LIB := $(BUILD)/libtensorflow-microlite.a
CXX_LIB_FLAGS := -std=c++17 -fno-rtti -fno-exceptions -fno-threadsafe-statics

.PHONY: lib check-kit

lib: check-kit $(TFLM_LIB)

check-kit:
	@test -f "$(MANIFEST)" || { echo "error: $(MANIFEST) not found: TFLM_DIR=$(TFLM_DIR) is not a TFLM kit (see tflm_app/README.md, 'TFLM kit')" >&2; exit 2; }

$(BUILD)/obj/%.cc.o: $(TFLM_DIR)/%.cc
	@mkdir -p $(dir $@)
	@echo "  CXX $*.cc"
	@$(CXX) $(CXX_LIB_FLAGS) $(TFLM_COMMON) $(TFLM_INC) -c $< -o $@

$(BUILD)/obj/%.c.o: $(TFLM_DIR)/%.c
	@mkdir -p $(dir $@)
	@echo "  CC  $*.c"
	@$(CC) -std=c17 $(TFLM_COMMON) $(TFLM_INC) -c $< -o $@

$(TFLM_LIB): $(TFLM_OBJS)
	@rm -f $@
	@$(AR) rcs $@ $(TFLM_OBJS)
	@echo "built $@ ($(words $(TFLM_OBJS)) objects)"
