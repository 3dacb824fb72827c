/*
 * svcinfra/crypto.h - small cryptographic helpers: secure random bytes,
 * SHA-256 (one-shot and incremental), HMAC-SHA-256, constant-time comparison,
 * and strict hex / base64 / base64url codecs.
 *
 * Built on OpenSSL 3 (SHA-256, HMAC) and libsodium (random bytes, constant-
 * time comparison, incremental SHA-256 state). libsodium is initialised once,
 * on first use, in a thread-safe way.
 *
 * Thread safety: every function here is safe to call from any thread at any
 * time. An svc_sha256_ctx is plain caller-owned state: use one context from
 * one thread at a time.
 *
 * Encoders share one shape:
 *     size_t svc_X_encode(in, n, out, outlen)
 * they write a NUL-terminated string and return the number of characters
 * written (not counting the NUL), or 0 when `out` is NULL or `outlen` is too
 * small (nothing useful is written then; `out[0]` is set to NUL when
 * outlen >= 1). Encoding zero bytes returns 0 and writes "". Size `out` with
 * the SVC_*_ENCODED_LEN() macros, which include the NUL.
 *
 * Decoders share one shape:
 *     svc_status svc_X_decode(in, inlen, out, outcap, outlen)
 * they are strict: any character outside the alphabet (whitespace included),
 * a bad length, misplaced padding or non-zero unused bits give SVC_EPARSE;
 * an output buffer smaller than the decoded size gives SVC_ETOOBIG and never
 * writes past `outcap`; NULL `in` (with inlen > 0), `out` (with outcap > 0)
 * or `outlen` give SVC_EINVAL. On success *outlen is the decoded size.
 */
#ifndef SVCINFRA_CRYPTO_H
#define SVCINFRA_CRYPTO_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

#define SVC_SHA256_LEN 32
#define SVC_HMAC_SHA256_LEN 32

/* Buffer sizes (in chars, NUL included) for encoding `n` bytes. */
#define SVC_HEX_ENCODED_LEN(n) (2 * (size_t)(n) + 1)
#define SVC_BASE64_ENCODED_LEN(n) (4 * (((size_t)(n) + 2) / 3) + 1)
#define SVC_BASE64URL_ENCODED_LEN(n) SVC_BASE64_ENCODED_LEN(n)
/* An upper bound of the bytes decoded from `n` base64 characters. */
#define SVC_BASE64_DECODED_MAXLEN(n) ((((size_t)(n) + 3) / 4) * 3)

/* ---- random ------------------------------------------------------------- */

/* Fills `buf` with `n` bytes from the operating system's CSPRNG (libsodium
 * randombytes_buf). n == 0 is a no-op (buf may then be NULL).
 * Returns SVC_OK; SVC_EINVAL for a NULL buf with n > 0; SVC_ECRYPTO when the
 * random source could not be initialised. */
SVC_EXPORT SVC_NODISCARD svc_status svc_random_bytes(void *buf, size_t n);

/* Writes 2*nbytes_random lower-case hex characters of fresh randomness and a
 * NUL to `out`, which must hold 2*nbytes_random + 1 chars (convenient for
 * request ids and tokens). Returns SVC_OK, SVC_EINVAL for a NULL out,
 * SVC_ERANGE when 2*nbytes_random + 1 overflows size_t, SVC_ECRYPTO as
 * svc_random_bytes(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_random_hex(char *out, size_t nbytes_random);

/* ---- SHA-256 ------------------------------------------------------------ */

/* One-shot SHA-256 of `n` bytes at `data` (data may be NULL when n == 0) into
 * `out`. Returns SVC_OK, SVC_EINVAL for NULL arguments, SVC_ECRYPTO when
 * OpenSSL fails. */
SVC_EXPORT SVC_NODISCARD svc_status svc_sha256(const void *data, size_t n,
                                               uint8_t out[SVC_SHA256_LEN]);

/* Incremental SHA-256 state. Its size is fixed and public so it can live on
 * the stack or inside another struct; its contents are private. It holds no
 * heap memory, so an abandoned context needs no cleanup. */
typedef struct svc_sha256_ctx {
    uint64_t opaque[16];
} svc_sha256_ctx;

/* Starts a new hash in `ctx`. Returns SVC_OK or SVC_EINVAL for NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_sha256_init(svc_sha256_ctx *ctx);
/* Feeds `n` bytes (data may be NULL when n == 0). Returns SVC_OK or
 * SVC_EINVAL for NULL arguments. */
SVC_EXPORT SVC_NODISCARD svc_status svc_sha256_update(svc_sha256_ctx *ctx, const void *data,
                                                      size_t n);
/* Writes the digest to `out` and wipes `ctx` (call svc_sha256_init() again
 * to reuse it). Returns SVC_OK or SVC_EINVAL for NULL arguments. */
SVC_EXPORT SVC_NODISCARD svc_status svc_sha256_final(svc_sha256_ctx *ctx,
                                                     uint8_t out[SVC_SHA256_LEN]);

/* ---- HMAC --------------------------------------------------------------- */

/* HMAC-SHA-256 (RFC 2104) of `n` bytes at `data` with the `keylen`-byte key
 * into `out`. Keys of any length are accepted (longer than 64 bytes are
 * hashed first, as the RFC says). key/data may be NULL when their length is
 * 0. Returns SVC_OK, SVC_EINVAL for NULL arguments, SVC_ECRYPTO when OpenSSL
 * fails. */
SVC_EXPORT SVC_NODISCARD svc_status svc_hmac_sha256(const void *key, size_t keylen,
                                                    const void *data, size_t n,
                                                    uint8_t out[SVC_HMAC_SHA256_LEN]);

/* Compares `n` bytes of `a` and `b` in time that depends only on `n` (for
 * MACs, tokens, password hashes). Returns 1 when equal, 0 otherwise; n == 0
 * compares equal; a NULL pointer with n > 0 compares unequal. */
SVC_EXPORT int svc_ct_equal(const void *a, const void *b, size_t n);

/* ---- hex ---------------------------------------------------------------- */

/* Lower-case hex of `n` bytes; see "Encoders" above. */
SVC_EXPORT size_t svc_hex_encode(const void *in, size_t n, char *out, size_t outlen);
/* Decodes `inlen` hex characters (either case; inlen must be even); see
 * "Decoders" above. */
SVC_EXPORT SVC_NODISCARD svc_status svc_hex_decode(const char *in, size_t inlen, void *out,
                                                   size_t outcap, size_t *outlen);

/* ---- base64 (RFC 4648 section 4) ----------------------------------------- */

/* Standard alphabet (A-Z a-z 0-9 + /) with '=' padding; see "Encoders". */
SVC_EXPORT size_t svc_base64_encode(const void *in, size_t n, char *out, size_t outlen);
/* Standard alphabet; padding is required (inlen a multiple of 4); see
 * "Decoders" above. */
SVC_EXPORT SVC_NODISCARD svc_status svc_base64_decode(const char *in, size_t inlen, void *out,
                                                      size_t outcap, size_t *outlen);

/* ---- base64url (RFC 4648 section 5) -------------------------------------- */

/* URL- and file-safe alphabet (A-Z a-z 0-9 - _) without padding, as used in
 * JWTs and URLs; see "Encoders". */
SVC_EXPORT size_t svc_base64url_encode(const void *in, size_t n, char *out, size_t outlen);
/* URL-safe alphabet; accepts the input with or without '=' padding (but
 * padding, when present, must be complete); see "Decoders" above. */
SVC_EXPORT SVC_NODISCARD svc_status svc_base64url_decode(const char *in, size_t inlen,
                                                         void *out, size_t outcap,
                                                         size_t *outlen);

SVC_END_DECLS

#endif /* SVCINFRA_CRYPTO_H */
