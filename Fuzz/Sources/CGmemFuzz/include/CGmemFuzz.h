#ifndef CGMEMFUZZ_H
#define CGMEMFUZZ_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for programs that bring their own main
/// (https://llvm.org/docs/LibFuzzer.html#using-libfuzzer-as-a-library).
/// It exists only in binaries linked with -sanitize=fuzzer: gmem-fuzz calls it
/// only when built with -DGMEM_LIBFUZZER (Fuzz/run.sh).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
