// gcc -std=c11 -Wall -Wextra -g -fsanitize=address,undefined -I Sources/CWebRTC/include Sources/CWebRTC/*.c Tests/CWebRTCTest/shim_test.c -lssl -lcrypto -lsrtp2 -lpthread -o /tmp/shim_test && /tmp/shim_test
/*
 * Tests of the CWebRTC shim (Sources/CWebRTC), built with gcc alone: SwiftPM does not see
 * this directory. Run from the package root with the command above (or build without
 * -fsanitize and run under valgrind --leak-check=full).
 *
 * The peer is a DTLS *client* built here directly with OpenSSL, as a browser would be,
 * and a raw libsrtp2 session: the shim's server must interoperate with both. The
 * handshake runs over in-memory "datagrams" so that flights can be dropped on purpose.
 */
#define _POSIX_C_SOURCE 200809L

#include "CWebRTC.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <srtp2/srtp.h>

/* MARK: - Minimal test harness */

static int passed;
static int failed;

#define CHECK(condition, ...)                                                                      \
    do {                                                                                           \
        if (condition) {                                                                           \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #condition);                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* MARK: - A DTLS client, as a browser would run it */

typedef struct {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio;
    BIO *wbio;
    char fingerprint[VEZA_DTLS_FINGERPRINT_SIZE]; /* its own, for the server */
    unsigned char server_digest[32];              /* expected from the server */
    int server_match;                             /* set by its verify callback */
    int done;                                     /* handshake complete */
    int failed;                                   /* fatal error */
    int closed;                                   /* close_notify received */
    unsigned long error; /* OpenSSL's reason for the failure */
} test_client;

static int parse_hex_fingerprint(const char *text, unsigned char digest[32]) {
    for (int i = 0; i < 32; i++) {
        unsigned int byte;
        if (sscanf(text + 3 * i, "%2x", &byte) != 1) return 0;
        digest[i] = (unsigned char)byte;
    }
    return 1;
}

static void format_hex_fingerprint(const unsigned char digest[32], char *out) {
    for (int i = 0; i < 32; i++) sprintf(out + 3 * i, i < 31 ? "%02X:" : "%02X", digest[i]);
}

static int client_verify(int ok, X509_STORE_CTX *store) {
    (void)ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    test_client *client = SSL_get_app_data(ssl);
    unsigned char digest[32];
    unsigned int len = 0;
    X509_digest(X509_STORE_CTX_get0_cert(store), EVP_sha256(), digest, &len);
    client->server_match = len == 32 && memcmp(digest, client->server_digest, 32) == 0;
    return client->server_match;
}

/* A client with its own self-signed P-256 certificate (unless `anonymous`), expecting
 * `server_fingerprint`. */
static test_client *client_create_with(const char *server_fingerprint, int mtu, int anonymous) {
    test_client *client = calloc(1, sizeof *client);
    parse_hex_fingerprint(server_fingerprint, client->server_digest);

    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 12345);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)"test-browser", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_set_pubkey(cert, key);
    X509_sign(cert, key, EVP_sha256());
    unsigned char digest[32];
    unsigned int len = 0;
    X509_digest(cert, EVP_sha256(), digest, &len);
    format_hex_fingerprint(digest, client->fingerprint);

    client->ctx = SSL_CTX_new(DTLS_client_method());
    SSL_CTX_set_min_proto_version(client->ctx, DTLS1_2_VERSION);
    if (!anonymous) {
        SSL_CTX_use_certificate(client->ctx, cert);
        SSL_CTX_use_PrivateKey(client->ctx, key);
    }
    SSL_CTX_set_tlsext_use_srtp(client->ctx, "SRTP_AES128_CM_SHA1_80");
    SSL_CTX_set_verify(client->ctx, SSL_VERIFY_PEER, client_verify);
    SSL_CTX_set_options(client->ctx, SSL_OP_NO_QUERY_MTU);
    X509_free(cert);
    EVP_PKEY_free(key);

    client->ssl = SSL_new(client->ctx);
    client->rbio = BIO_new(BIO_s_mem());
    client->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(client->rbio, -1);
    BIO_set_mem_eof_return(client->wbio, -1);
    SSL_set_bio(client->ssl, client->rbio, client->wbio);
    SSL_set_app_data(client->ssl, client);
    SSL_set_connect_state(client->ssl);
    DTLS_set_link_mtu(client->ssl, mtu);
    return client;
}

static test_client *client_create(const char *server_fingerprint, int mtu) {
    return client_create_with(server_fingerprint, mtu, 0);
}

static void client_free(test_client *client) {
    SSL_free(client->ssl);
    SSL_CTX_free(client->ctx);
    free(client);
}

/* Drives the client after input: the handshake, then reads (to see alerts/close_notify). */
static void client_advance(test_client *client) {
    if (client->failed || client->closed) return;
    if (!client->done) {
        int result = SSL_do_handshake(client->ssl);
        if (result == 1) {
            client->done = 1;
        } else {
            int error = SSL_get_error(client->ssl, result);
            if (error != SSL_ERROR_WANT_READ) {
                client->failed = 1;
                client->error = ERR_peek_error();
            }
        }
        ERR_clear_error();
        if (!client->done) return;
    }
    unsigned char buffer[2048];
    size_t n;
    while (SSL_read_ex(client->ssl, buffer, sizeof buffer, &n)) {
    }
    int error = SSL_get_error(client->ssl, 0);
    if (error == SSL_ERROR_ZERO_RETURN) client->closed = 1;
    else if (error != SSL_ERROR_WANT_READ) client->failed = 1;
    ERR_clear_error();
}

/* MARK: - Datagram plumbing */

#define MAX_DATAGRAMS 64

typedef struct {
    uint8_t data[MAX_DATAGRAMS][2048];
    long len[MAX_DATAGRAMS];
    int count;
} datagram_batch;

/* Number of whole DTLS records in a datagram, or -1 if one is cut. */
static int count_records(const uint8_t *p, long len) {
    int records = 0;
    long offset = 0;
    while (offset < len) {
        if (len - offset < 13) return -1;
        offset += 13 + ((long)p[offset + 11] << 8 | p[offset + 12]);
        records++;
    }
    return offset == len ? records : -1;
}

/* Everything the server has to send now, checked to be whole records within the MTU. */
static int max_records_per_datagram;
static void take_server_output(veza_dtls *server, int mtu, datagram_batch *batch) {
    batch->count = 0;
    for (;;) {
        long len = veza_dtls_next_datagram(server, batch->data[batch->count], 2048);
        CHECK(len >= 0, "next_datagram returned %ld", len);
        if (len <= 0) break;
        CHECK(len <= mtu, "datagram of %ld bytes for an MTU of %d", len, mtu);
        int records = count_records(batch->data[batch->count], len);
        CHECK(records > 0, "datagram of %ld bytes does not hold whole records", len);
        if (records > max_records_per_datagram) max_records_per_datagram = records;
        batch->len[batch->count] = len;
        if (++batch->count == MAX_DATAGRAMS) break;
    }
}

static void deliver_to_client(test_client *client, const datagram_batch *batch) {
    for (int i = 0; i < batch->count; i++) {
        BIO_write(client->rbio, batch->data[i], (int)batch->len[i]);
        client_advance(client);
    }
}

/* The client's pending records, one record per datagram, fed to the server. */
static int deliver_to_server(test_client *client, veza_dtls *server) {
    int delivered = 0;
    size_t pending;
    while ((pending = BIO_ctrl_pending(client->wbio)) > 0) {
        uint8_t header[13];
        BIO_read(client->wbio, header, 13);
        size_t body = (size_t)header[11] << 8 | header[12];
        uint8_t record[2048];
        memcpy(record, header, 13);
        BIO_read(client->wbio, record + 13, (int)body);
        veza_dtls_feed(server, record, 13 + body);
        delivered++;
    }
    return delivered;
}

typedef struct {
    int server_timeouts; /* server retransmission timers run */
    int client_timeouts; /* client retransmission timers run */
    int batches;         /* server output batches (flights, retransmissions) */
} handshake_stats;

/*
 * Runs the handshake to its end (or failure). Server output batches whose index is set in
 * `drop_mask` are lost on the way. When nothing moves, the pending retransmission timer
 * (the server's first) is waited for and run.
 */
static handshake_stats run_handshake(veza_dtls *server, test_client *client, int mtu,
                                     unsigned drop_mask) {
    handshake_stats stats = {0, 0, 0};
    datagram_batch *batch = malloc(sizeof *batch);
    client_advance(client); /* ClientHello */
    for (int round = 0; round < 40; round++) {
        int moved = deliver_to_server(client, server);
        take_server_output(server, mtu, batch);
        if (batch->count > 0) {
            moved = 1;
            if (!(drop_mask & (1u << stats.batches))) deliver_to_client(client, batch);
            stats.batches++;
        }
        int server_over = veza_dtls_state(server) != VEZA_DTLS_HANDSHAKING;
        int client_over = client->done || client->failed;
        if (server_over && client_over && BIO_ctrl_pending(client->wbio) == 0 && batch->count == 0)
            break;
        if (moved) continue;
        /* Idle: a flight was lost. Wait for a retransmission timer, the server's first. */
        long server_ms = veza_dtls_timeout_ms(server);
        struct timeval tv;
        if (server_ms >= 0) {
            sleep_ms(server_ms);
            veza_dtls_handle_timeout(server);
            stats.server_timeouts++;
        } else if (DTLSv1_get_timeout(client->ssl, &tv) == 1) {
            sleep_ms(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
            DTLSv1_handle_timeout(client->ssl);
            stats.client_timeouts++;
        } else {
            break; /* stuck */
        }
    }
    free(batch);
    return stats;
}

/* MARK: - Tests */

static void test_identity(veza_dtls_identity *identity) {
    char fingerprint[VEZA_DTLS_FINGERPRINT_SIZE];
    CHECK(veza_dtls_identity_fingerprint(identity, fingerprint, sizeof fingerprint) == 0, "fp");
    CHECK(strlen(fingerprint) == 95, "length %zu", strlen(fingerprint));
    int well_formed = 1;
    for (int i = 0; i < 95; i++) {
        char c = fingerprint[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
        if (i % 3 == 2 ? c != ':' : !hex) well_formed = 0;
    }
    CHECK(well_formed, "fingerprint %s", fingerprint);
    CHECK(veza_dtls_identity_fingerprint(identity, fingerprint, 95) == -1, "short buffer");
    CHECK(veza_dtls_create_server(identity, "AB:CD", 1200) == NULL, "malformed fingerprint");
    CHECK(veza_dtls_create_server(identity, fingerprint, 100) == NULL, "MTU below 256");
    printf("identity fingerprint %s\n", fingerprint);
}

static void lower(char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F') *s = (char)(*s - 'A' + 'a');
}

/* A server and a client that have completed a handshake. */
typedef struct {
    veza_dtls *server;
    test_client *client;
    handshake_stats stats;
} association;

static association connect_pair(veza_dtls_identity *identity, int mtu, unsigned drop_mask) {
    char server_fingerprint[VEZA_DTLS_FINGERPRINT_SIZE];
    veza_dtls_identity_fingerprint(identity, server_fingerprint, sizeof server_fingerprint);
    association a;
    a.client = client_create(server_fingerprint, mtu);
    /* The SDP may carry lower-case hex: the comparison ignores case. */
    char remote[VEZA_DTLS_FINGERPRINT_SIZE];
    memcpy(remote, a.client->fingerprint, sizeof remote);
    lower(remote);
    a.server = veza_dtls_create_server(identity, remote, mtu);
    CHECK(a.server != NULL, "create_server");
    a.stats = run_handshake(a.server, a.client, mtu, drop_mask);
    CHECK(veza_dtls_state(a.server) == VEZA_DTLS_CONNECTED, "server state %d (%s)",
          veza_dtls_state(a.server), veza_dtls_error(a.server));
    CHECK(a.client->done && !a.client->failed, "client done %d failed %d", a.client->done,
          a.client->failed);
    CHECK(a.client->server_match, "client saw the server's certificate");
    return a;
}

static void disconnect_pair(association *a) {
    veza_dtls_free(a->server);
    client_free(a->client);
}

static void test_handshake_and_keys(veza_dtls_identity *identity, uint8_t server_local[30],
                                    uint8_t server_remote[30], uint8_t client_material[60]) {
    association a = connect_pair(identity, 1200, 0);
    CHECK(a.stats.server_timeouts == 0 && a.stats.client_timeouts == 0, "no timer needed");
    CHECK(veza_dtls_timeout_ms(a.server) == -1, "no timer after completion: %ld",
          veza_dtls_timeout_ms(a.server));

    const SRTP_PROTECTION_PROFILE *profile = SSL_get_selected_srtp_profile(a.client->ssl);
    CHECK(profile != NULL && profile->id == SRTP_AES128_CM_SHA1_80, "client profile");
    CHECK(veza_dtls_srtp_keys(a.server, server_local, server_remote) == 0, "server keys");
    CHECK(SSL_export_keying_material(a.client->ssl, client_material, 60, "EXTRACTOR-dtls_srtp",
                                     19, NULL, 0, 0) == 1,
          "client export");
    /* client key | server key | client salt | server salt */
    CHECK(memcmp(server_remote, client_material, 16) == 0, "client key");
    CHECK(memcmp(server_remote + 16, client_material + 32, 14) == 0, "client salt");
    CHECK(memcmp(server_local, client_material + 16, 16) == 0, "server key");
    CHECK(memcmp(server_local + 16, client_material + 46, 14) == 0, "server salt");
    CHECK(memcmp(server_local, server_remote, 30) != 0, "distinct directions");
    printf("handshake: %d server batches, keys identical on both sides\n", a.stats.batches);

    /* A buffer too small for the next record is refused without losing anything. */
    veza_dtls_shutdown(a.server);
    CHECK(veza_dtls_state(a.server) == VEZA_DTLS_CLOSED, "closed after shutdown");
    uint8_t tiny[8];
    CHECK(veza_dtls_next_datagram(a.server, tiny, sizeof tiny) == -1, "cap too small");
    uint8_t alert[1200];
    long len = veza_dtls_next_datagram(a.server, alert, sizeof alert);
    CHECK(len > 0 && alert[0] == 21 /* alert */, "close_notify queued (%ld bytes)", len);
    CHECK(veza_dtls_next_datagram(a.server, alert, sizeof alert) == 0, "nothing more");
    BIO_write(a.client->rbio, alert, (int)len);
    client_advance(a.client);
    CHECK(a.client->closed, "client received close_notify");
    uint8_t keys[2][30];
    CHECK(veza_dtls_srtp_keys(a.server, keys[0], keys[1]) == -1, "no keys once closed");
    disconnect_pair(&a);
}

static void test_peer_close(veza_dtls_identity *identity) {
    association a = connect_pair(identity, 1200, 0);
    SSL_shutdown(a.client->ssl);
    deliver_to_server(a.client, a.server);
    CHECK(veza_dtls_state(a.server) == VEZA_DTLS_CLOSED, "state %d after peer close_notify",
          veza_dtls_state(a.server));
    uint8_t keys[2][30];
    CHECK(veza_dtls_srtp_keys(a.server, keys[0], keys[1]) == -1, "no keys once closed");
    /* Our close_notify in reply. */
    veza_dtls_shutdown(a.server);
    uint8_t out[1200];
    long len = veza_dtls_next_datagram(a.server, out, sizeof out);
    CHECK(len > 0 && out[0] == 21, "close_notify in reply (%ld)", len);
    disconnect_pair(&a);
}

static void test_wrong_fingerprint(veza_dtls_identity *identity) {
    char server_fingerprint[VEZA_DTLS_FINGERPRINT_SIZE];
    veza_dtls_identity_fingerprint(identity, server_fingerprint, sizeof server_fingerprint);
    test_client *client = client_create(server_fingerprint, 1200);
    char wrong[VEZA_DTLS_FINGERPRINT_SIZE];
    memcpy(wrong, client->fingerprint, sizeof wrong);
    wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
    veza_dtls *server = veza_dtls_create_server(identity, wrong, 1200);
    CHECK(server != NULL, "create_server");
    run_handshake(server, client, 1200, 0);
    CHECK(veza_dtls_state(server) == VEZA_DTLS_FAILED, "server state %d", veza_dtls_state(server));
    CHECK(strstr(veza_dtls_error(server), "fingerprint") != NULL, "error: %s",
          veza_dtls_error(server));
    CHECK(client->failed && !client->done, "client received the alert (failed %d done %d)",
          client->failed, client->done);
    CHECK(ERR_GET_REASON(client->error) == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE,
          "client error: %s", ERR_reason_error_string(client->error));
    uint8_t keys[2][30];
    CHECK(veza_dtls_srtp_keys(server, keys[0], keys[1]) == -1, "no keys after failure");
    CHECK(veza_dtls_feed(server, (const uint8_t *)"x", 1) == VEZA_DTLS_FAILED, "sticky failure");
    printf("wrong fingerprint: server failed with \"%s\"\n", veza_dtls_error(server));
    veza_dtls_free(server);
    client_free(client);
}

static void test_client_rejects_server(veza_dtls_identity *identity) {
    /* The client expects another fingerprint: its alert must fail the server. */
    char wrong[VEZA_DTLS_FINGERPRINT_SIZE];
    veza_dtls_identity_fingerprint(identity, wrong, sizeof wrong);
    wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
    test_client *client = client_create(wrong, 1200);
    veza_dtls *server = veza_dtls_create_server(identity, client->fingerprint, 1200);
    run_handshake(server, client, 1200, 0);
    CHECK(client->failed, "client rejected the server");
    CHECK(veza_dtls_state(server) == VEZA_DTLS_FAILED, "server state %d", veza_dtls_state(server));
    CHECK(strstr(veza_dtls_error(server), "alert") != NULL, "error: %s", veza_dtls_error(server));
    printf("client rejects server: server failed with \"%s\"\n", veza_dtls_error(server));
    veza_dtls_free(server);
    client_free(client);
}

static void test_client_without_certificate(veza_dtls_identity *identity) {
    char server_fingerprint[VEZA_DTLS_FINGERPRINT_SIZE];
    veza_dtls_identity_fingerprint(identity, server_fingerprint, sizeof server_fingerprint);
    test_client *client = client_create_with(server_fingerprint, 1200, 1);
    veza_dtls *server = veza_dtls_create_server(identity, client->fingerprint, 1200);
    run_handshake(server, client, 1200, 0);
    CHECK(veza_dtls_state(server) == VEZA_DTLS_FAILED, "server state %d", veza_dtls_state(server));
    CHECK(client->failed && !client->done, "client failed %d done %d", client->failed, client->done);
    printf("client without certificate: server failed with \"%s\"\n", veza_dtls_error(server));
    veza_dtls_free(server);
    client_free(client);
}

static void test_lost_flights(veza_dtls_identity *identity) {
    /* The server's first flight (ServerHello ... ServerHelloDone) is lost once: its
     * retransmission timer must resend it. */
    association a = connect_pair(identity, 1200, 1u << 0);
    CHECK(a.stats.server_timeouts >= 1, "server timer ran %d times", a.stats.server_timeouts);
    printf("lost first flight: recovered after %d server timeout(s), %d client timeout(s)\n",
           a.stats.server_timeouts, a.stats.client_timeouts);
    disconnect_pair(&a);

    /* The server's last flight (ChangeCipherSpec, Finished) is lost once: the client
     * retransmits its flight and the connected server must answer it again. */
    a = connect_pair(identity, 1200, 1u << 1);
    CHECK(a.stats.client_timeouts >= 1, "client timer ran %d times", a.stats.client_timeouts);
    printf("lost last flight: recovered after %d server timeout(s), %d client timeout(s)\n",
           a.stats.server_timeouts, a.stats.client_timeouts);
    disconnect_pair(&a);
}

static void test_small_mtu(veza_dtls_identity *identity) {
    /* Fragmented handshake messages, several records packed per datagram. */
    max_records_per_datagram = 0;
    association a = connect_pair(identity, 300, 0);
    CHECK(max_records_per_datagram >= 2, "records per datagram %d", max_records_per_datagram);
    printf("MTU 300: handshake complete in %d server batches, up to %d records per datagram\n",
           a.stats.batches, max_records_per_datagram);
    disconnect_pair(&a);
}

/* Raw libsrtp2 sessions for the client (one per direction: a libsrtp2 session takes a
 * single "any SSRC" template): outbound with its keys, inbound with the server's. */
typedef struct {
    srtp_t out;
    srtp_t in;
} client_srtp;

static srtp_t client_session(srtp_ssrc_type_t direction, const uint8_t key[16],
                             const uint8_t salt[14]) {
    uint8_t key_salt[30];
    memcpy(key_salt, key, 16);
    memcpy(key_salt + 16, salt, 14);
    srtp_policy_t policy;
    memset(&policy, 0, sizeof policy);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
    policy.ssrc.type = direction;
    policy.key = key_salt;
    policy.window_size = 1024;
    srtp_t session = NULL;
    CHECK(srtp_create(&session, &policy) == srtp_err_status_ok, "client srtp_create");
    return session;
}

static void test_srtp(const uint8_t server_local[30], const uint8_t server_remote[30],
                      const uint8_t client_material[60]) {
    /* Created first: it runs srtp_init(), which the raw client session also needs. */
    veza_srtp *server = veza_srtp_create(server_local, server_remote);
    CHECK(server != NULL, "veza_srtp_create");
    /* From the client's own export: client key | server key | client salt | server salt. */
    client_srtp client = {
        client_session(ssrc_any_outbound, client_material, client_material + 32),
        client_session(ssrc_any_inbound, client_material + 16, client_material + 46),
    };
    if (server == NULL || client.out == NULL || client.in == NULL) return;

    /* RTP: 12-byte header (V=2, PT=111 Opus, seq 4660, ts, SSRC) + 100 bytes of payload. */
    uint8_t rtp[112];
    const uint8_t header[12] = {0x80, 111, 0x12, 0x34, 0, 0, 0x03, 0xC0, 0xCA, 0xFE, 0xBA, 0xBE};
    memcpy(rtp, header, 12);
    for (int i = 0; i < 100; i++) rtp[12 + i] = (uint8_t)(i * 7 + 1);
    uint8_t packet[112 + VEZA_SRTP_RTP_SPARE];
    memcpy(packet, rtp, sizeof rtp);
    int len = sizeof rtp;
    CHECK(veza_srtp_protect(server, packet, &len) == 0, "protect");
    CHECK(len == 112 + 10, "SRTP length %d", len);
    CHECK(memcmp(packet, rtp, 12) == 0 && memcmp(packet + 12, rtp + 12, 100) != 0,
          "header clear, payload encrypted");
    uint8_t tampered[sizeof packet];
    memcpy(tampered, packet, sizeof packet);
    tampered[50] ^= 1;
    int tampered_len = len;
    CHECK(srtp_unprotect(client.in, tampered, &tampered_len) == srtp_err_status_auth_fail,
          "tampered RTP rejected");
    CHECK(srtp_unprotect(client.in, packet, &len) == srtp_err_status_ok, "client unprotect");
    CHECK(len == 112 && memcmp(packet, rtp, 112) == 0, "RTP round trip (%d bytes)", len);

    /* RTCP sender report: header, SSRC, NTP timestamp, RTP timestamp, packet/octet counts. */
    uint8_t sr[28] = {0x80, 200, 0, 6, 0xCA, 0xFE, 0xBA, 0xBE, 0xE9, 0x1F, 0x2A, 0x3B,
                      0x40, 0,   0, 0, 0,    0,    0x03, 0xC0, 0,    0,    0,    1,
                      0,    0,   0, 100};
    uint8_t rtcp[28 + VEZA_SRTCP_SPARE];
    memcpy(rtcp, sr, sizeof sr);
    len = sizeof sr;
    CHECK(veza_srtp_protect_rtcp(server, rtcp, &len) == 0, "protect_rtcp");
    CHECK(len == 28 + 4 + 10, "SRTCP length %d", len);
    CHECK(srtp_unprotect_rtcp(client.in, rtcp, &len) == srtp_err_status_ok, "client unprotect_rtcp");
    CHECK(len == 28 && memcmp(rtcp, sr, 28) == 0, "SR round trip (%d bytes)", len);

    /* Receiver report from the client (one report block), unprotected by the server. */
    uint8_t rr[32] = {0x81, 201, 0, 7, 0x11, 0x22, 0x33, 0x44, 0xCA, 0xFE, 0xBA, 0xBE};
    uint8_t in[32 + VEZA_SRTCP_SPARE];
    memcpy(in, rr, sizeof rr);
    len = sizeof rr;
    CHECK(srtp_protect_rtcp(client.out, in, &len) == srtp_err_status_ok, "client protect_rtcp");
    uint8_t copy[sizeof in];
    memcpy(copy, in, sizeof in);
    int copy_len = len;
    CHECK(veza_srtp_unprotect_rtcp(server, in, &len) == 0, "server unprotect_rtcp");
    CHECK(len == 32 && memcmp(in, rr, 32) == 0, "RR round trip (%d bytes)", len);
    CHECK(veza_srtp_unprotect_rtcp(server, copy, &copy_len) == srtp_err_status_replay_fail,
          "replayed SRTCP rejected");
    memcpy(in, rr, sizeof rr);
    len = sizeof rr;
    srtp_protect_rtcp(client.out, in, &len);
    in[9] ^= 0x80;
    CHECK(veza_srtp_unprotect_rtcp(server, in, &len) == srtp_err_status_auth_fail,
          "tampered SRTCP rejected");

    /* Retransmission with the same sequence number is allowed (allow_repeat_tx). */
    memcpy(packet, rtp, sizeof rtp);
    len = sizeof rtp;
    CHECK(veza_srtp_protect(server, packet, &len) == 0, "repeat protect allowed");
    CHECK(veza_srtp_protect(NULL, packet, &len) == srtp_err_status_bad_param, "NULL session");
    printf("SRTP: RTP, SR and RR round trips; tampering and replay rejected\n");

    srtp_dealloc(client.out);
    srtp_dealloc(client.in);
    veza_srtp_free(server);
}

/* The shim's own client (load generators) against its server: both finish, the keys are
 * mirrored, and SRTP from the server decrypts with veza_srtp_unprotect() on the client. */
static void test_shim_client(veza_dtls_identity *server_identity) {
    veza_dtls_identity *client_identity = veza_dtls_identity_create();
    char server_fp[VEZA_DTLS_FINGERPRINT_SIZE], client_fp[VEZA_DTLS_FINGERPRINT_SIZE];
    veza_dtls_identity_fingerprint(server_identity, server_fp, sizeof server_fp);
    veza_dtls_identity_fingerprint(client_identity, client_fp, sizeof client_fp);
    veza_dtls *server = veza_dtls_create_server(server_identity, client_fp, 1200);
    veza_dtls *client = veza_dtls_create_client(client_identity, server_fp, 1200);
    CHECK(server != NULL && client != NULL, "shim client and server");
    uint8_t buffer[1500];
    for (int round = 0; round < 10 && !(veza_dtls_state(server) == VEZA_DTLS_CONNECTED
                                          && veza_dtls_state(client) == VEZA_DTLS_CONNECTED); round++) {
        long len;
        while ((len = veza_dtls_next_datagram(client, buffer, sizeof buffer)) > 0) veza_dtls_feed(server, buffer, (size_t)len);
        while ((len = veza_dtls_next_datagram(server, buffer, sizeof buffer)) > 0) veza_dtls_feed(client, buffer, (size_t)len);
    }
    CHECK(veza_dtls_state(server) == VEZA_DTLS_CONNECTED && veza_dtls_state(client) == VEZA_DTLS_CONNECTED,
          "shim client handshake: server %d client %d", veza_dtls_state(server), veza_dtls_state(client));
    uint8_t s_local[30], s_remote[30], c_local[30], c_remote[30];
    CHECK(veza_dtls_srtp_keys(server, s_local, s_remote) == 0 && veza_dtls_srtp_keys(client, c_local, c_remote) == 0, "keys");
    CHECK(memcmp(s_local, c_remote, 30) == 0 && memcmp(s_remote, c_local, 30) == 0, "client keys mirror the server's");
    veza_srtp *sending = veza_srtp_create(s_local, s_remote);
    veza_srtp *receiving = veza_srtp_create(c_local, c_remote);
    uint8_t packet[12 + 100 + VEZA_SRTP_RTP_SPARE] = {0x80, 111, 0, 1, 0, 0, 3, 0xC0, 1, 2, 3, 4};
    for (int i = 0; i < 100; i++) packet[12 + i] = (uint8_t)i;
    int len = 112;
    CHECK(veza_srtp_protect(sending, packet, &len) == 0 && len == 122, "protect: %d", len);
    CHECK(veza_srtp_unprotect(receiving, packet, &len) == 0 && len == 112 && packet[12 + 99] == 99, "unprotect: %d", len);
    CHECK(veza_srtp_unprotect(receiving, packet, &len) != 0, "a replay is refused");
    veza_srtp_free(sending);
    veza_srtp_free(receiving);
    veza_dtls_free(server);
    veza_dtls_free(client);
    veza_dtls_identity_free(client_identity);
}

int main(void) {
    veza_dtls_identity *identity = veza_dtls_identity_create();
    CHECK(identity != NULL, "identity");
    if (identity == NULL) return 1;

    uint8_t server_local[30];
    uint8_t server_remote[30];
    uint8_t client_material[60];
    test_identity(identity);
    test_handshake_and_keys(identity, server_local, server_remote, client_material);
    test_peer_close(identity);
    test_wrong_fingerprint(identity);
    test_client_rejects_server(identity);
    test_client_without_certificate(identity);
    test_small_mtu(identity);
    test_lost_flights(identity);
    test_srtp(server_local, server_remote, client_material);
    test_shim_client(identity);

    veza_dtls_identity_free(identity);
    srtp_shutdown();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
