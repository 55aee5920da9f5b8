/* A stand-in for the NVIDIA driver's libcuda.so.1 in image tests: the few
 * driver API calls the start-up check makes (ARR_COC/Training/startup_check.py),
 * answered from environment variables:
 *   STUB_DRIVER_CUDA  cuDriverGetVersion's value (13000 = a CUDA 13.0 driver)
 *   STUB_GPUS         visible GPUs (0: cuInit fails with CUDA_ERROR_NO_DEVICE)
 *   STUB_CAPABILITY   compute capability as major * 10 + minor (90 = 9.0)
 * Only getenv and atoi from libc, so it loads with the image's older glibc. */
#include <stdlib.h>

typedef int CUresult;
enum { CUDA_SUCCESS = 0, CUDA_ERROR_NO_DEVICE = 100 };
enum { CAPABILITY_MAJOR = 75, CAPABILITY_MINOR = 76 };

static int env_int(const char *name, int fallback) {
  const char *value = getenv(name);
  return value ? atoi(value) : fallback;
}

CUresult cuDriverGetVersion(int *version) {
  *version = env_int("STUB_DRIVER_CUDA", 13000);
  return CUDA_SUCCESS;
}

CUresult cuInit(unsigned int flags) {
  (void)flags;
  return env_int("STUB_GPUS", 1) > 0 ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}

CUresult cuDeviceGetCount(int *count) {
  *count = env_int("STUB_GPUS", 1);
  return CUDA_SUCCESS;
}

CUresult cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int length, int device) {
  static const char stub[] = "NVIDIA Stub GPU";
  int i = 0;
  (void)device;
  for (; stub[i] && i < length - 1; i++) name[i] = stub[i];
  name[i] = 0;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  int capability = env_int("STUB_CAPABILITY", 90);
  (void)device;
  *value = attribute == CAPABILITY_MAJOR ? capability / 10 : attribute == CAPABILITY_MINOR ? capability % 10 : 0;
  return CUDA_SUCCESS;
}
