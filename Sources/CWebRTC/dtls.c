/*
 * DTLS for WebRTC: a server-side DTLS 1.2 association with the use_srtp extension
 * (RFC 5764), driven through memory BIOs so that the caller owns the UDP socket (which is
 * shared with ICE and SRTP).
 *
 * This file is glue only: all cryptography (key generation, certificate signing, the
 * handshake, fingerprints, the keying material exporter) is OpenSSL's. What is here is
 * configuration, the certificate pinning to the SDP fingerprint, and the packing of
 * DTLS records into datagrams.
 *
 * See include/CWebRTC.h for the API and its threading rules.
 */
#include "CWebRTC.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The only protection profile offered and accepted (the one every browser supports). */
#define SRTP_PROFILE_NAME "SRTP_AES128_CM_SHA1_80"
#define SRTP_MASTER_KEY_LEN 16
#define SRTP_MASTER_SALT_LEN 14
#define DTLS_SRTP_EXPORTER_LABEL "EXTRACTOR-dtls_srtp"

#define DEFAULT_MTU 1200
/* OpenSSL refuses link MTUs below 256 (dtls1_link_min_mtu()); a UDP payload is < 64 KiB. */
#define MIN_MTU 256
#define MAX_MTU 65535

/* DTLS record header: type(1) version(2) epoch(2) sequence(6) length(2), RFC 6347 §4.1. */
#define DTLS_RECORD_HEADER_LEN 13

#define SHA256_LEN 32

struct veza_dtls_identity {
    /* Holds the certificate, the key and the configuration shared by every association.
     * Never modified after veza_dtls_identity_create(), so SSL_new() may be called on it
     * from several threads. */
    SSL_CTX *ctx;
    /* The same certificate and key for associations where we are the DTLS client (a load
     * generator's WebRTC listeners, tests). */
    SSL_CTX *client_ctx;
    char fingerprint[VEZA_DTLS_FINGERPRINT_SIZE];
};

struct veza_dtls {
    SSL *ssl;
    BIO *rbio; /* datagrams from the peer; owned by ssl */
    BIO *wbio; /* records to the peer; owned by ssl */
    int state; /* VEZA_DTLS_* */
    int mtu;
    int is_client;
    /* SHA-256 of the peer certificate expected from the SDP. */
    unsigned char remote_fingerprint[SHA256_LEN];
    /* Outcome of the pinning check in the verify callback: 0 not yet, 1 match, -1 not. */
    int peer_match;
    /* Records taken from wbio and not yet handed out as datagrams. */
    uint8_t *pending;
    size_t pending_len;
    size_t pending_cap;
    char error[256];
};

/* MARK: - Fingerprints */

static int certificate_sha256(X509 *cert, unsigned char digest[SHA256_LEN]) {
    unsigned int len = 0;
    return X509_digest(cert, EVP_sha256(), digest, &len) == 1 && len == SHA256_LEN;
}

static void format_fingerprint(const unsigned char digest[SHA256_LEN],
                               char out[VEZA_DTLS_FINGERPRINT_SIZE]) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < SHA256_LEN; i++) {
        out[3 * i] = hex[digest[i] >> 4];
        out[3 * i + 1] = hex[digest[i] & 0x0F];
        out[3 * i + 2] = (i + 1 < SHA256_LEN) ? ':' : '\0';
    }
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Parses exactly 32 colon-separated hex pairs, either case. Returns 1 on success. */
static int parse_fingerprint(const char *text, unsigned char digest[SHA256_LEN]) {
    for (size_t i = 0; i < SHA256_LEN; i++) {
        int high = hex_value(text[0]);
        int low = high < 0 ? -1 : hex_value(text[1]);
        if (low < 0) return 0;
        digest[i] = (unsigned char)(high << 4 | low);
        char separator = text[2];
        if (separator != ((i + 1 < SHA256_LEN) ? ':' : '\0')) return 0;
        text += 3;
    }
    return 1;
}

/* MARK: - Identity */

static X509 *make_self_signed_certificate(EVP_PKEY *key) {
    X509 *cert = X509_new();
    BIGNUM *serial = BN_new();
    int ok = cert != NULL && serial != NULL
        && X509_set_version(cert, X509_VERSION_3)
        /* A random positive serial of 63 bits (top bit set, so never zero). */
        && BN_rand(serial, 63, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
        && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) != NULL
        /* Backdated one day, as libwebrtc does, so that a peer with a slow clock that did
         * check validity would not reject it. */
        && X509_gmtime_adj(X509_getm_notBefore(cert), -24L * 60 * 60) != NULL
        && X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 24 * 60 * 60) != NULL
        && X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                                      (const unsigned char *)"veza-stream", -1, -1, 0)
        && X509_set_issuer_name(cert, X509_get_subject_name(cert))
        && X509_set_pubkey(cert, key)
        && X509_sign(cert, key, EVP_sha256()) > 0;
    BN_free(serial);
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static int verify_callback(int preverify_ok, X509_STORE_CTX *store);

static SSL_CTX *make_context(X509 *cert, EVP_PKEY *key, int client) {
    SSL_CTX *ctx = SSL_CTX_new(client ? DTLS_client_method() : DTLS_server_method());
    if (ctx == NULL) return NULL;
    int ok = SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION)
        && SSL_CTX_use_certificate(ctx, cert)
        && SSL_CTX_use_PrivateKey(ctx, key)
        && SSL_CTX_check_private_key(ctx)
        /* Beware: unlike most of OpenSSL, this one returns 0 on success. */
        && SSL_CTX_set_tlsext_use_srtp(ctx, SRTP_PROFILE_NAME) == 0;
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Ask for the client certificate, which is then pinned to the SDP fingerprint. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_callback);
    /* The memory BIOs have no path MTU to query: the link MTU is set per association.
     * No resumption (a WebRTC association is never resumed, and a server-side session
     * cache shared by all associations would only grow) and no renegotiation.
     * No SSL_OP_COOKIE_EXCHANGE either: ICE has already proven the peer's address. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

veza_dtls_identity *veza_dtls_identity_create(void) {
    veza_dtls_identity *identity = calloc(1, sizeof *identity);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key != NULL ? make_self_signed_certificate(key) : NULL;
    unsigned char digest[SHA256_LEN];
    if (identity != NULL && cert != NULL && certificate_sha256(cert, digest)) {
        format_fingerprint(digest, identity->fingerprint);
        identity->ctx = make_context(cert, key, 0);
        identity->client_ctx = make_context(cert, key, 1);
    }
    /* The context, if any, holds its own references to the certificate and the key. */
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (identity != NULL && (identity->ctx == NULL || identity->client_ctx == NULL)) {
        SSL_CTX_free(identity->ctx);
        SSL_CTX_free(identity->client_ctx);
        free(identity);
        return NULL;
    }
    return identity;
}

void veza_dtls_identity_free(veza_dtls_identity *identity) {
    if (identity == NULL) return;
    SSL_CTX_free(identity->ctx); /* reference counted: live associations keep theirs */
    SSL_CTX_free(identity->client_ctx);
    free(identity);
}

int veza_dtls_identity_fingerprint(const veza_dtls_identity *identity, char *out, size_t cap) {
    if (identity == NULL || out == NULL || cap < VEZA_DTLS_FINGERPRINT_SIZE) return -1;
    memcpy(out, identity->fingerprint, VEZA_DTLS_FINGERPRINT_SIZE);
    return 0;
}

/* MARK: - Peer certificate pinning */

static int peer_certificate_matches(veza_dtls *dtls, X509 *cert) {
    unsigned char digest[SHA256_LEN];
    return cert != NULL && certificate_sha256(cert, digest)
        && CRYPTO_memcmp(digest, dtls->remote_fingerprint, SHA256_LEN) == 0;
}

/*
 * Called by OpenSSL for each step of the client certificate's verification. There is no
 * trust store: a WebRTC certificate is self-signed and authenticated by the fingerprint in
 * the (already authenticated) SDP instead. So chain and validity errors are ignored and the
 * only test is that the end-entity certificate has the expected SHA-256. Failing here,
 * rather than after the handshake, makes OpenSSL abort with a bad_certificate alert before
 * our Finished is sent.
 */
static int verify_callback(int preverify_ok, X509_STORE_CTX *store) {
    (void)preverify_ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    veza_dtls *dtls = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    if (dtls == NULL) return 0;
    if (dtls->peer_match == 0) {
        /* The callback runs several times per certificate: hash only once. */
        dtls->peer_match = peer_certificate_matches(dtls, X509_STORE_CTX_get0_cert(store)) ? 1 : -1;
    }
    if (dtls->peer_match < 0) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

/* MARK: - Association */

static veza_dtls *create(veza_dtls_identity *identity, const char *remote_fingerprint, int mtu, int client);

veza_dtls *veza_dtls_create_server(veza_dtls_identity *identity, const char *remote_fingerprint,
                                   int mtu) {
    return create(identity, remote_fingerprint, mtu, 0);
}

veza_dtls *veza_dtls_create_client(veza_dtls_identity *identity, const char *remote_fingerprint,
                                   int mtu) {
    veza_dtls *dtls = create(identity, remote_fingerprint, mtu, 1);
    if (dtls == NULL) return NULL;
    /* The client speaks first: the ClientHello waits in wbio for veza_dtls_next_datagram(). */
    ERR_clear_error();
    int result = SSL_do_handshake(dtls->ssl);
    int error = SSL_get_error(dtls->ssl, result);
    ERR_clear_error();
    if (result != 1 && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        veza_dtls_free(dtls);
        return NULL;
    }
    return dtls;
}

static veza_dtls *create(veza_dtls_identity *identity, const char *remote_fingerprint, int mtu, int client) {
    if (identity == NULL || remote_fingerprint == NULL) return NULL;
    if (mtu <= 0) mtu = DEFAULT_MTU;
    if (mtu < MIN_MTU || mtu > MAX_MTU) return NULL;

    veza_dtls *dtls = calloc(1, sizeof *dtls);
    if (dtls == NULL) return NULL;
    dtls->state = VEZA_DTLS_HANDSHAKING;
    dtls->mtu = mtu;
    dtls->is_client = client;
    if (!parse_fingerprint(remote_fingerprint, dtls->remote_fingerprint)) {
        free(dtls);
        return NULL;
    }

    dtls->ssl = SSL_new(client ? identity->client_ctx : identity->ctx);
    dtls->rbio = BIO_new(BIO_s_mem());
    dtls->wbio = BIO_new(BIO_s_mem());
    if (dtls->ssl == NULL || dtls->rbio == NULL || dtls->wbio == NULL) {
        BIO_free(dtls->rbio);
        BIO_free(dtls->wbio);
        SSL_free(dtls->ssl);
        free(dtls);
        ERR_clear_error();
        return NULL;
    }
    /* An empty memory BIO must read as "retry later" (-1), not as end of file (0). */
    BIO_set_mem_eof_return(dtls->rbio, -1);
    BIO_set_mem_eof_return(dtls->wbio, -1);
    SSL_set_bio(dtls->ssl, dtls->rbio, dtls->wbio); /* ssl owns both from here */
    SSL_set_app_data(dtls->ssl, dtls);
    if (client) {
        SSL_set_connect_state(dtls->ssl);
    } else {
        SSL_set_accept_state(dtls->ssl);
    }
    /* With SSL_OP_NO_QUERY_MTU (inherited from the context) OpenSSL uses this MTU as is;
     * a memory BIO reports no per-datagram overhead, so each record, header included, is
     * sized to fit `mtu`. */
    if (!DTLS_set_link_mtu(dtls->ssl, mtu)) {
        veza_dtls_free(dtls);
        ERR_clear_error();
        return NULL;
    }
    return dtls;
}

void veza_dtls_free(veza_dtls *dtls) {
    if (dtls == NULL) return;
    SSL_free(dtls->ssl); /* frees both BIOs */
    free(dtls->pending);
    free(dtls);
}

int veza_dtls_state(const veza_dtls *dtls) {
    return dtls != NULL ? dtls->state : VEZA_DTLS_FAILED;
}

const char *veza_dtls_error(const veza_dtls *dtls) {
    return dtls != NULL ? dtls->error : "no DTLS association";
}

/* Moves to FAILED, keeping OpenSSL's first queued reason (or `fallback`) for
 * veza_dtls_error(). */
static void fail(veza_dtls *dtls, const char *fallback) {
    dtls->state = VEZA_DTLS_FAILED;
    unsigned long code = ERR_peek_error();
    if (dtls->peer_match < 0) {
        snprintf(dtls->error, sizeof dtls->error,
                 "peer certificate does not match the remote fingerprint");
    } else if (code != 0) {
        ERR_error_string_n(code, dtls->error, sizeof dtls->error);
    } else {
        snprintf(dtls->error, sizeof dtls->error, "%s", fallback);
    }
    ERR_clear_error();
}

/* Reads, and discards, what the peer sent after the handshake, which lets OpenSSL answer a
 * retransmitted final client flight and notice alerts and close_notify. */
static void process_records(veza_dtls *dtls) {
    unsigned char discard[2048];
    size_t count = 0;
    while (SSL_read_ex(dtls->ssl, discard, sizeof discard, &count)) {
        /* Application data: there is no data channel, so drop it. */
    }
    switch (SSL_get_error(dtls->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        break;
    case SSL_ERROR_ZERO_RETURN:
        dtls->state = VEZA_DTLS_CLOSED;
        break;
    default:
        fail(dtls, "DTLS read failed");
        break;
    }
    OPENSSL_cleanse(discard, sizeof discard);
}

int veza_dtls_feed(veza_dtls *dtls, const uint8_t *data, size_t len) {
    if (dtls == NULL) return VEZA_DTLS_FAILED;
    if (dtls->state < 0 || data == NULL || len == 0) return dtls->state;
    if (len > INT_MAX) return dtls->state; /* cannot be a datagram */
    /* OpenSSL's error queue is per thread and SSL_get_error() reads it: start clean. */
    ERR_clear_error();
    if (BIO_write(dtls->rbio, data, (int)len) != (int)len) {
        fail(dtls, "out of memory");
        return dtls->state;
    }

    if (dtls->state == VEZA_DTLS_HANDSHAKING) {
        int result = SSL_do_handshake(dtls->ssl);
        if (result != 1) {
            int error = SSL_get_error(dtls->ssl, result);
            if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
                fail(dtls, "DTLS handshake failed");
            }
            ERR_clear_error();
            return dtls->state;
        }
        /* The verify callback has already pinned the certificate; check again what the
         * session ended up with, in case a code path skipped the callback. */
        if (!peer_certificate_matches(dtls, SSL_get0_peer_certificate(dtls->ssl))) {
            dtls->peer_match = -1;
            /* Do not let our Finished complete the peer's handshake. */
            (void)BIO_reset(dtls->wbio);
            dtls->pending_len = 0;
            fail(dtls, "peer certificate does not match the remote fingerprint");
            return dtls->state;
        }
        dtls->state = VEZA_DTLS_CONNECTED;
    }
    /* Records that followed in the same datagram, or arrived after completion. */
    process_records(dtls);
    ERR_clear_error();
    return dtls->state;
}

/* MARK: - Output datagrams */

/* Appends what OpenSSL wrote to wbio since the last call to the pending records. */
static int take_output(veza_dtls *dtls) {
    size_t available = BIO_ctrl_pending(dtls->wbio);
    if (available == 0) return 1;
    if (dtls->pending_len + available > dtls->pending_cap) {
        size_t cap = dtls->pending_len + available;
        if (cap < 2 * (size_t)dtls->mtu) cap = 2 * (size_t)dtls->mtu;
        uint8_t *grown = realloc(dtls->pending, cap);
        if (grown == NULL) return 0;
        dtls->pending = grown;
        dtls->pending_cap = cap;
    }
    int n = BIO_read(dtls->wbio, dtls->pending + dtls->pending_len, (int)available);
    if (n > 0) dtls->pending_len += (size_t)n;
    return 1;
}

/* Length of the record at `p` (header included). OpenSSL only writes whole records; a
 * malformed tail is returned whole rather than withheld forever. */
static size_t record_length(const uint8_t *p, size_t available) {
    if (available < DTLS_RECORD_HEADER_LEN) return available;
    size_t length = DTLS_RECORD_HEADER_LEN + ((size_t)p[11] << 8 | p[12]);
    return length <= available ? length : available;
}

long veza_dtls_next_datagram(veza_dtls *dtls, uint8_t *out, size_t cap) {
    if (dtls == NULL || out == NULL) return -1;
    if (!take_output(dtls)) return -1;
    if (dtls->pending_len == 0) return 0;

    size_t limit = cap < (size_t)dtls->mtu ? cap : (size_t)dtls->mtu;
    size_t size = record_length(dtls->pending, dtls->pending_len);
    if (size > cap) return -1;
    /* The first record goes out even if larger than the MTU (OpenSSL sizes its records
     * to fit, so that does not happen); then as many whole records as fit. */
    while (size < dtls->pending_len) {
        size_t next = record_length(dtls->pending + size, dtls->pending_len - size);
        if (size + next > limit) break;
        size += next;
    }
    memcpy(out, dtls->pending, size);
    dtls->pending_len -= size;
    memmove(dtls->pending, dtls->pending + size, dtls->pending_len);
    return (long)size;
}

/* MARK: - Retransmission timer */

long veza_dtls_timeout_ms(veza_dtls *dtls) {
    if (dtls == NULL || dtls->state < 0) return -1;
    struct timeval remaining;
    if (DTLSv1_get_timeout(dtls->ssl, &remaining) != 1) return -1;
    /* Round up: waking early would only find the timer not yet expired. */
    return (long)remaining.tv_sec * 1000 + ((long)remaining.tv_usec + 999) / 1000;
}

int veza_dtls_handle_timeout(veza_dtls *dtls) {
    if (dtls == NULL) return VEZA_DTLS_FAILED;
    if (dtls->state < 0) return dtls->state;
    ERR_clear_error();
    /* 1 retransmitted, 0 not expired yet, -1 too many retransmissions (or an error). */
    if (DTLSv1_handle_timeout(dtls->ssl) < 0) fail(dtls, "DTLS handshake timed out");
    ERR_clear_error();
    return dtls->state;
}

/* MARK: - Keys and shutdown */

int veza_dtls_srtp_keys(veza_dtls *dtls, uint8_t local_key_salt[VEZA_SRTP_KEY_SALT_LEN],
                        uint8_t remote_key_salt[VEZA_SRTP_KEY_SALT_LEN]) {
    if (dtls == NULL || local_key_salt == NULL || remote_key_salt == NULL) return -1;
    if (dtls->state != VEZA_DTLS_CONNECTED) return -1;
    const SRTP_PROTECTION_PROFILE *profile = SSL_get_selected_srtp_profile(dtls->ssl);
    if (profile == NULL || profile->id != SRTP_AES128_CM_SHA1_80) return -1;

    enum { KEY = SRTP_MASTER_KEY_LEN, SALT = SRTP_MASTER_SALT_LEN };
    unsigned char material[2 * (KEY + SALT)];
    ERR_clear_error();
    if (SSL_export_keying_material(dtls->ssl, material, sizeof material,
                                   DTLS_SRTP_EXPORTER_LABEL, strlen(DTLS_SRTP_EXPORTER_LABEL),
                                   NULL, 0, 0) != 1) {
        ERR_clear_error();
        return -1;
    }
    /* RFC 5764 §4.2: client key | server key | client salt | server salt. */
    const unsigned char *client_key = material;
    const unsigned char *server_key = material + KEY;
    const unsigned char *client_salt = material + 2 * KEY;
    const unsigned char *server_salt = material + 2 * KEY + SALT;
    memcpy(local_key_salt, dtls->is_client ? client_key : server_key, KEY);
    memcpy(local_key_salt + KEY, dtls->is_client ? client_salt : server_salt, SALT);
    memcpy(remote_key_salt, dtls->is_client ? server_key : client_key, KEY);
    memcpy(remote_key_salt + KEY, dtls->is_client ? server_salt : client_salt, SALT);
    OPENSSL_cleanse(material, sizeof material);
    return 0;
}

void veza_dtls_shutdown(veza_dtls *dtls) {
    if (dtls == NULL || dtls->state == VEZA_DTLS_FAILED) return;
    /* OpenSSL refuses SSL_shutdown() during a handshake (and after a fatal error). After
     * the peer's close_notify it queues ours in reply. */
    if (SSL_is_init_finished(dtls->ssl) && !(SSL_get_shutdown(dtls->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        (void)SSL_shutdown(dtls->ssl);
        ERR_clear_error();
    }
    dtls->state = VEZA_DTLS_CLOSED;
}
