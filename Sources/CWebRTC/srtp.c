/*
 * SRTP for WebRTC: libsrtp2 keyed from the DTLS-SRTP exporter (see dtls.c), protecting
 * outgoing RTP/RTCP and unprotecting incoming RTCP.
 *
 * This file is glue only: all cryptography (SRTP key derivation, AES counter mode,
 * HMAC-SHA1, replay protection) is libsrtp2's, which delegates the AES and HMAC
 * primitives to its crypto backend (NSS in Debian's build, libnss3). What is here is the
 * policy setup and the one-time library initialisation.
 *
 * See include/CWebRTC.h for the API and its threading rules.
 */
#include "CWebRTC.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <srtp2/srtp.h>

_Static_assert(VEZA_SRTP_KEY_SALT_LEN == SRTP_AES_ICM_128_KEY_LEN_WSALT,
               "AES_CM_128 master key || master salt");

/*
 * Two libsrtp2 sessions, not one with a chained policy: a libsrtp2 session has a single
 * stream template, so srtp_create() rejects (srtp_err_status_bad_param) a policy list with
 * both ssrc_any_outbound and ssrc_any_inbound. libwebrtc splits its sessions the same way.
 */
struct veza_srtp {
    srtp_t outbound; /* local keys: srtp_protect(), srtp_protect_rtcp() */
    srtp_t inbound;  /* remote keys: srtp_unprotect_rtcp() */
};

/* MARK: - Library initialisation */

static pthread_once_t srtp_init_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t srtp_init_status = srtp_err_status_init_fail;

static void initialise_srtp(void) {
    /* Once per process and never undone: srtp_shutdown() would pull the crypto kernel
     * from under sessions that other threads may still use. */
    srtp_init_status = srtp_init();
}

/* MARK: - Session */

/* AES_CM_128_HMAC_SHA1_80 for both RTP and RTCP, the SRTP_AES128_CM_SHA1_80 profile. */
static void set_policy(srtp_policy_t *policy, srtp_ssrc_type_t direction, unsigned char *key_salt) {
    memset(policy, 0, sizeof *policy);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy->rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy->rtcp);
    policy->ssrc.type = direction;
    policy->key = key_salt; /* master key followed by master salt, copied by srtp_create() */
    policy->window_size = 1024;
    /* Lets a NACKed packet be sent again with its original sequence number. */
    policy->allow_repeat_tx = 1;
}

veza_srtp *veza_srtp_create(const uint8_t local_key_salt[VEZA_SRTP_KEY_SALT_LEN],
                            const uint8_t remote_key_salt[VEZA_SRTP_KEY_SALT_LEN]) {
    if (local_key_salt == NULL || remote_key_salt == NULL) return NULL;
    pthread_once(&srtp_init_once, initialise_srtp);
    if (srtp_init_status != srtp_err_status_ok) return NULL;

    veza_srtp *srtp = calloc(1, sizeof *srtp);
    if (srtp == NULL) return NULL;

    /* srtp_policy_t.key is not const: hand libsrtp2 copies, wiped afterwards. */
    unsigned char local[VEZA_SRTP_KEY_SALT_LEN];
    unsigned char remote[VEZA_SRTP_KEY_SALT_LEN];
    memcpy(local, local_key_salt, sizeof local);
    memcpy(remote, remote_key_salt, sizeof remote);

    srtp_policy_t outbound;
    srtp_policy_t inbound;
    set_policy(&outbound, ssrc_any_outbound, local);
    set_policy(&inbound, ssrc_any_inbound, remote);
    srtp_err_status_t status = srtp_create(&srtp->outbound, &outbound);
    if (status == srtp_err_status_ok) {
        status = srtp_create(&srtp->inbound, &inbound);
        if (status != srtp_err_status_ok) srtp_dealloc(srtp->outbound);
    }

    OPENSSL_cleanse(local, sizeof local);
    OPENSSL_cleanse(remote, sizeof remote);

    if (status != srtp_err_status_ok) {
        free(srtp);
        return NULL;
    }
    return srtp;
}

void veza_srtp_free(veza_srtp *srtp) {
    if (srtp == NULL) return;
    /* srtp_dealloc() wipes the session keys. */
    srtp_dealloc(srtp->outbound);
    srtp_dealloc(srtp->inbound);
    free(srtp);
}

int veza_srtp_protect(veza_srtp *srtp, uint8_t *packet, int *len) {
    if (srtp == NULL || packet == NULL || len == NULL) return srtp_err_status_bad_param;
    return (int)srtp_protect(srtp->outbound, packet, len);
}

int veza_srtp_protect_rtcp(veza_srtp *srtp, uint8_t *packet, int *len) {
    if (srtp == NULL || packet == NULL || len == NULL) return srtp_err_status_bad_param;
    return (int)srtp_protect_rtcp(srtp->outbound, packet, len);
}

int veza_srtp_unprotect(veza_srtp *srtp, uint8_t *packet, int *len) {
    if (srtp == NULL || packet == NULL || len == NULL) return srtp_err_status_bad_param;
    return (int)srtp_unprotect(srtp->inbound, packet, len);
}

int veza_srtp_unprotect_rtcp(veza_srtp *srtp, uint8_t *packet, int *len) {
    if (srtp == NULL || packet == NULL || len == NULL) return srtp_err_status_bad_param;
    return (int)srtp_unprotect_rtcp(srtp->inbound, packet, len);
}
