// libFuzzer's entry point for a program with its own main (libclang_rt.fuzzer_no_main), linked
// by fuzz.sh only.
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
