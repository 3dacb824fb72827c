#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/wait.h>
#include <unistd.h>

#include "svcinfra/crypto.h"
#include "internal.h"

/* Hex of a digest, for readable comparisons against published vectors. */
static void digest_hex(const uint8_t d[32], char out[65])
{
    assert_int_equal(svc_hex_encode(d, 32, out, 65), 64);
}

static void sha256_matches_fips_180_vectors(void **state)
{
    (void)state;
    uint8_t d[32];
    char hex[65];
    assert_int_equal(svc_sha256("abc", 3, d), SVC_OK);
    digest_hex(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(svc_sha256(NULL, 0, d), SVC_OK);
    digest_hex(d, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(svc_sha256(m, strlen(m), d), SVC_OK);
    digest_hex(d, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void sha256_incremental_equals_one_shot(void **state)
{
    (void)state;
    uint8_t msg[1000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    uint8_t one[32], inc[32];
    assert_int_equal(svc_sha256(msg, sizeof msg, one), SVC_OK);
    svc_sha256_ctx ctx;
    assert_int_equal(svc_sha256_init(&ctx), SVC_OK);
    /* Uneven pieces that straddle the 64-byte block boundary. */
    size_t off = 0, step = 1;
    while (off < sizeof msg) {
        size_t k = sizeof msg - off < step ? sizeof msg - off : step;
        assert_int_equal(svc_sha256_update(&ctx, msg + off, k), SVC_OK);
        off += k;
        step = step * 3 + 1;
    }
    assert_int_equal(svc_sha256_update(&ctx, NULL, 0), SVC_OK);
    assert_int_equal(svc_sha256_final(&ctx, inc), SVC_OK);
    assert_memory_equal(one, inc, 32);

    assert_int_equal(svc_sha256_init(&ctx), SVC_OK);
    assert_int_equal(svc_sha256_update(&ctx, "ab", 2), SVC_OK);
    assert_int_equal(svc_sha256_update(&ctx, "c", 1), SVC_OK);
    assert_int_equal(svc_sha256_final(&ctx, inc), SVC_OK);
    char hex[65];
    digest_hex(inc, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void sha256_rejects_null_arguments(void **state)
{
    (void)state;
    uint8_t d[32];
    svc_sha256_ctx ctx;
    assert_int_equal(svc_sha256(NULL, 1, d), SVC_EINVAL);
    assert_int_equal(svc_sha256("a", 1, NULL), SVC_EINVAL);
    assert_int_equal(svc_sha256_init(NULL), SVC_EINVAL);
    assert_int_equal(svc_sha256_init(&ctx), SVC_OK);
    assert_int_equal(svc_sha256_update(&ctx, NULL, 5), SVC_EINVAL);
    assert_int_equal(svc_sha256_final(&ctx, NULL), SVC_EINVAL);
}

static void hmac_sha256_matches_rfc4231_cases_1_2_6(void **state)
{
    (void)state;
    uint8_t mac[32];
    char hex[65];

    uint8_t key1[20];
    memset(key1, 0x0b, sizeof key1);
    assert_int_equal(svc_hmac_sha256(key1, sizeof key1, "Hi There", 8, mac), SVC_OK);
    digest_hex(mac, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    const char *d2 = "what do ya want for nothing?";
    assert_int_equal(svc_hmac_sha256("Jefe", 4, d2, strlen(d2), mac), SVC_OK);
    digest_hex(mac, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    uint8_t key6[131];
    memset(key6, 0xaa, sizeof key6);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(svc_hmac_sha256(key6, sizeof key6, d6, strlen(d6), mac), SVC_OK);
    digest_hex(mac, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void hmac_sha256_accepts_empty_key_and_data(void **state)
{
    (void)state;
    uint8_t mac[32];
    char hex[65];
    /* HMAC-SHA256("", "") from any reference implementation. */
    assert_int_equal(svc_hmac_sha256(NULL, 0, NULL, 0, mac), SVC_OK);
    digest_hex(mac, hex);
    assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    assert_int_equal(svc_hmac_sha256(NULL, 3, "x", 1, mac), SVC_EINVAL);
    assert_int_equal(svc_hmac_sha256("k", 1, "x", 1, NULL), SVC_EINVAL);
}

static void ct_equal_compares_bytes(void **state)
{
    (void)state;
    assert_int_equal(svc_ct_equal("abcdef", "abcdef", 6), 1);
    assert_int_equal(svc_ct_equal("abcdef", "abcdeg", 6), 0);
    assert_int_equal(svc_ct_equal("xbcdef", "abcdef", 6), 0);
    assert_int_equal(svc_ct_equal("a", "b", 0), 1);
    assert_int_equal(svc_ct_equal(NULL, "b", 1), 0);
}

static void random_bytes_fill_and_differ(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    assert_int_equal(svc_random_bytes(a, sizeof a), SVC_OK);
    assert_int_equal(svc_random_bytes(b, sizeof b), SVC_OK);
    /* 2^-256 odds of a false failure. */
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_int_equal(svc_random_bytes(NULL, 0), SVC_OK);
    assert_int_equal(svc_random_bytes(NULL, 4), SVC_EINVAL);
}

static void random_hex_writes_2n_lowercase_chars(void **state)
{
    (void)state;
    char out[2 * 100 + 1];
    memset(out, 'Z', sizeof out);
    assert_int_equal(svc_random_hex(out, 100), SVC_OK);
    assert_int_equal(strlen(out), 200);
    for (size_t i = 0; i < 200; i++)
        assert_non_null(strchr("0123456789abcdef", out[i]));
    char one[17];
    assert_int_equal(svc_random_hex(one, 8), SVC_OK);
    assert_int_equal(strlen(one), 16);
    assert_int_equal(svc_random_hex(one, 0), SVC_OK);
    assert_string_equal(one, "");
    assert_int_equal(svc_random_hex(NULL, 8), SVC_EINVAL);
    assert_int_equal(svc_random_hex(one, SIZE_MAX / 2 + 1), SVC_ERANGE);
}

static void hex_round_trips_and_checks_sizes(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xff, 0x7e};
    char out[11];
    assert_int_equal(svc_hex_encode(in, sizeof in, out, sizeof out), 10);
    assert_string_equal(out, "0001abff7e");
    /* One char short of room for the NUL: nothing written, 0 returned. */
    assert_int_equal(svc_hex_encode(in, sizeof in, out, 10), 0);
    assert_string_equal(out, "");
    assert_int_equal(svc_hex_encode(in, 0, out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(svc_hex_encode(in, 1, NULL, 0), 0);

    uint8_t dec[5];
    size_t n = 99;
    assert_int_equal(svc_hex_decode("0001ABff7e", 10, dec, sizeof dec, &n), SVC_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(dec, in, 5);
    assert_int_equal(svc_hex_decode("", 0, dec, sizeof dec, &n), SVC_OK);
    assert_int_equal(n, 0);
}

static void hex_decode_is_strict(void **state)
{
    (void)state;
    uint8_t dec[8];
    memset(dec, 0x55, sizeof dec);
    size_t n;
    assert_int_equal(svc_hex_decode("abc", 3, dec, sizeof dec, &n), SVC_EPARSE);
    assert_int_equal(svc_hex_decode("zz", 2, dec, sizeof dec, &n), SVC_EPARSE);
    assert_int_equal(svc_hex_decode("ab cd", 5, dec, sizeof dec, &n), SVC_EPARSE);
    assert_int_equal(svc_hex_decode("0g", 2, dec, sizeof dec, &n), SVC_EPARSE);
    /* Output two bytes too small: refused, and nothing past outcap touched. */
    assert_int_equal(svc_hex_decode("00112233", 8, dec, 2, &n), SVC_ETOOBIG);
    assert_int_equal(dec[2], 0x55);
    assert_int_equal(svc_hex_decode(NULL, 2, dec, sizeof dec, &n), SVC_EINVAL);
    assert_int_equal(svc_hex_decode("00", 2, dec, sizeof dec, NULL), SVC_EINVAL);
}

struct b64_vector {
    const char *plain;
    const char *std;
    const char *url;
};

/* RFC 4648 section 10 test vectors. */
static const struct b64_vector rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void base64_matches_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < SVC__ARRAY_LEN(rfc4648); i++) {
        const struct b64_vector *v = &rfc4648[i];
        size_t pn = strlen(v->plain);
        char enc[16];
        assert_true(SVC_BASE64_ENCODED_LEN(pn) <= sizeof enc);
        assert_int_equal(svc_base64_encode(v->plain, pn, enc, SVC_BASE64_ENCODED_LEN(pn)),
                         strlen(v->std));
        assert_string_equal(enc, v->std);
        assert_int_equal(svc_base64url_encode(v->plain, pn, enc, sizeof enc), strlen(v->url));
        assert_string_equal(enc, v->url);

        uint8_t dec[16];
        size_t n = 99;
        assert_int_equal(svc_base64_decode(v->std, strlen(v->std), dec, sizeof dec, &n), SVC_OK);
        assert_int_equal(n, pn);
        assert_memory_equal(dec, v->plain, pn);
        /* The url decoder takes both the unpadded and the padded form. */
        n = 99;
        assert_int_equal(svc_base64url_decode(v->url, strlen(v->url), dec, sizeof dec, &n),
                         SVC_OK);
        assert_int_equal(n, pn);
        assert_memory_equal(dec, v->plain, pn);
        n = 99;
        assert_int_equal(svc_base64url_decode(v->std, strlen(v->std), dec, sizeof dec, &n),
                         SVC_OK);
        assert_int_equal(n, pn);
    }
}

static void base64url_uses_the_url_safe_alphabet(void **state)
{
    (void)state;
    const uint8_t in[] = {0xfb, 0xff, 0xbf, 0xfb, 0xff};
    char enc[16];
    assert_int_equal(svc_base64_encode(in, sizeof in, enc, sizeof enc), 8);
    assert_string_equal(enc, "+/+/+/8=");
    assert_int_equal(svc_base64url_encode(in, sizeof in, enc, sizeof enc), 7);
    assert_string_equal(enc, "-_-_-_8");
    uint8_t dec[8];
    size_t n;
    assert_int_equal(svc_base64url_decode("-_-_-_8", 7, dec, sizeof dec, &n), SVC_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(dec, in, 5);
    /* Each decoder refuses the other alphabet. */
    assert_int_equal(svc_base64url_decode("+/+/+/8=", 8, dec, sizeof dec, &n), SVC_EPARSE);
    assert_int_equal(svc_base64_decode("-_-_-_8=", 8, dec, sizeof dec, &n), SVC_EPARSE);
}

static void base64_decode_is_strict(void **state)
{
    (void)state;
    uint8_t dec[16];
    size_t n;
    const char *bad_std[] = {
        "Zg",        /* padding required */
        "Zg=",       /* incomplete quantum */
        "Z===",      /* a lone character */
        "Zm9v\n",    /* whitespace */
        "Zm 9v",     /* space */
        "Zm=v",      /* padding in the middle */
        "Zh==",      /* non-zero unused bits */
        "Zm9=",      /* non-zero unused bits */
        "Zg==Zg==",  /* padding before the end */
        "Zm9v*A==",  /* outside the alphabet */
        "=",
        "====",
    };
    for (size_t i = 0; i < SVC__ARRAY_LEN(bad_std); i++)
        assert_int_equal(svc_base64_decode(bad_std[i], strlen(bad_std[i]), dec, sizeof dec, &n),
                         SVC_EPARSE);
    const char *bad_url[] = {"Z", "Zg=", "Zh", "Zm9vY", "Zm9v+A", "a=b", "===="};
    for (size_t i = 0; i < SVC__ARRAY_LEN(bad_url); i++)
        assert_int_equal(svc_base64url_decode(bad_url[i], strlen(bad_url[i]), dec, sizeof dec, &n),
                         SVC_EPARSE);
    assert_int_equal(svc_base64_decode(NULL, 4, dec, sizeof dec, &n), SVC_EINVAL);
    assert_int_equal(svc_base64_decode("Zg==", 4, dec, sizeof dec, NULL), SVC_EINVAL);
}

static void base64_checks_output_sizes(void **state)
{
    (void)state;
    char enc[9];
    memset(enc, 'X', sizeof enc);
    /* "foobar" needs 8 chars + NUL. */
    assert_int_equal(svc_base64_encode("foobar", 6, enc, 8), 0);
    assert_int_equal(enc[0], '\0');
    assert_int_equal(enc[1], 'X');
    assert_int_equal(svc_base64_encode("foobar", 6, enc, 9), 8);
    assert_int_equal(svc_base64url_encode("fo", 2, enc, 3), 0);
    assert_int_equal(svc_base64url_encode("fo", 2, enc, 4), 3);
    assert_string_equal(enc, "Zm8");

    uint8_t dec[6];
    memset(dec, 0x55, sizeof dec);
    size_t n = 99;
    assert_int_equal(svc_base64_decode("Zm9vYmFy", 8, dec, 5, &n), SVC_ETOOBIG);
    assert_int_equal(dec[5], 0x55);
    assert_int_equal(n, 0);
    assert_int_equal(svc_base64_decode("Zm9vYmE=", 8, dec, 5, &n), SVC_OK);
    assert_int_equal(n, 5);
    assert_int_equal(svc_base64url_decode("Zm9vYmE", 7, dec, 4, &n), SVC_ETOOBIG);
}

static void base64_round_trips_all_lengths(void **state)
{
    (void)state;
    uint8_t in[70];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(255 - i * 11);
    for (size_t len = 0; len <= sizeof in; len++) {
        char enc[SVC_BASE64_ENCODED_LEN(70)];
        uint8_t dec[70];
        size_t n;
        size_t el = svc_base64_encode(in, len, enc, sizeof enc);
        assert_int_equal(el, 4 * ((len + 2) / 3));
        assert_int_equal(svc_base64_decode(enc, el, dec, sizeof dec, &n), SVC_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, in, len);
        assert_true(SVC_BASE64_DECODED_MAXLEN(el) >= len);
        el = svc_base64url_encode(in, len, enc, sizeof enc);
        assert_int_equal(svc_base64url_decode(enc, el, dec, sizeof dec, &n), SVC_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, in, len);
    }
}

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, 8); }

/* 40,000 ids of 8 bytes (320 KiB, 78 pool refills of 4 KiB): refills under
 * the key the previous one left, and the kernel reseed after the 64th. A
 * generator that kept or reused a key would repeat a whole pool. */
static void ids_stay_unique_across_refills_and_reseeds(void **state)
{
    (void)state;
    enum { N = 40000 };
    uint8_t(*all)[8] = malloc(sizeof(uint8_t[8]) * N);
    assert_non_null(all);
    for (size_t i = 0; i < N; i++) {
        char hex[17];
        assert_int_equal(svc__random_id_hex(hex, 8), SVC_OK);
        size_t n = 0;
        assert_int_equal(svc_hex_decode(hex, 16, all[i], sizeof all[i], &n), SVC_OK);
        assert_int_equal(n, 8);
    }
    qsort(all, N, sizeof all[0], cmp_id);
    for (size_t i = 1; i < N; i++)
        assert_memory_not_equal(all[i - 1], all[i], 8);
    free(all);
}

static void ids_are_hex_unique_and_differ_after_fork(void **state)
{
    (void)state;
    char a[33], b[33];
    assert_int_equal(svc__random_id_hex(a, 16), SVC_OK);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    for (int i = 0; i < 600; i++) { /* 9600 bytes: crosses pool refills */
        assert_int_equal(svc__random_id_hex(b, 16), SVC_OK);
        assert_string_not_equal(a, b);
    }
    strcpy(b, "unchanged");
    assert_int_equal(svc__random_id_hex(b, SVC__ID_MAX_BYTES + 1), SVC_EINVAL);
    assert_string_equal(b, "unchanged"); /* nothing written */

    /* parent and child must not hand out the same next id */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c[33] = "";
        int ok = svc__random_id_hex(c, 16) == SVC_OK;
        ok = ok && write(fds[1], c, 32) == 32;
        _exit(ok ? 0 : 1);
    }
    char child[33] = "", parent[33];
    assert_int_equal(svc__random_id_hex(parent, 16), SVC_OK);
    assert_int_equal(read(fds[0], child, 32), 32);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_not_equal(parent, child);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_matches_fips_180_vectors),
        cmocka_unit_test(sha256_incremental_equals_one_shot),
        cmocka_unit_test(sha256_rejects_null_arguments),
        cmocka_unit_test(hmac_sha256_matches_rfc4231_cases_1_2_6),
        cmocka_unit_test(hmac_sha256_accepts_empty_key_and_data),
        cmocka_unit_test(ct_equal_compares_bytes),
        cmocka_unit_test(random_bytes_fill_and_differ),
        cmocka_unit_test(random_hex_writes_2n_lowercase_chars),
        cmocka_unit_test(hex_round_trips_and_checks_sizes),
        cmocka_unit_test(hex_decode_is_strict),
        cmocka_unit_test(base64_matches_rfc4648_vectors),
        cmocka_unit_test(base64url_uses_the_url_safe_alphabet),
        cmocka_unit_test(base64_decode_is_strict),
        cmocka_unit_test(base64_checks_output_sizes),
        cmocka_unit_test(base64_round_trips_all_lengths),
        cmocka_unit_test(ids_are_hex_unique_and_differ_after_fork),
        cmocka_unit_test(ids_stay_unique_across_refills_and_reseeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
