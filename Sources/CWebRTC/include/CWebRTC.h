/*
 * CWebRTC: a minimal C surface over OpenSSL 3.0 (DTLS 1.2 with the use_srtp extension,
 * RFC 5764) and libsrtp2 (SRTP/SRTCP), for WebRTC (WHEP) playback from Swift.
 *
 * This header deliberately includes no OpenSSL or libsrtp2 header: every object is an
 * opaque pointer and every parameter a plain C type, so Swift never sees those libraries.
 *
 * Threading: a veza_dtls_identity is immutable once created and may be shared by any
 * number of threads (each association takes its own reference to what it needs). A
 * veza_dtls or veza_srtp must be used by one thread at a time (serialise calls on an
 * event loop or behind a lock); different objects may be used concurrently.
 *
 * Link with -lssl -lcrypto -lsrtp2.
 */
#ifndef VEZA_CWEBRTC_H
#define VEZA_CWEBRTC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MARK: - Identity */

/** A self-signed ECDSA P-256 certificate and its key (the local DTLS identity). */
typedef struct veza_dtls_identity veza_dtls_identity;

/** Bytes needed for a fingerprint string: 32 "XX" pairs, 31 colons and the NUL. */
#define VEZA_DTLS_FINGERPRINT_SIZE 96

/**
 * Generates a new P-256 key and a self-signed certificate for it: CN=veza-stream, random
 * positive 63-bit serial, SHA-256 signature, valid from one day ago (clock skew) until 30
 * days from now. Returns NULL on failure.
 */
veza_dtls_identity *veza_dtls_identity_create(void);

/**
 * Releases the identity. Associations created from it stay valid: they hold their own
 * references. NULL is ignored.
 */
void veza_dtls_identity_free(veza_dtls_identity *identity);

/**
 * Writes the SHA-256 fingerprint of the certificate (over its DER encoding) as upper-case
 * hex pairs separated by colons, "AB:CD:...", NUL-terminated: the value of the SDP
 * attribute "a=fingerprint:sha-256 ...". `cap` must be at least VEZA_DTLS_FINGERPRINT_SIZE.
 * Returns 0 on success, -1 on bad arguments.
 */
int veza_dtls_identity_fingerprint(const veza_dtls_identity *identity, char *out, size_t cap);

/* MARK: - DTLS association */

/** One server-side DTLS association, fed and drained through memory (no socket). */
typedef struct veza_dtls veza_dtls;

/** Values of veza_dtls_state() (and of veza_dtls_feed()). */
#define VEZA_DTLS_HANDSHAKING 0   /**< Handshake in progress. */
#define VEZA_DTLS_CONNECTED 1     /**< Handshake complete: SRTP keys can be exported. */
#define VEZA_DTLS_FAILED (-1)     /**< Fatal error: fingerprint mismatch, alert, timeout. */
#define VEZA_DTLS_CLOSED (-2)     /**< close_notify received, or veza_dtls_shutdown(). */

/**
 * Creates a DTLS server (the WHEP answerer is a=setup:passive) using `identity`.
 * `remote_fingerprint` is the SHA-256 fingerprint from the peer's SDP, "AB:CD:..." with
 * 32 hex pairs (compared case-insensitively): the handshake fails, with a bad_certificate
 * alert to the peer, unless the peer's certificate matches it. Self-signed certificates
 * are otherwise accepted as they are (no CA, no validity period check), as WebRTC requires.
 * `mtu` is the largest datagram to produce (DTLS record bytes, without IP/UDP headers),
 * 256...65535, or <= 0 for the default of 1200. Returns NULL on bad arguments or failure.
 */
veza_dtls *veza_dtls_create_server(veza_dtls_identity *identity, const char *remote_fingerprint,
                                   int mtu);

/**
 * Creates a DTLS client (the offerer's side, a=setup:active) using `identity`, with the same
 * pinning of the peer's certificate to `remote_fingerprint`; its ClientHello is ready for
 * veza_dtls_next_datagram() at once. For load generators and tests; the host is a server.
 * veza_dtls_srtp_keys() then gives the client's keys as local and the server's as remote.
 */
veza_dtls *veza_dtls_create_client(veza_dtls_identity *identity, const char *remote_fingerprint,
                                   int mtu);

/** Releases the association (without sending anything). NULL is ignored. */
void veza_dtls_free(veza_dtls *dtls);

/**
 * Feeds one received datagram (one or more DTLS records) and advances the handshake.
 * Returns the new state: VEZA_DTLS_HANDSHAKING, VEZA_DTLS_CONNECTED (keys ready),
 * VEZA_DTLS_FAILED or VEZA_DTLS_CLOSED (the peer sent close_notify). Datagrams fed after
 * completion are still processed: they may hold a retransmitted client flight (answered by
 * retransmitting ours), alerts or close_notify. Application data is discarded (no data
 * channels). Once FAILED or CLOSED, input is ignored. After every call, send whatever
 * veza_dtls_next_datagram() yields.
 */
int veza_dtls_feed(veza_dtls *dtls, const uint8_t *data, size_t len);

/** The current state (see VEZA_DTLS_*); VEZA_DTLS_FAILED for NULL. */
int veza_dtls_state(const veza_dtls *dtls);

/**
 * A short description of why the association failed ("" if it has not), e.g. "peer
 * certificate does not match the remote fingerprint" or OpenSSL's reason for an alert.
 * Valid until the next call on `dtls`.
 */
const char *veza_dtls_error(const veza_dtls *dtls);

/**
 * Takes the next datagram to send: whole DTLS records, packed up to the MTU, never
 * splitting a record. Returns its length, 0 when nothing is pending, or -1 if `cap` is
 * too small for the next record (nothing is consumed; a buffer of the MTU always fits).
 * Call repeatedly until it returns 0.
 */
long veza_dtls_next_datagram(veza_dtls *dtls, uint8_t *out, size_t cap);

/**
 * Milliseconds until the handshake retransmission timer fires (0 if it already has), or
 * -1 when no timer is running. OpenSSL's timer starts at 1 s and doubles up to 60 s; it
 * only gives up after 12 retransmissions (minutes), so callers should also enforce their
 * own handshake deadline.
 */
long veza_dtls_timeout_ms(veza_dtls *dtls);

/**
 * Runs the retransmission timer if it has expired: the last flight is then queued again
 * for veza_dtls_next_datagram(). Does nothing if the timer has not expired. After too many
 * retransmissions the association fails. Returns the new state.
 */
int veza_dtls_handle_timeout(veza_dtls *dtls);

/** Length of an SRTP master key followed by its master salt (AES_CM_128: 16 + 14). */
#define VEZA_SRTP_KEY_SALT_LEN 30

/**
 * Once CONNECTED: exports the SRTP_AES128_CM_SHA1_80 keying material (RFC 5764 §4.2, label
 * "EXTRACTOR-dtls_srtp", laid out client key | server key | client salt | server salt)
 * and writes the local master key||salt and the remote one (server: its own and the client's), 30 bytes
 * each. Returns 0, or -1 if not connected or no SRTP profile was negotiated.
 */
int veza_dtls_srtp_keys(veza_dtls *dtls, uint8_t local_key_salt[VEZA_SRTP_KEY_SALT_LEN],
                        uint8_t remote_key_salt[VEZA_SRTP_KEY_SALT_LEN]);

/**
 * Queues a close_notify alert (take it with veza_dtls_next_datagram()) if the handshake
 * had completed, and moves to VEZA_DTLS_CLOSED unless already FAILED.
 */
void veza_dtls_shutdown(veza_dtls *dtls);

/* MARK: - SRTP session */

/**
 * SRTP for one association, AES_CM_128_HMAC_SHA1_80 for both RTP and RTCP: outbound
 * streams (any SSRC) use the local keys, inbound streams (any SSRC) the remote keys;
 * 1024-packet replay window; resending an already-sent sequence number is allowed (NACK
 * retransmission). Internally two libsrtp2 sessions, one per direction.
 */
typedef struct veza_srtp veza_srtp;

/** Spare bytes needed after an RTP packet for veza_srtp_protect() (10-byte tag used). */
#define VEZA_SRTP_RTP_SPARE 16
/** Spare bytes needed after an RTCP packet for veza_srtp_protect_rtcp() (4 + 10 used). */
#define VEZA_SRTCP_SPARE 20

/**
 * Creates a session from the keys of veza_dtls_srtp_keys() (master key||salt, 30 bytes
 * each). Returns NULL on failure.
 */
veza_srtp *veza_srtp_create(const uint8_t local_key_salt[VEZA_SRTP_KEY_SALT_LEN],
                            const uint8_t remote_key_salt[VEZA_SRTP_KEY_SALT_LEN]);

/** Releases the session. NULL is ignored. */
void veza_srtp_free(veza_srtp *srtp);

/**
 * Encrypts and authenticates an RTP packet in place. `*len` is the packet length on input
 * and the SRTP length on output; the buffer must have VEZA_SRTP_RTP_SPARE writable bytes
 * beyond `*len`. Returns 0 or libsrtp2's srtp_err_status_t (e.g. 2 bad_param).
 */
int veza_srtp_protect(veza_srtp *srtp, uint8_t *packet, int *len);

/**
 * Encrypts and authenticates a (compound) RTCP packet in place, appending the SRTCP index
 * and tag; the buffer must have VEZA_SRTCP_SPARE writable bytes beyond `*len`.
 * Returns 0 or libsrtp2's srtp_err_status_t.
 */
int veza_srtp_protect_rtcp(veza_srtp *srtp, uint8_t *packet, int *len);

/**
 * Authenticates and decrypts a received SRTP packet in place; `*len` becomes the RTP length.
 * Returns 0 or libsrtp2's srtp_err_status_t: drop the packet on any non-zero result.
 */
int veza_srtp_unprotect(veza_srtp *srtp, uint8_t *packet, int *len);

/**
 * Authenticates and decrypts a received SRTCP packet in place; `*len` becomes the RTCP
 * length. Returns 0 or libsrtp2's srtp_err_status_t (e.g. 7 auth_fail, 9 replay_fail,
 * 10 replay_old): drop the packet on any non-zero result.
 */
int veza_srtp_unprotect_rtcp(veza_srtp *srtp, uint8_t *packet, int *len);

#ifdef __cplusplus
}
#endif

#endif /* VEZA_CWEBRTC_H */
