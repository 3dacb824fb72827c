/* crypto.c - random bytes, SHA-256, HMAC-SHA-256, constant-time compare and
 * the strict hex/base64 codecs of svcinfra/crypto.h.
 *
 * SHA-256 uses OpenSSL's low-level SHA256_* functions: they run the CPU's
 * SHA extensions or vector code where it has them (libsodium's portable
 * SHA-256 is several times slower, and idempotency keys, fingerprints and
 * webhook signatures hash on every request), and their fixed-size state
 * lives in the caller's svc_sha256_ctx with no heap and no cleanup. HMAC is
 * built on the same primitive (RFC 2104) rather than OpenSSL's HMAC(),
 * whose algorithm fetch per call costs more than the hashing. Random bytes
 * and wiping come from libsodium, initialised once with pthread_once. */
/* SHA256_Init & co. are deprecated in OpenSSL 3 in favour of EVP, whose
 * context needs the heap; the low-level API stays available and fast. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/sha.h>
#include <sodium.h>

#include "svcinfra/crypto.h"
#include "../internal.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(svc_sha256_ctx),
               "svc_sha256_ctx too small for the SHA-256 state");
_Static_assert(_Alignof(SHA256_CTX) <= _Alignof(svc_sha256_ctx),
               "svc_sha256_ctx under-aligned for the SHA-256 state");

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ok;

static void sodium_init_once(void) { sodium_ok = sodium_init() >= 0; }

static bool sodium_ready(void)
{
    pthread_once(&sodium_once, sodium_init_once);
    return sodium_ok;
}

/* ---- random ------------------------------------------------------------- */

svc_status svc_random_bytes(void *buf, size_t n)
{
    if (n == 0)
        return SVC_OK;
    if (!buf)
        return SVC_EINVAL;
    if (!sodium_ready())
        return SVC_ECRYPTO;
    randombytes_buf(buf, n);
    return SVC_OK;
}

/* The two hex digits of each byte value, so a byte costs one 2-byte copy. */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void hex_write(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hex_pairs + 2 * in[i], 2);
}

svc_status svc_random_hex(char *out, size_t nbytes_random)
{
    if (!out)
        return SVC_EINVAL;
    if (nbytes_random > (SIZE_MAX - 1) / 2)
        return SVC_ERANGE;
    uint8_t chunk[64];
    size_t done = 0;
    while (done < nbytes_random) {
        size_t k = nbytes_random - done;
        if (k > sizeof chunk)
            k = sizeof chunk;
        svc_status st = svc_random_bytes(chunk, k);
        if (st != SVC_OK) {
            out[0] = '\0';
            return st;
        }
        hex_write(chunk, k, out + 2 * done);
        done += k;
    }
    out[2 * nbytes_random] = '\0';
    sodium_memzero(chunk, sizeof chunk);
    return SVC_OK;
}

/* ---- ids: random hex through a per-thread buffer ------------------------------
 *
 *   tls.stream [ next key | used ......|.... fresh bytes .... ]
 *                32 bytes   ID_POOL bytes, refilled at once
 *
 * A per-thread ChaCha20 generator with fast key erasure (the construction
 * of the kernel's own CSPRNG and of arc4random): each refill runs ChaCha20
 * under the current key, keeps the first 32 output bytes as the next key
 * and hands out the rest, so a later look at the thread's memory cannot
 * recover ids already given out. The first key, and a fresh one every
 * ID_RESEED refills, come from the kernel (getrandom(2); libsodium when it
 * is unavailable). At 32 bytes of ids per request, one refill serves about
 * 128 requests without a system call.
 * A fork copies the state into the child; the generation bumped by the
 * atfork handler makes both sides take a new kernel key, so parent and
 * child never hand out the same id. Used bytes are wiped. */
#define ID_POOL 4096
#define ID_KEY crypto_stream_chacha20_KEYBYTES
#define ID_RESEED 64
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void bump_fork_gen(void) { atomic_fetch_add(&fork_gen, 1); }
static void install_atfork(void) { pthread_atfork(NULL, NULL, bump_fork_gen); }

static _Thread_local struct {
    uint8_t stream[ID_KEY + ID_POOL]; /* next key, then the pool */
    size_t pos;                       /* into the pool; ID_POOL: empty */
    unsigned gen;
    unsigned refills; /* since the last kernel key */
    bool init;
} ids;

/* Fills p[0..n) from the kernel's CSPRNG; libsodium when getrandom(2) is
 * unavailable. */
static svc_status kernel_random(uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            return svc_random_bytes(p + got, n - got);
    }
    return SVC_OK;
}

static svc_status refill_ids(unsigned gen)
{
    if (!sodium_ready())
        return SVC_ECRYPTO;
    uint8_t key[ID_KEY];
    if (!ids.init || ids.gen != gen || ids.refills >= ID_RESEED) {
        svc_status st = kernel_random(key, sizeof key);
        if (st != SVC_OK)
            return st;
        ids.refills = 0;
    } else {
        memcpy(key, ids.stream, sizeof key);
    }
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES]; /* one use per key */
    crypto_stream_chacha20(ids.stream, sizeof ids.stream, nonce, key);
    sodium_memzero(key, sizeof key);
    ids.pos = 0;
    ids.gen = gen;
    ids.refills++;
    ids.init = true;
    return SVC_OK;
}

svc_status svc__random_id_hex(char *out, size_t nbytes)
{
    if (!out || nbytes > SVC__ID_MAX_BYTES)
        return SVC_EINVAL;
    pthread_once(&atfork_once, install_atfork);
    unsigned gen = atomic_load(&fork_gen);
    if (!ids.init || ids.gen != gen || ID_POOL - ids.pos < nbytes) {
        svc_status st = refill_ids(gen);
        if (st != SVC_OK) {
            out[0] = '\0';
            return st;
        }
    }
    uint8_t *p = ids.stream + ID_KEY + ids.pos;
    hex_write(p, nbytes, out);
    out[2 * nbytes] = '\0';
    explicit_bzero(p, nbytes);
    ids.pos += nbytes;
    return SVC_OK;
}

/* ---- SHA-256 / HMAC ----------------------------------------------------- */

svc_status svc_sha256(const void *data, size_t n, uint8_t out[SVC_SHA256_LEN])
{
    if (!out || (!data && n > 0))
        return SVC_EINVAL;
    static const uint8_t empty[1];
    if (!SHA256(n ? data : empty, n, out))
        return SVC_ECRYPTO;
    return SVC_OK;
}

static inline SHA256_CTX *sha_state(svc_sha256_ctx *ctx) { return (SHA256_CTX *)(void *)ctx; }

svc_status svc_sha256_init(svc_sha256_ctx *ctx)
{
    if (!ctx)
        return SVC_EINVAL;
    return SHA256_Init(sha_state(ctx)) == 1 ? SVC_OK : SVC_ECRYPTO;
}

svc_status svc_sha256_update(svc_sha256_ctx *ctx, const void *data, size_t n)
{
    if (!ctx || (!data && n > 0))
        return SVC_EINVAL;
    if (n && SHA256_Update(sha_state(ctx), data, n) != 1)
        return SVC_ECRYPTO;
    return SVC_OK;
}

svc_status svc_sha256_final(svc_sha256_ctx *ctx, uint8_t out[SVC_SHA256_LEN])
{
    if (!ctx || !out)
        return SVC_EINVAL;
    int ok = SHA256_Final(out, sha_state(ctx));
    sodium_memzero(ctx, sizeof *ctx);
    return ok == 1 ? SVC_OK : SVC_ECRYPTO;
}

/*
 * HMAC-SHA256 (RFC 2104):  H((K0 ^ opad) || H((K0 ^ ipad) || data))
 * where K0 is the key padded with zeros to the 64-byte block, or H(key)
 * padded when the key is longer than a block.
 */
svc_status svc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                           uint8_t out[SVC_HMAC_SHA256_LEN])
{
    if (!out || (!key && keylen > 0) || (!data && n > 0))
        return SVC_EINVAL;
    if (keylen > INT32_MAX)
        return SVC_ERANGE;
    enum { BLOCK = 64 };
    uint8_t k0[BLOCK] = {0}, pad[BLOCK], inner[SVC_SHA256_LEN];
    if (keylen > BLOCK) {
        if (!SHA256(key, keylen, k0))
            return SVC_ECRYPTO;
    } else if (keylen) {
        memcpy(k0, key, keylen);
    }
    SHA256_CTX c;
    int ok = SHA256_Init(&c);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    ok = ok && SHA256_Update(&c, pad, BLOCK);
    ok = ok && (n == 0 || SHA256_Update(&c, data, n));
    ok = ok && SHA256_Final(inner, &c);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    ok = ok && SHA256_Init(&c);
    ok = ok && SHA256_Update(&c, pad, BLOCK);
    ok = ok && SHA256_Update(&c, inner, sizeof inner);
    ok = ok && SHA256_Final(out, &c);
    sodium_memzero(k0, sizeof k0);
    sodium_memzero(pad, sizeof pad);
    sodium_memzero(inner, sizeof inner);
    sodium_memzero(&c, sizeof c);
    return ok ? SVC_OK : SVC_ECRYPTO;
}

int svc_ct_equal(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return 1;
    if (!a || !b)
        return 0;
    /* sodium_memcmp needs no initialisation and runs in time set by n. */
    return sodium_memcmp(a, b, n) == 0;
}

/* ---- hex ---------------------------------------------------------------- */

/* Common prologue of the encoders: checks the room for `need` chars + NUL. */
static bool encode_room(char *out, size_t outlen, size_t need_chars, bool overflow)
{
    if (!out)
        return false;
    if (overflow || outlen < need_chars + 1) {
        if (outlen >= 1)
            out[0] = '\0';
        return false;
    }
    return true;
}

size_t svc_hex_encode(const void *in, size_t n, char *out, size_t outlen)
{
    bool overflow = n > (SIZE_MAX - 1) / 2;
    if ((!in && n > 0) || !encode_room(out, outlen, overflow ? 0 : 2 * n, overflow)) {
        if (out && outlen >= 1)
            out[0] = '\0';
        return 0;
    }
    hex_write(in, n, out);
    out[2 * n] = '\0';
    return 2 * n;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

svc_status svc_hex_decode(const char *in, size_t inlen, void *out, size_t outcap, size_t *outlen)
{
    if (!outlen || (!in && inlen > 0) || (!out && outcap > 0))
        return SVC_EINVAL;
    *outlen = 0;
    if (inlen % 2)
        return SVC_EPARSE;
    for (size_t i = 0; i < inlen; i++)
        if (hex_value((unsigned char)in[i]) < 0)
            return SVC_EPARSE;
    size_t n = inlen / 2;
    if (n > outcap)
        return SVC_ETOOBIG;
    uint8_t *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = (uint8_t)(hex_value((unsigned char)in[2 * i]) << 4 |
                         hex_value((unsigned char)in[2 * i + 1]));
    *outlen = n;
    return SVC_OK;
}

/* ---- base64 / base64url ------------------------------------------------- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const char *alpha, bool pad, const void *in, size_t n, char *out,
                         size_t outlen)
{
    bool overflow = n / 3 > (SIZE_MAX - 5) / 4;
    size_t need = 0;
    if (!overflow)
        need = pad ? 4 * ((n + 2) / 3) : 4 * (n / 3) + (n % 3 ? n % 3 + 1 : 0);
    if ((!in && n > 0) || !encode_room(out, outlen, need, overflow)) {
        if (out && outlen >= 1)
            out[0] = '\0';
        return 0;
    }
    const uint8_t *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(bool url, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Strict decoding: validates everything (alphabet, length, padding, zero
 * unused bits) and the output size before writing a byte. */
static svc_status b64_decode(bool url, const char *in, size_t inlen, void *out, size_t outcap,
                             size_t *outlen)
{
    if (!outlen || (!in && inlen > 0) || (!out && outcap > 0))
        return SVC_EINVAL;
    *outlen = 0;
    size_t data_len = inlen;
    if (inlen == 0) {
        return SVC_OK;
    } else if (inlen % 4 == 0) {
        /* Up to two '=' at the end of a complete final quantum. */
        if (in[inlen - 1] == '=') {
            data_len--;
            if (in[inlen - 2] == '=')
                data_len--;
        }
    } else if (!url) {
        return SVC_EPARSE; /* the standard variant requires padding */
    }
    size_t rem = data_len % 4;
    if (rem == 1)
        return SVC_EPARSE;
    for (size_t i = 0; i < data_len; i++)
        if (b64_value(url, (unsigned char)in[i]) < 0)
            return SVC_EPARSE;
    /* Unused low bits of the last character must be zero (canonical form). */
    if (rem == 2 && (b64_value(url, (unsigned char)in[data_len - 1]) & 0x0f))
        return SVC_EPARSE;
    if (rem == 3 && (b64_value(url, (unsigned char)in[data_len - 1]) & 0x03))
        return SVC_EPARSE;
    size_t n = (data_len / 4) * 3 + (rem ? rem - 1 : 0);
    if (n > outcap)
        return SVC_ETOOBIG;
    uint8_t *o = out;
    size_t w = 0, i = 0;
    for (; i + 4 <= data_len; i += 4) {
        uint32_t v = (uint32_t)b64_value(url, (unsigned char)in[i]) << 18 |
                     (uint32_t)b64_value(url, (unsigned char)in[i + 1]) << 12 |
                     (uint32_t)b64_value(url, (unsigned char)in[i + 2]) << 6 |
                     (uint32_t)b64_value(url, (unsigned char)in[i + 3]);
        o[w++] = (uint8_t)(v >> 16);
        o[w++] = (uint8_t)(v >> 8);
        o[w++] = (uint8_t)v;
    }
    if (rem >= 2) {
        uint32_t v = (uint32_t)b64_value(url, (unsigned char)in[i]) << 18 |
                     (uint32_t)b64_value(url, (unsigned char)in[i + 1]) << 12;
        if (rem == 3)
            v |= (uint32_t)b64_value(url, (unsigned char)in[i + 2]) << 6;
        o[w++] = (uint8_t)(v >> 16);
        if (rem == 3)
            o[w++] = (uint8_t)(v >> 8);
    }
    *outlen = w;
    return SVC_OK;
}

size_t svc_base64_encode(const void *in, size_t n, char *out, size_t outlen)
{
    return b64_encode(b64_std, true, in, n, out, outlen);
}

svc_status svc_base64_decode(const char *in, size_t inlen, void *out, size_t outcap,
                             size_t *outlen)
{
    return b64_decode(false, in, inlen, out, outcap, outlen);
}

size_t svc_base64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
    return b64_encode(b64_url, false, in, n, out, outlen);
}

svc_status svc_base64url_decode(const char *in, size_t inlen, void *out, size_t outcap,
                                size_t *outlen)
{
    return b64_decode(true, in, inlen, out, outcap, outlen);
}
