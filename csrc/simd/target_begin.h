/* target_begin.h: compile every function up to target_end.h for FNN_TARGET.
 * A per-function target (not a global -m flag), so the extension still loads
 * on any x86-64 and the dispatcher decides what runs. */
#define FNN_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define FNN_TARGET_BEGIN(t) \
    FNN_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
#else
#define FNN_TARGET_BEGIN(t) FNN_PRAGMA(GCC push_options) FNN_PRAGMA(GCC target(t))
#endif
FNN_TARGET_BEGIN(FNN_TARGET)
