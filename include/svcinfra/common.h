/*
 * svcinfra/common.h - macros shared by every public header.
 *
 * SVC_EXPORT marks the library's public symbols; everything else is hidden
 * (the library is built with -fvisibility=hidden and a versioned linker map).
 * SVC_NODISCARD and SVC_NONNULL let the compiler catch a dropped status or a
 * NULL passed where the contract forbids it.
 *
 * Ownership, said once for the whole library:
 *   - a pointer returned through an `out` parameter of a *_new() call is
 *     owned by the caller and released with the matching *_free();
 *   - a `const char *` returned by a getter is borrowed: valid until the
 *     object it came from is freed or changed, never to be freed by the caller;
 *   - a `char *` documented as "new" is released with svc_free();
 *   - strings passed in are copied unless the function says otherwise.
 * Every *_free(NULL) is a no-op.
 */
#ifndef SVCINFRA_COMMON_H
#define SVCINFRA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  define SVC_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#  define SVC_EXPORT __attribute__((visibility("default")))
#else
#  define SVC_EXPORT
#endif

/* SVC_NONNULL tells callers' compilers which arguments must not be NULL, so
 * they warn where a NULL is passed. The library itself is compiled with
 * SVC__BUILDING_LIBRARY, where the attribute is empty: with it, GCC may
 * delete a function's own NULL check. The one rule: where a header says
 * what a function does with NULL (SVC_EINVAL, "" or a no-op), that holds in
 * every build; any other NULL where SVC_NONNULL names a parameter is a
 * caller error, which the caller's compiler reports where it can see it. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(SVC__BUILDING_LIBRARY)
#  define SVC_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#  define SVC_NONNULL(...)
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define SVC_NODISCARD __attribute__((warn_unused_result))
#  define SVC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#  define SVC_DEPRECATED __attribute__((deprecated))
#else
#  define SVC_NODISCARD
#  define SVC_PRINTF(fmt, args)
#  define SVC_DEPRECATED
#endif

#ifdef __cplusplus
#  define SVC_BEGIN_DECLS extern "C" {
#  define SVC_END_DECLS }
#else
#  define SVC_BEGIN_DECLS
#  define SVC_END_DECLS
#endif

#endif /* SVCINFRA_COMMON_H */
