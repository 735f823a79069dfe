// Declarations only (include/CGmemFuzz.h): libFuzzer defines them.
#include "CGmemFuzz.h"
