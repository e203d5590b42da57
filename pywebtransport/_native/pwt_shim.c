/* PyWebTransport's C shim over msquic.
 *
 * Every msquic callback lands here, on msquic's worker threads.  Callbacks
 * never call into Python: they copy what Python needs into a pwt_event
 * record, append it to the object's pwt_queue and, on the queue's
 * empty -> non-empty transition, make its fd readable.  The asyncio loop
 * drains all pending records with one pwt_queue_poll() call.
 *
 * Ownership rules (msquic's, enforced here):
 *  - send buffers (QUIC_BUFFER + bytes) are one malloc'd block owned by the
 *    shim until SEND_COMPLETE (streams) or a final send state (datagrams);
 *  - received bytes are copied in the RECEIVE callback; per-stream unread
 *    bytes are bounded: above the limit the callback accepts 0 bytes, which
 *    pauses msquic's receive path until pwt_stream_consumed() re-enables it;
 *  - handles are closed by Python, after it has seen the object's
 *    SHUTDOWN_COMPLETE (STOP_COMPLETE for listeners), never from a callback
 *    of another object; the one exception is a stream Python released
 *    (pwt_stream_release_when_done), which the shim closes inside its own
 *    SHUTDOWN_COMPLETE callback;
 *  - stream structs are freed at the queue's next poll ("grave"), so that no
 *    record handed to Python can name an address a new stream reuses.
 */
#define _GNU_SOURCE
/* Preview declarations (QUIC_GLOBAL_EXECUTION_CONFIG); the library always
 * implements them, the macro only gates the header. */
#define QUIC_API_ENABLE_PREVIEW_FEATURES 1
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>

#include "pwt_platform.h" /* threads, atomics, dlopen, wake-up fd per OS */
#include "msquic.h"
#include "pwt_api.h"

/* Datagram payload that fits any QUIC path: the 1200-byte minimum packet less the short
 * header with a 20-byte connection ID and 4-byte packet number, the AEAD tag and the
 * DATAGRAM frame header. */
#define PWT_DGRAM_MIN_PATH_PAYLOAD (1200u - (1u + 20u + 4u) - 16u - 3u)

/* Received chunks at least this large are handed to Python in msquic's own
 * buffers (PWT_EV_STREAM_RECEIVE_ZC, see push_receive_zc); smaller ones are copied. */
#define PWT_ZC_MIN (4u * 1024u)
#define PWT_ZC_MAX_BUFS 8u

/* Inline bytes of a peer stream's start record (its first bytes, e.g. an HTTP/3
 * SETTINGS frame or a small request, usually fit). */
#define PWT_START_INLINE 256u


/* msquic reports queued calls as PENDING; Python only needs ok/not ok. */
static uint32_t norm(QUIC_STATUS st) { return QUIC_SUCCEEDED(st) ? 0 : (uint32_t)st; }

/* ------------------------------------------------------------------ */
/* Library state                                                       */

static const QUIC_API_TABLE *MsQuic;
static HQUIC Registration;
static void *LibHandle;
static void (*CloseFn)(const void *);
static atomic_uint_fast64_t LiveObjects;
static const int64_t DefaultRecvLimit = 1 << 20;
static const int64_t DefaultSendHighWater = 1 << 20;
static const int64_t DefaultMaxEvents = 4096;

struct pwt_node {
    struct pwt_node *next;
    pwt_conn *conn;       /* connection the event counts against, or NULL */
    pwt_stream *stream;   /* stream the record is about (its own records), or NULL */
    unsigned char *ext;   /* RECEIVE: growable payload (coalesced chunks) */
    uint32_t cap;         /* capacity of ext */
    pwt_event ev;
    unsigned char data[];
};
typedef struct pwt_node pwt_node;

struct pwt_queue {
    pthread_mutex_t mu;
    pwt_node *head;
    pwt_node *tail;
    uint64_t count;
    int wake_pending;
    pwt_fd_t rfd; /* Windows: the read end's SOCKET */
    pwt_fd_t wfd;
    pwt_node *batch; /* handed to Python by the last poll */
    atomic_int nonempty; /* head != NULL, readable without the lock (pwt_queue_spin) */
    /* Streams the shim closed itself (pwt_stream_release_when_done): freed at the
     * next poll, once Python is done with the batch that may still name them. */
    pwt_stream *grave;
};

struct pwt_config {
    HQUIC h;
};

struct pwt_listener {
    HQUIC h;
    pwt_queue *q;
    HQUIC cfg;
    int64_t recv_limit;
    int64_t send_high_water;
    int64_t max_events;
    int send_tickets;
};

struct pwt_conn {
    HQUIC h;
    pwt_queue *q;
    /* Limits inherited by every stream of the connection at creation, so
     * they apply before Python has seen the stream. */
    int64_t recv_limit;
    int64_t send_high_water;
    atomic_uint dgram_max;
    char alpn[256];
    atomic_uint alpn_len;
    /* Captured on the worker thread at CONNECTED: reading them later from
     * Python would be a blocking cross-thread GetParam. */
    pthread_mutex_t addr_mu; /* written by callbacks, read by Python */
    pwt_addr local_addr;
    pwt_addr remote_addr;
    int addrs_known;
    atomic_uint addr_gen; /* bumped whenever an address is (re)written: Python caches them */
    /* Event accounting, guarded by q->mu: every event of the connection and
     * of its streams counts until Python polls it. */
    uint64_t queued;
    uint64_t peak_queued;
    int64_t max_events;
    atomic_uint_fast64_t dgram_dropped;
    atomic_int_fast64_t live_streams;
    atomic_int_fast64_t peak_streams;
    atomic_int allow_early;
    atomic_int want_tickets; /* client: queue the server's resumption tickets */
    atomic_int reliable_reset; /* RESET_STREAM_AT negotiated (read by Python on demand) */
    int send_ticket; /* server: issue a resumption ticket at CONNECTED */
    QUIC_TLS_SECRETS *secrets; /* client, key logging on: filled by msquic during the handshake */
};

struct pwt_stream {
    HQUIC h;
    pwt_queue *q;
    pwt_conn *c;
    pwt_node *rx_node; /* its RECEIVE record still queued (coalescing), under q->mu */
    /* A peer stream's PEER_STREAM_STARTED record, not yet queued (under q->mu):
     * it is queued with the stream's first record, and carries the first
     * received bytes itself, so a new peer stream costs Python one record. */
    pwt_node *start_node;
    atomic_int_fast64_t outstanding; /* bytes queued to msquic, not yet SEND_COMPLETE */
    atomic_int_fast64_t buffered;    /* bytes handed to Python, not yet consumed */
    atomic_int paused;
    atomic_int want_writable;
    int64_t recv_limit;
    int64_t send_high_water;
    /* The id Python predicted for a local stream (-1: none): a START_COMPLETE
     * that confirms it is not queued, so opening a stream costs Python no
     * wake-up.  Failures and mismatches are always reported. */
    int64_t expected_id;
    int fin_queued; /* a RECEIVE with FIN was queued: PEER_SEND_SHUTDOWN says nothing new */
    /* PWT_DONE_RELEASED: Python is done with the stream (pwt_stream_release_when_done);
     * PWT_DONE_COMPLETE: msquic indicated SHUTDOWN_COMPLETE.  Whoever sets the
     * second bit closes the handle: the shim inside the callback (no record), or
     * Python when the queued SHUTDOWN_COMPLETE record reaches it. */
    atomic_int done;
    int queued;            /* its records in the queue (not yet polled), under q->mu */
    pwt_stream *grave_next;
};

#define PWT_DONE_RELEASED 1
#define PWT_DONE_COMPLETE 2

typedef struct pwt_send {
    QUIC_BUFFER buf;
    pwt_stream *s;
    uint64_t len;
    unsigned char data[];
} pwt_send;

typedef struct pwt_dgram {
    QUIC_BUFFER buf;
    unsigned char data[];
} pwt_dgram;

/* ------------------------------------------------------------------ */
/* Event queue                                                         */

static pwt_node *node_new(uint32_t len) {
    pwt_node *n = (pwt_node *)malloc(sizeof(pwt_node) + len);
    if (n == NULL) {
        return NULL;
    }
    memset(n, 0, sizeof(pwt_node));
    n->ev.len = len;
    return n;
}

static void node_free(pwt_node *n) {
    free(n->ext);
    free(n);
}

static void signal_fd(pwt_queue *q) { pwt_wake_signal(q->wfd); }

static void drain_fd(pwt_queue *q) { pwt_wake_drain(q->rfd); }

/* Caller holds q->mu. */
static int queue_link(pwt_queue *q, pwt_node *n) {
    int signal = 0;
    n->next = NULL;
    if (n->stream != NULL) {
        n->stream->queued++;
    }
    if (n->conn) {
        pwt_conn *c = n->conn;
        c->queued++;
        if (c->queued > c->peak_queued) {
            c->peak_queued = c->queued;
        }
    }
    if (q->tail) {
        q->tail->next = n;
    } else {
        q->head = n;
        atomic_store_explicit(&q->nonempty, 1, memory_order_release);
    }
    q->tail = n;
    q->count++;
    if (!q->wake_pending) {
        q->wake_pending = 1;
        signal = 1;
    }
    return signal;
}

/* Caller holds q->mu: queue a peer stream's pending start record (before
 * any other record of the stream). */
static int link_start(pwt_queue *q, pwt_stream *s) {
    pwt_node *start = s->start_node;
    if (start == NULL) {
        return 0;
    }
    s->start_node = NULL;
    return queue_link(q, start);
}

/* Caller holds q->mu, released here: queue `n`, a data record of `s`, note a
 * FIN it carries, and wake Python if this (or `signal`) made the queue non-empty. */
static void link_data_and_unlock(pwt_queue *q, pwt_stream *s, pwt_node *n, int fin, int signal) {
    signal |= queue_link(q, n);
    if (fin) {
        s->fin_queued = 1;
    }
    pthread_mutex_unlock(&q->mu);
    if (signal) {
        signal_fd(q);
    }
}

/* Append a record; `s` (or NULL) is the stream it belongs to: any record of
 * a stream ends coalescing into its queued RECEIVE, keeping order. */
static void queue_push_for(pwt_queue *q, pwt_node *n, pwt_stream *s) {
    pthread_mutex_lock(&q->mu);
    int signal = 0;
    if (s != NULL && (atomic_load(&s->done) & PWT_DONE_RELEASED)) {
        pthread_mutex_unlock(&q->mu); /* Python is done with it: nothing to tell */
        node_free(n);
        return;
    }
    if (s != NULL) {
        s->rx_node = NULL;
        signal = link_start(q, s);
        n->stream = s;
    }
    signal |= queue_link(q, n);
    pthread_mutex_unlock(&q->mu);
    if (signal) {
        signal_fd(q);
    }
}

static void queue_push(pwt_queue *q, pwt_node *n) { queue_push_for(q, n, NULL); }

static void push_ev(pwt_queue *q, pwt_conn *conn, pwt_stream *s, int32_t type, void *obj,
                    void *obj2, uint64_t u0, uint64_t u1, uint64_t u2) {
    pwt_node *n = node_new(0);
    if (n == NULL) {
        return; /* out of memory: nothing sane to do on a worker thread */
    }
    n->conn = conn;
    n->ev.type = type;
    n->ev.obj = obj;
    n->ev.obj2 = obj2;
    n->ev.u0 = u0;
    n->ev.u1 = u1;
    n->ev.u2 = u2;
    queue_push_for(q, n, s);
}

static void push_simple(pwt_queue *q, int32_t type, void *obj, void *obj2,
                        uint64_t u0, uint64_t u1, uint64_t u2) {
    push_ev(q, NULL, NULL, type, obj, obj2, u0, u1, u2);
}

static void free_list(pwt_node *n) {
    while (n) {
        pwt_node *next = n->next;
        node_free(n);
        n = next;
    }
}

pwt_queue *pwt_queue_new(void) {
    pwt_queue *q = (pwt_queue *)calloc(1, sizeof(pwt_queue));
    if (q == NULL) {
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    if (pwt_wake_open(&q->rfd, &q->wfd) != 0) {
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

/* Windows: a SOCKET; kernel handles have 32 significant bits, so it fits. */
int32_t pwt_queue_fd(pwt_queue *q) { return (int32_t)q->rfd; }

static void free_grave(pwt_stream *g) {
    while (g != NULL) {
        pwt_stream *next = g->grave_next;
        free(g);
        g = next;
    }
}

int32_t pwt_queue_poll(pwt_queue *q, pwt_event *out, int32_t cap) {
    free_list(q->batch);
    q->batch = NULL;
    pthread_mutex_lock(&q->mu);
    pwt_stream *grave = q->grave;
    q->grave = NULL;
    pthread_mutex_unlock(&q->mu);
    free_grave(grave);
    pthread_mutex_lock(&q->mu);
    pwt_node *first = q->head;
    pwt_node *last = NULL;
    pwt_node *n = first;
    int32_t k = 0;
    while (n && k < cap) {
        last = n;
        n = n->next;
        k++;
    }
    q->head = n;
    if (n == NULL) {
        q->tail = NULL;
        atomic_store_explicit(&q->nonempty, 0, memory_order_relaxed);
    }
    q->count -= (uint64_t)k;
    {
        int32_t j = 0;
        for (pwt_node *p = first; p && j < k; p = p->next, j++) {
            if (p->conn) {
                p->conn->queued--;
            }
            if (p->stream) {
                p->stream->queued--;
            }
            if (p->ev.type == PWT_EV_STREAM_RECEIVE || p->ev.type == PWT_EV_CONN_PEER_STREAM_STARTED) {
                pwt_stream *rs = (pwt_stream *)(p->ev.type == PWT_EV_STREAM_RECEIVE ? p->ev.obj : p->ev.obj2);
                if (rs->rx_node == p) {
                    rs->rx_node = NULL; /* handed out: no more appends */
                }
            }
        }
    }
    if (q->head == NULL) {
        /* Drained: clear the fd so the loop sleeps until the next push. */
        q->wake_pending = 0;
        drain_fd(q);
    }
    pthread_mutex_unlock(&q->mu);
    if (last) {
        last->next = NULL;
    }
    q->batch = first;
    int32_t i = 0;
    for (pwt_node *p = first; p && i < k; p = p->next, i++) {
        out[i] = p->ev;
        out[i].data = p->ev.len ? (const char *)(p->ext ? p->ext : p->data) : NULL;
    }
    return k;
}

/* The event loop, about to sleep in its selector, waits here a little longer
 * for the next record instead (the reply to what it just sent, typically):
 * that saves the wake-up of a sleeping thread, the largest share of a small
 * message's latency on a busy machine. Reads the queue's nonempty flag without
 * the lock: it is only a hint, the records are taken by pwt_queue_poll. */
#ifndef _WIN32
#include <sched.h>
#include <time.h>
static uint64_t spin_clock_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
#endif

int32_t pwt_queue_spin(pwt_queue *q, int32_t max_us) {
#ifdef _WIN32
    (void)q; /* the Windows wake-up is a socket read: no spinning there */
    (void)max_us;
    return 0;
#else
    if (atomic_load_explicit(&q->nonempty, memory_order_acquire)) {
        return 1;
    }
    uint64_t end = spin_clock_us() + (uint64_t)(max_us > 0 ? max_us : 0);
    for (uint32_t i = 1;; ++i) {
        if (atomic_load_explicit(&q->nonempty, memory_order_relaxed)) {
            return 1;
        }
        if ((i & 15) == 0) {
            if (spin_clock_us() >= end) {
                return 0;
            }
            sched_yield(); /* on a busy machine, let the thread we wait for run */
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    }
#endif
}

static void jobs_flush(void);

void pwt_queue_free(pwt_queue *q) {
    if (q == NULL) {
        return;
    }
    jobs_flush(); /* closes still running on the helper thread touch the queue */
    free_list(q->batch);
    free_list(q->head);
    free_grave(q->grave);
    pwt_wake_close(q->rfd, q->wfd);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* ------------------------------------------------------------------ */
/* Library                                                             */

int32_t pwt_is_initialized(void) { return MsQuic != NULL; }

uint64_t pwt_live_objects(void) {
    jobs_flush(); /* closes handed to the helper thread count as done once run */
    return atomic_load(&LiveObjects);
}

void pwt_conn_set_limits(pwt_conn *c, int64_t recv_limit, int64_t send_high_water) {
    if (recv_limit > 0) {
        c->recv_limit = recv_limit;
    }
    if (send_high_water > 0) {
        c->send_high_water = send_high_water;
    }
}

void pwt_listener_set_limits(pwt_listener *l, int64_t recv_limit, int64_t send_high_water) {
    if (recv_limit > 0) {
        l->recv_limit = recv_limit;
    }
    if (send_high_water > 0) {
        l->send_high_water = send_high_water;
    }
}

void pwt_conn_set_event_limit(pwt_conn *c, int64_t max_events) {
    if (max_events > 0) {
        pthread_mutex_lock(&c->q->mu);
        c->max_events = max_events;
        pthread_mutex_unlock(&c->q->mu);
    }
}

void pwt_listener_set_event_limit(pwt_listener *l, int64_t max_events) {
    if (max_events > 0) {
        l->max_events = max_events;
    }
}

void pwt_listener_set_resumption(pwt_listener *l, int32_t send_tickets) {
    l->send_tickets = send_tickets ? 1 : 0;
}

void pwt_conn_counters_get(pwt_conn *c, pwt_conn_counters *out) {
    pthread_mutex_lock(&c->q->mu);
    out->queued_events = c->queued;
    out->peak_queued_events = c->peak_queued;
    pthread_mutex_unlock(&c->q->mu);
    out->datagrams_dropped = atomic_load(&c->dgram_dropped);
    out->live_streams = (uint64_t)atomic_load(&c->live_streams);
    out->peak_live_streams = (uint64_t)atomic_load(&c->peak_streams);
}

uint32_t pwt_init(const char *lib_path, int32_t execution_profile, int32_t polling_idle_us,
                  int32_t worker_count, char *err, uint32_t errlen) {
    if (MsQuic != NULL) {
        return QUIC_STATUS_SUCCESS;
    }
    LibHandle = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (LibHandle == NULL) {
        snprintf(err, errlen, "cannot load msquic from %s: %s", lib_path, dlerror());
        return QUIC_STATUS_NOT_FOUND;
    }
    QUIC_STATUS (*open_fn)(uint32_t, const void **) =
        (QUIC_STATUS(*)(uint32_t, const void **))dlsym(LibHandle, "MsQuicOpenVersion");
    CloseFn = (void (*)(const void *))dlsym(LibHandle, "MsQuicClose");
    if (open_fn == NULL || CloseFn == NULL) {
        snprintf(err, errlen, "%s does not export MsQuicOpenVersion/MsQuicClose", lib_path);
        dlclose(LibHandle);
        LibHandle = NULL;
        return QUIC_STATUS_NOT_FOUND;
    }
    const void *api = NULL;
    QUIC_STATUS st = open_fn(QUIC_API_VERSION_2, &api);
    if (QUIC_FAILED(st)) {
        snprintf(err, errlen, "MsQuicOpenVersion(2) failed: 0x%x", (unsigned)st);
        dlclose(LibHandle);
        LibHandle = NULL;
        return st;
    }
    MsQuic = (const QUIC_API_TABLE *)api;
    if (polling_idle_us >= 0 || worker_count > 0) {
        /* Workers busy-poll this long after their last work before sleeping
         * (trades CPU for wake-up latency); worker_count > 0 limits msquic to
         * that many worker threads (partitions), on CPUs 0..n-1, which the
         * caller keeps within the CPU count (msquic asserts it). Only settable
         * before the first registration. */
        uint16_t count = worker_count > 0 ? (uint16_t)(worker_count < 256 ? worker_count : 256) : 0;
        union {
            QUIC_GLOBAL_EXECUTION_CONFIG ec;
            unsigned char bytes[QUIC_GLOBAL_EXECUTION_CONFIG_MIN_SIZE + 256 * sizeof(uint16_t)];
        } u;
        memset(&u, 0, sizeof(u));
        u.ec.PollingIdleTimeoutUs = polling_idle_us >= 0 ? (uint32_t)polling_idle_us : 0;
        u.ec.ProcessorCount = count;
        for (uint16_t i = 0; i < count; ++i) {
            u.ec.ProcessorList[i] = i;
        }
        st = MsQuic->SetParam(NULL, QUIC_PARAM_GLOBAL_EXECUTION_CONFIG,
                              (uint32_t)(QUIC_GLOBAL_EXECUTION_CONFIG_MIN_SIZE + count * sizeof(uint16_t)), &u.ec);
        /* An msquic that refuses the setting (older system library) still
         * works, only without worker polling. */
        (void)st;
    }
    QUIC_REGISTRATION_CONFIG rc = {"pywebtransport",
                                   (QUIC_EXECUTION_PROFILE)execution_profile};
    st = MsQuic->RegistrationOpen(&rc, &Registration);
    if (QUIC_FAILED(st)) {
        snprintf(err, errlen, "RegistrationOpen failed: 0x%x", (unsigned)st);
        CloseFn(MsQuic);
        MsQuic = NULL;
        return st;
    }
    return QUIC_STATUS_SUCCESS;
}

/* Start a detached thread running fn(NULL); 0 on success. */
static int start_detached(void *(*fn)(void *)) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, fn, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

static atomic_int RegistrationClosed;

static void *registration_close_thread(void *arg) {
    (void)arg;
    MsQuic->RegistrationClose(Registration);
    atomic_store(&RegistrationClosed, 1);
    return NULL;
}

int32_t pwt_cleanup(void) {
    if (MsQuic == NULL) {
        return 1;
    }
    jobs_flush();
    /* Only called once every object has been closed, yet RegistrationClose
     * waits until msquic has freed each connection internally.  At interpreter
     * exit a handle msquic still holds must not hang the process: wait at most
     * 5 s, then leave the library loaded (the process is ending anyway). */
    atomic_store(&RegistrationClosed, 0);
    if (start_detached(registration_close_thread) != 0) {
        registration_close_thread(NULL);
    }
    for (int i = 0; i < 5000 && !atomic_load(&RegistrationClosed); i++) {
        pwt_sleep_ms(1);
    }
    if (!atomic_load(&RegistrationClosed)) {
        return 0;
    }
    Registration = NULL;
    CloseFn(MsQuic);
    MsQuic = NULL;
    return 1;
}

const char *pwt_status_name(uint32_t st) {
    switch (st) {
    case QUIC_STATUS_SUCCESS: return "SUCCESS";
    case QUIC_STATUS_PENDING: return "PENDING";
    case QUIC_STATUS_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case QUIC_STATUS_INVALID_PARAMETER: return "INVALID_PARAMETER";
    case QUIC_STATUS_INVALID_STATE: return "INVALID_STATE";
    case QUIC_STATUS_NOT_SUPPORTED: return "NOT_SUPPORTED";
    case QUIC_STATUS_NOT_FOUND: return "NOT_FOUND";
    case QUIC_STATUS_BUFFER_TOO_SMALL: return "BUFFER_TOO_SMALL";
    case QUIC_STATUS_HANDSHAKE_FAILURE: return "HANDSHAKE_FAILURE";
    case QUIC_STATUS_ABORTED: return "ABORTED";
    case QUIC_STATUS_ADDRESS_IN_USE: return "ADDRESS_IN_USE";
    case QUIC_STATUS_INVALID_ADDRESS: return "INVALID_ADDRESS";
    case QUIC_STATUS_CONNECTION_TIMEOUT: return "CONNECTION_TIMEOUT";
    case QUIC_STATUS_CONNECTION_IDLE: return "CONNECTION_IDLE";
    case QUIC_STATUS_UNREACHABLE: return "UNREACHABLE";
    case QUIC_STATUS_INTERNAL_ERROR: return "INTERNAL_ERROR";
    case QUIC_STATUS_CONNECTION_REFUSED: return "CONNECTION_REFUSED";
    case QUIC_STATUS_PROTOCOL_ERROR: return "PROTOCOL_ERROR";
    case QUIC_STATUS_VER_NEG_ERROR: return "VER_NEG_ERROR";
    case QUIC_STATUS_TLS_ERROR: return "TLS_ERROR";
    case QUIC_STATUS_USER_CANCELED: return "USER_CANCELED";
    case QUIC_STATUS_ALPN_NEG_FAILURE: return "ALPN_NEG_FAILURE";
    case QUIC_STATUS_STREAM_LIMIT_REACHED: return "STREAM_LIMIT_REACHED";
    case QUIC_STATUS_ALPN_IN_USE: return "ALPN_IN_USE";
#ifdef QUIC_STATUS_ADDRESS_NOT_AVAILABLE /* POSIX only */
    case QUIC_STATUS_ADDRESS_NOT_AVAILABLE: return "ADDRESS_NOT_AVAILABLE";
#endif
    case QUIC_STATUS_CLOSE_NOTIFY: return "CLOSE_NOTIFY";
    case QUIC_STATUS_BAD_CERTIFICATE: return "BAD_CERTIFICATE";
    case QUIC_STATUS_UNSUPPORTED_CERTIFICATE: return "UNSUPPORTED_CERTIFICATE";
    case QUIC_STATUS_REVOKED_CERTIFICATE: return "REVOKED_CERTIFICATE";
    case QUIC_STATUS_EXPIRED_CERTIFICATE: return "EXPIRED_CERTIFICATE";
    case QUIC_STATUS_UNKNOWN_CERTIFICATE: return "UNKNOWN_CERTIFICATE";
    case QUIC_STATUS_REQUIRED_CERTIFICATE: return "REQUIRED_CERTIFICATE";
    case QUIC_STATUS_CERT_EXPIRED: return "CERT_EXPIRED";
    case QUIC_STATUS_CERT_UNTRUSTED_ROOT: return "CERT_UNTRUSTED_ROOT";
    case QUIC_STATUS_CERT_NO_CERT: return "CERT_NO_CERT";
    default: return "UNKNOWN";
    }
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

static void addr_to_quic(const pwt_addr *a, QUIC_ADDR *q) {
    memset(q, 0, sizeof(*q));
    if (a->family == 6) {
        q->Ipv6.sin6_family = AF_INET6;
        q->Ipv6.sin6_port = htons(a->port);
        memcpy(&q->Ipv6.sin6_addr, a->addr, 16);
    } else if (a->family == 4) {
        q->Ipv4.sin_family = AF_INET;
        q->Ipv4.sin_port = htons(a->port);
        memcpy(&q->Ipv4.sin_addr, a->addr, 4);
    } else {
        QuicAddrSetFamily(q, QUIC_ADDRESS_FAMILY_UNSPEC);
        q->Ipv4.sin_port = htons(a->port);
    }
}

static void addr_from_quic(const QUIC_ADDR *q, pwt_addr *a) {
    memset(a, 0, sizeof(*a));
    if (QuicAddrGetFamily(q) == QUIC_ADDRESS_FAMILY_INET6) {
        a->family = 6;
        a->port = ntohs(q->Ipv6.sin6_port);
        memcpy(a->addr, &q->Ipv6.sin6_addr, 16);
    } else {
        a->family = 4;
        a->port = ntohs(q->Ipv4.sin_port);
        memcpy(a->addr, &q->Ipv4.sin_addr, 4);
    }
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

uint32_t pwt_config_open(const char *const *alpns, uint32_t alpn_count,
                         const pwt_settings *s, const pwt_credentials *cred,
                         pwt_config **out) {
    if (MsQuic == NULL) {
        return QUIC_STATUS_INVALID_STATE;
    }
    if (alpn_count == 0 || alpn_count > 16) {
        return QUIC_STATUS_INVALID_PARAMETER;
    }
    QUIC_BUFFER alpn_bufs[16];
    for (uint32_t i = 0; i < alpn_count; i++) {
        size_t n = strlen(alpns[i]);
        if (n == 0 || n > 255) {
            return QUIC_STATUS_INVALID_PARAMETER;
        }
        alpn_bufs[i].Length = (uint32_t)n;
        alpn_bufs[i].Buffer = (uint8_t *)alpns[i];
    }
    QUIC_SETTINGS qs;
    memset(&qs, 0, sizeof(qs));
    if (s->idle_timeout_ms >= 0) {
        qs.IdleTimeoutMs = (uint64_t)s->idle_timeout_ms;
        qs.IsSet.IdleTimeoutMs = 1;
    }
    if (s->handshake_idle_timeout_ms >= 0) {
        qs.HandshakeIdleTimeoutMs = (uint64_t)s->handshake_idle_timeout_ms;
        qs.IsSet.HandshakeIdleTimeoutMs = 1;
    }
    if (s->keep_alive_interval_ms >= 0) {
        qs.KeepAliveIntervalMs = (uint32_t)s->keep_alive_interval_ms;
        qs.IsSet.KeepAliveIntervalMs = 1;
    }
    if (s->peer_bidi_stream_count >= 0) {
        qs.PeerBidiStreamCount = (uint16_t)s->peer_bidi_stream_count;
        qs.IsSet.PeerBidiStreamCount = 1;
    }
    if (s->peer_unidi_stream_count >= 0) {
        qs.PeerUnidiStreamCount = (uint16_t)s->peer_unidi_stream_count;
        qs.IsSet.PeerUnidiStreamCount = 1;
    }
    if (s->stream_recv_window > 0) {
        qs.StreamRecvWindowDefault = (uint32_t)s->stream_recv_window;
        qs.IsSet.StreamRecvWindowDefault = 1;
    }
    if (s->conn_flow_control_window > 0) {
        qs.ConnFlowControlWindow = (uint32_t)s->conn_flow_control_window;
        qs.IsSet.ConnFlowControlWindow = 1;
    }
    if (s->datagram_receive_enabled >= 0) {
        qs.DatagramReceiveEnabled = (uint8_t)(s->datagram_receive_enabled != 0);
        qs.IsSet.DatagramReceiveEnabled = 1;
    }
    if (s->congestion_control >= 0) {
        qs.CongestionControlAlgorithm = (uint16_t)s->congestion_control;
        qs.IsSet.CongestionControlAlgorithm = 1;
    }
    if (s->send_buffering_enabled >= 0) {
        qs.SendBufferingEnabled = (uint8_t)(s->send_buffering_enabled != 0);
        qs.IsSet.SendBufferingEnabled = 1;
    }
    if (s->pacing_enabled >= 0) {
        qs.PacingEnabled = (uint8_t)(s->pacing_enabled != 0);
        qs.IsSet.PacingEnabled = 1;
    }
    if (s->server_resumption_level >= 0) {
        qs.ServerResumptionLevel = (uint8_t)s->server_resumption_level;
        qs.IsSet.ServerResumptionLevel = 1;
    }
    if (s->disconnect_timeout_ms >= 0) {
        qs.DisconnectTimeoutMs = (uint32_t)s->disconnect_timeout_ms;
        qs.IsSet.DisconnectTimeoutMs = 1;
    }
    if (s->max_operations_per_drain > 0) {
        qs.MaxOperationsPerDrain = (uint8_t)s->max_operations_per_drain;
        qs.IsSet.MaxOperationsPerDrain = 1;
    }
    if (s->stream_recv_buffer > 0) {
        qs.StreamRecvBufferDefault = (uint32_t)s->stream_recv_buffer;
        qs.IsSet.StreamRecvBufferDefault = 1;
    }
    if (s->reliable_reset_enabled >= 0) {
        qs.ReliableResetEnabled = (uint8_t)(s->reliable_reset_enabled != 0);
        qs.IsSet.ReliableResetEnabled = 1;
    }

    HQUIC h = NULL;
    QUIC_STATUS st = MsQuic->ConfigurationOpen(Registration, alpn_bufs, alpn_count, &qs,
                                               sizeof(qs), NULL, &h);
    if (st == QUIC_STATUS_INVALID_PARAMETER && qs.IsSet.StreamRecvBufferDefault &&
        qs.StreamRecvBufferDefault < 4096) {
        /* An msquic without our patch (PYWEBTRANSPORT_MSQUIC_LIB) refuses receive
         * buffers under 4 KB: use its default rather than fail. */
        qs.IsSet.StreamRecvBufferDefault = 0;
        st = MsQuic->ConfigurationOpen(Registration, alpn_bufs, alpn_count, &qs, sizeof(qs), NULL, &h);
    }
    if (QUIC_FAILED(st)) {
        return st;
    }
    QUIC_CREDENTIAL_CONFIG cc;
    memset(&cc, 0, sizeof(cc));
    QUIC_CERTIFICATE_FILE cf;
    QUIC_CERTIFICATE_FILE_PROTECTED cfp;
    QUIC_CERTIFICATE_PKCS12 p12;
    if (cred->is_client) {
        cc.Flags = QUIC_CREDENTIAL_FLAG_CLIENT;
        if (!cred->verify_peer || cred->app_verify) {
            cc.Flags |= QUIC_CREDENTIAL_FLAG_NO_CERTIFICATE_VALIDATION;
        }
    } else if (cred->verify_peer) {
        /* Requests a client certificate; with app_verify, msquic neither
         * validates it nor fails when none is sent: Python decides. */
        cc.Flags |= QUIC_CREDENTIAL_FLAG_REQUIRE_CLIENT_AUTHENTICATION;
        if (cred->app_verify) {
            cc.Flags |= QUIC_CREDENTIAL_FLAG_NO_CERTIFICATE_VALIDATION;
        }
    }
    if (cred->app_verify) {
        /* DER buffers (not msquic's private OpenSSL objects) in
         * PEER_CERTIFICATE_RECEIVED; see push_peer_certificate(). */
        cc.Flags |= QUIC_CREDENTIAL_FLAG_INDICATE_CERTIFICATE_RECEIVED |
                    QUIC_CREDENTIAL_FLAG_USE_PORTABLE_CERTIFICATES;
    }
    if (cred->ca_file != NULL) {
        cc.Flags |= QUIC_CREDENTIAL_FLAG_SET_CA_CERTIFICATE_FILE;
        cc.CaCertificateFile = cred->ca_file;
    }
    if (cred->pkcs12 != NULL) {
        p12.Asn1Blob = cred->pkcs12;
        p12.Asn1BlobLength = cred->pkcs12_len;
        p12.PrivateKeyPassword = cred->pkcs12_password;
        cc.Type = QUIC_CREDENTIAL_TYPE_CERTIFICATE_PKCS12;
        cc.CertificatePkcs12 = &p12;
    } else if (cred->cert_file != NULL && cred->key_password != NULL) {
        cfp.CertificateFile = cred->cert_file;
        cfp.PrivateKeyFile = cred->key_file;
        cfp.PrivateKeyPassword = cred->key_password;
        cc.Type = QUIC_CREDENTIAL_TYPE_CERTIFICATE_FILE_PROTECTED;
        cc.CertificateFileProtected = &cfp;
    } else if (cred->cert_file != NULL) {
        cf.CertificateFile = cred->cert_file;
        cf.PrivateKeyFile = cred->key_file;
        cc.Type = QUIC_CREDENTIAL_TYPE_CERTIFICATE_FILE;
        cc.CertificateFile = &cf;
    } else {
        cc.Type = QUIC_CREDENTIAL_TYPE_NONE;
    }
    st = MsQuic->ConfigurationLoadCredential(h, &cc);
    if (QUIC_FAILED(st)) {
        MsQuic->ConfigurationClose(h);
        return st;
    }
    pwt_config *cfg = (pwt_config *)calloc(1, sizeof(pwt_config));
    if (cfg == NULL) {
        MsQuic->ConfigurationClose(h);
        return QUIC_STATUS_OUT_OF_MEMORY;
    }
    cfg->h = h;
    atomic_fetch_add(&LiveObjects, 1);
    *out = cfg;
    return QUIC_STATUS_SUCCESS;
}

void pwt_config_close(pwt_config *cfg) {
    if (cfg == NULL) {
        return;
    }
    MsQuic->ConfigurationClose(cfg->h);
    free(cfg);
    atomic_fetch_sub(&LiveObjects, 1);
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */

/* Handlers for handles whose shim object is gone (error paths): msquic may
 * still deliver events while it tears them down, and those must not touch
 * freed memory. */
static QUIC_STATUS QUIC_API orphan_stream_cb(HQUIC h, void *ctx, QUIC_STREAM_EVENT *ev) {
    (void)h;
    (void)ctx;
    (void)ev;
    return QUIC_STATUS_SUCCESS;
}

static QUIC_STATUS QUIC_API orphan_conn_cb(HQUIC h, void *ctx, QUIC_CONNECTION_EVENT *ev) {
    (void)h;
    (void)ctx;
    (void)ev;
    return QUIC_STATUS_SUCCESS;
}

static pwt_stream *stream_new(pwt_conn *c) {
    pwt_stream *s = (pwt_stream *)calloc(1, sizeof(pwt_stream));
    if (s == NULL) {
        return NULL;
    }
    s->q = c->q;
    s->c = c;
    s->recv_limit = c->recv_limit;
    s->send_high_water = c->send_high_water;
    s->expected_id = -1;
    atomic_fetch_add(&LiveObjects, 1);
    int64_t live = atomic_fetch_add(&c->live_streams, 1) + 1;
    int64_t peak = atomic_load(&c->peak_streams);
    while (live > peak && !atomic_compare_exchange_weak(&c->peak_streams, &peak, live)) {
    }
    return s;
}

/* A closed stream's struct: freed at its queue's next poll, so that its address is
 * not reused (by a new stream) while Python may still hold a record naming it. */
static void bury(pwt_stream *s) {
    if (s->start_node != NULL) {
        node_free(s->start_node); /* never queued: Python never knew the stream */
        s->start_node = NULL;
    }
    pwt_queue *q = s->q;
    pthread_mutex_lock(&q->mu);
    s->grave_next = q->grave;
    q->grave = s;
    pthread_mutex_unlock(&q->mu);
}

static void stream_free(pwt_stream *s) {
    atomic_fetch_sub(&s->c->live_streams, 1);
    if (s->start_node != NULL) {
        node_free(s->start_node);
    }
    free(s);
    atomic_fetch_sub(&LiveObjects, 1);
}

static int stream_close_async(pwt_stream *s);

/* RECEIVE: copy `take` bytes into the stream's queued RECEIVE record when
 * one is still waiting for Python (one record per stream however many
 * chunks arrive), else into a new record.  Returns 0 on out of memory. */
static int push_receive(pwt_stream *s, const QUIC_STREAM_EVENT *ev, uint64_t take, int fin) {
    pwt_queue *q = s->q;
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&s->done) & PWT_DONE_RELEASED) {
        /* Bytes after the FIN Python consumed cannot exist (final size); a
         * misbehaving peer's are dropped like any record of a released stream. */
        pthread_mutex_unlock(&q->mu);
        return 1;
    }
    pwt_node *n = s->rx_node;
    int starting = 0; /* n is the stream's unqueued start record */
    if (n == NULL && s->start_node != NULL) {
        n = s->start_node;
        starting = 1;
    }
    if (n != NULL) {
        uint64_t need = (uint64_t)n->ev.len + take;
        if (need > UINT32_MAX) {
            n = NULL;
        } else if (need > n->cap) {
            uint64_t cap = (uint64_t)n->cap * 2;
            if (cap < need) {
                cap = need;
            }
            if (cap > UINT32_MAX) {
                cap = need;
            }
            unsigned char *grown = (unsigned char *)realloc(n->ext, cap);
            if (grown == NULL) {
                n = NULL;
            } else {
                if (n->ext == NULL) { /* first growth: leave the inline area */
                    memcpy(grown, n->data, n->ev.len);
                }
                n->ext = grown;
                n->cap = (uint32_t)cap;
            }
        }
    }
    if (n != NULL) {
        unsigned char *dst = n->ext ? n->ext : n->data;
        uint64_t off = 0;
        for (uint32_t i = 0; i < ev->RECEIVE.BufferCount && off < take; i++) {
            uint64_t chunk = ev->RECEIVE.Buffers[i].Length;
            if (chunk > take - off) {
                chunk = take - off;
            }
            memcpy(dst + n->ev.len + off, ev->RECEIVE.Buffers[i].Buffer, chunk);
            off += chunk;
        }
        n->ev.len += (uint32_t)take;
        int signal = 0;
        if (starting) {
            s->start_node = NULL;
            signal = queue_link(q, n);
            s->rx_node = n;
        }
        if (fin) {
            if (n->ev.type == PWT_EV_CONN_PEER_STREAM_STARTED) {
                n->ev.u2 = 1; /* u0 is the stream id there */
            } else {
                n->ev.u0 = 1;
            }
            s->rx_node = NULL; /* nothing follows a FIN */
            s->fin_queued = 1;
        }
        atomic_fetch_add(&s->buffered, (int64_t)take);
        pthread_mutex_unlock(&q->mu);
        if (signal) {
            signal_fd(q);
        }
        return 1;
    }
    /* Out of memory growing the start record: queue it without data. */
    int start_signal = link_start(q, s);
    pthread_mutex_unlock(&q->mu);
    if (start_signal) {
        signal_fd(q);
    }
    /* Small chunks get some inline room so that a few more can join the
     * record without another allocation. */
    uint32_t cap = take < 512 ? 512 : (uint32_t)take;
    n = node_new(cap);
    if (n == NULL) {
        return 0;
    }
    n->cap = cap;
    uint64_t off = 0;
    for (uint32_t i = 0; i < ev->RECEIVE.BufferCount && off < take; i++) {
        uint64_t chunk = ev->RECEIVE.Buffers[i].Length;
        if (chunk > take - off) {
            chunk = take - off;
        }
        memcpy(n->data + off, ev->RECEIVE.Buffers[i].Buffer, chunk);
        off += chunk;
    }
    n->ev.len = (uint32_t)take;
    atomic_fetch_add(&s->buffered, (int64_t)take);
    n->conn = s->c;
    n->ev.type = PWT_EV_STREAM_RECEIVE;
    n->ev.obj = s;
    n->ev.u0 = (uint64_t)fin;
    n->ev.u1 = ev->RECEIVE.AbsoluteOffset;
    n->stream = s;
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&s->done) & PWT_DONE_RELEASED) {
        pthread_mutex_unlock(&q->mu);
        atomic_fetch_sub(&s->buffered, (int64_t)take);
        node_free(n);
        return 1;
    }
    s->rx_node = fin ? NULL : n;
    link_data_and_unlock(q, s, n, fin, 0);
    return 1;
}

/* RECEIVE of a large chunk: hand Python msquic's buffers themselves and return
 * PENDING, so each byte is copied once on its way to Python (into the bytes
 * object Python makes) instead of three times (into the record, again when
 * the record grows while the loop lags, into bytes).  msquic indicates nothing
 * more on this stream until Python calls pwt_stream_receive_complete(), and
 * keeps the later bytes in its receive buffer meanwhile (flow control still
 * bounds them).  Returns 1 if queued, 2 if the stream is released (drop), 0 on
 * out of memory. */
/* The first `total` received bytes (all of them, or what fits the stream's
 * buffer limit) as a record pointing into msquic's buffers. */
static int push_receive_zc(pwt_stream *s, const QUIC_STREAM_EVENT *ev, uint64_t total, int fin) {
    uint32_t count = 0;
    uint64_t left = total;
    while (count < ev->RECEIVE.BufferCount && left > 0) {
        left -= left < ev->RECEIVE.Buffers[count].Length ? left : ev->RECEIVE.Buffers[count].Length;
        count++;
    }
    pwt_node *n = node_new(count * (uint32_t)sizeof(pwt_chunk));
    if (n == NULL) {
        return 0;
    }
    pwt_chunk *chunks = (pwt_chunk *)(void *)n->data;
    left = total;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len = ev->RECEIVE.Buffers[i].Length;
        chunks[i].data = (const char *)ev->RECEIVE.Buffers[i].Buffer;
        chunks[i].len = left < len ? (uint32_t)left : len;
        left -= chunks[i].len;
    }
    n->conn = s->c;
    n->stream = s;
    n->ev.type = PWT_EV_STREAM_RECEIVE_ZC;
    n->ev.obj = s;
    n->ev.len = (uint32_t)total;
    n->ev.u0 = (uint64_t)fin;
    n->ev.u1 = ev->RECEIVE.AbsoluteOffset;
    n->ev.u2 = count;
    pwt_queue *q = s->q;
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&s->done) & PWT_DONE_RELEASED) {
        pthread_mutex_unlock(&q->mu);
        node_free(n);
        return 2;
    }
    int signal = link_start(q, s); /* a peer stream's start goes first */
    s->rx_node = NULL;             /* nothing coalesces into msquic's buffers */
    atomic_fetch_add(&s->buffered, (int64_t)total);
    link_data_and_unlock(q, s, n, fin, signal);
    return 1;
}

void pwt_stream_receive_complete(pwt_stream *s, uint64_t n) {
    MsQuic->StreamReceiveComplete(s->h, n);
}

static void maybe_writable(pwt_stream *s, int64_t outstanding) {
    if (outstanding <= s->send_high_water / 2 && atomic_exchange(&s->want_writable, 0)) {
        push_ev(s->q, s->c, s, PWT_EV_STREAM_WRITABLE, s, NULL, (uint64_t)outstanding, 0, 0);
    }
}

/* msquic holds a partially accepted RECEIVE's rest until receiving is
 * re-enabled: pwt_stream_consumed() does it once Python's unread bytes fall
 * under half the limit. */
static void pause_receive(pwt_stream *s) {
    atomic_store(&s->paused, 1);
    /* Python may have consumed everything meanwhile; if so nobody else will
     * resume, so ask Python to do it from its thread. */
    if (atomic_load(&s->buffered) * 2 < s->recv_limit && atomic_exchange(&s->paused, 0)) {
        push_ev(s->q, s->c, s, PWT_EV_STREAM_RESUME, s, NULL, 0, 0, 0);
    }
}

static QUIC_STATUS QUIC_API stream_cb(HQUIC h, void *ctx, QUIC_STREAM_EVENT *ev) {
    pwt_stream *s = (pwt_stream *)ctx;
    (void)h;
    switch (ev->Type) {
    case QUIC_STREAM_EVENT_START_COMPLETE:
        if (QUIC_SUCCEEDED(ev->START_COMPLETE.Status) && s->expected_id >= 0 &&
            ev->START_COMPLETE.ID == (uint64_t)s->expected_id) {
            break; /* as Python predicted */
        }
        push_ev(s->q, s->c, s, PWT_EV_STREAM_START_COMPLETE, s, NULL,
                    (uint64_t)ev->START_COMPLETE.Status, ev->START_COMPLETE.ID,
                    ev->START_COMPLETE.PeerAccepted);
        break;
    case QUIC_STREAM_EVENT_RECEIVE: {
        /* Accept at most what keeps Python's unread bytes under recv_limit.
         * A partial accept makes msquic hold the rest (and stop granting
         * flow-control credit) until pwt_stream_consumed() re-enables it. */
        uint64_t total = ev->RECEIVE.TotalBufferLength;
        int fin = (ev->RECEIVE.Flags & QUIC_RECEIVE_FLAG_FIN) != 0;
        int64_t buffered = atomic_load(&s->buffered);
        uint64_t room = buffered >= s->recv_limit ? 0 : (uint64_t)(s->recv_limit - buffered);
        uint64_t take = total;
        int partial = 0;
        if (take > room) {
            take = room;
            partial = 1;
        }
        if (take >= PWT_ZC_MIN && take <= UINT32_MAX && ev->RECEIVE.BufferCount <= PWT_ZC_MAX_BUFS) {
            int zc = push_receive_zc(s, ev, take, partial ? 0 : fin);
            if (zc == 1) {
                if (partial) {
                    /* Python completes fewer bytes than indicated: msquic then
                     * holds the rest until receiving is re-enabled. */
                    pause_receive(s);
                }
                return QUIC_STATUS_PENDING; /* Python copies, then pwt_stream_receive_complete() */
            }
            if (zc == 2) {
                break; /* released stream: accepted and dropped */
            }
            /* out of memory for the record: copy instead */
        }
        if (partial) {
            ev->RECEIVE.TotalBufferLength = take;
            fin = 0;
        }
        if (take > 0 || fin) {
            if (!push_receive(s, ev, take, fin)) {
                ev->RECEIVE.TotalBufferLength = 0;
                take = 0;
                partial = 1;
            }
        }
        if (partial) {
            pause_receive(s);
        }
        break;
    }
    case QUIC_STREAM_EVENT_SEND_COMPLETE: {
        pwt_send *b = (pwt_send *)ev->SEND_COMPLETE.ClientContext;
        if (b != NULL) {
            int64_t left = atomic_fetch_sub(&s->outstanding, (int64_t)b->len) - (int64_t)b->len;
            free(b);
            maybe_writable(s, left);
        }
        break;
    }
    case QUIC_STREAM_EVENT_PEER_SEND_SHUTDOWN:
        if (s->fin_queued) {
            break; /* Python learns of the FIN from the RECEIVE record */
        }
        push_ev(s->q, s->c, s, PWT_EV_STREAM_PEER_SEND_SHUTDOWN, s, NULL, 0, 0, 0);
        break;
    case QUIC_STREAM_EVENT_PEER_SEND_ABORTED:
        push_ev(s->q, s->c, s, PWT_EV_STREAM_PEER_SEND_ABORTED, s, NULL,
                    ev->PEER_SEND_ABORTED.ErrorCode, 0, 0);
        break;
    case QUIC_STREAM_EVENT_PEER_RECEIVE_ABORTED:
        push_ev(s->q, s->c, s, PWT_EV_STREAM_PEER_RECEIVE_ABORTED, s, NULL,
                    ev->PEER_RECEIVE_ABORTED.ErrorCode, 0, 0);
        break;
    case QUIC_STREAM_EVENT_SEND_SHUTDOWN_COMPLETE:
        break; /* Python has no use for it: SHUTDOWN_COMPLETE follows */
    case QUIC_STREAM_EVENT_SHUTDOWN_COMPLETE:
        if (atomic_fetch_or(&s->done, PWT_DONE_COMPLETE) & PWT_DONE_RELEASED) {
            /* Python released the stream already: close it here (msquic allows
             * StreamClose in this callback), which returns the peer's stream
             * credit; the struct is freed at the queue's next poll. */
            atomic_fetch_sub(&s->c->live_streams, 1);
            MsQuic->StreamClose(s->h);
            atomic_fetch_sub(&LiveObjects, 1);
            bury(s);
            break;
        }
        if (ev->SHUTDOWN_COMPLETE.ConnectionShutdown) {
            /* The connection is shutting down: msquic completes all its streams
             * before the connection's own SHUTDOWN_COMPLETE, and Python finalizes
             * whatever streams are left when that arrives.  Not queuing these
             * saves a record (often a loop wake-up) per stream at every close.
             * A peer stream Python has not heard of yet (no bytes came) is made
             * known now, so that its handle is closed too. */
            pthread_mutex_lock(&s->q->mu);
            int signal = link_start(s->q, s);
            pthread_mutex_unlock(&s->q->mu);
            if (signal) {
                signal_fd(s->q);
            }
            break;
        }
        push_ev(s->q, s->c, s, PWT_EV_STREAM_SHUTDOWN_COMPLETE, s, NULL,
                    ev->SHUTDOWN_COMPLETE.ConnectionShutdown,
                    ev->SHUTDOWN_COMPLETE.ConnectionErrorCode,
                    (uint64_t)ev->SHUTDOWN_COMPLETE.ConnectionCloseStatus);
        break;
    default:
        break;
    }
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_stream_open(pwt_conn *c, int32_t unidirectional, int64_t expected_id,
                         pwt_stream **out) {
    pwt_stream *s = stream_new(c);
    if (s == NULL) {
        return QUIC_STATUS_OUT_OF_MEMORY;
    }
    s->expected_id = expected_id;
    /* Our unidirectional streams never receive, yet msquic gives every stream a
     * 4 KB receive chunk unless its buffers are app-owned (no buffer at all).
     * HTTP/3 opens three of them per connection (control, QPACK x2). */
    QUIC_STATUS st = MsQuic->StreamOpen(
        c->h,
        unidirectional ? QUIC_STREAM_OPEN_FLAG_UNIDIRECTIONAL | QUIC_STREAM_OPEN_FLAG_APP_OWNED_BUFFERS
                       : QUIC_STREAM_OPEN_FLAG_NONE,
        stream_cb, s, &s->h);
    if (QUIC_FAILED(st)) {
        stream_free(s);
        return st;
    }
    /* SHUTDOWN_ON_FAIL guarantees a SHUTDOWN_COMPLETE even when the start
     * fails, so Python's single close path stays valid. */
    st = MsQuic->StreamStart(s->h, QUIC_STREAM_START_FLAG_SHUTDOWN_ON_FAIL);
    if (QUIC_FAILED(st)) {
        /* StreamClose of a never-started stream can still indicate shutdown
         * events inline; route them away from `s`, which is freed next. */
        MsQuic->SetCallbackHandler(s->h, (void *)orphan_stream_cb, NULL);
        MsQuic->StreamClose(s->h);
        stream_free(s);
        return st;
    }
    *out = s;
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_stream_send(pwt_stream *s, const unsigned char *data, uint64_t len, int32_t fin) {
    pwt_send *b = (pwt_send *)malloc(sizeof(pwt_send) + len);
    if (b == NULL) {
        return QUIC_STATUS_OUT_OF_MEMORY;
    }
    if (len) {
        memcpy(b->data, data, len);
    }
    b->buf.Buffer = b->data;
    b->buf.Length = (uint32_t)len;
    b->s = s;
    b->len = len;
    atomic_fetch_add(&s->outstanding, (int64_t)len);
    QUIC_SEND_FLAGS flags = fin ? QUIC_SEND_FLAG_FIN : QUIC_SEND_FLAG_NONE;
    if (atomic_load(&s->c->allow_early)) {
        flags |= QUIC_SEND_FLAG_ALLOW_0_RTT;
    }
    QUIC_STATUS st = MsQuic->StreamSend(s->h, &b->buf, len ? 1 : 0, flags, b);
    if (QUIC_FAILED(st)) {
        atomic_fetch_sub(&s->outstanding, (int64_t)len);
        free(b);
        return st;
    }
    return QUIC_STATUS_SUCCESS;
}

int64_t pwt_stream_outstanding(pwt_stream *s) { return atomic_load(&s->outstanding); }

int32_t pwt_stream_want_writable(pwt_stream *s) {
    /* Returns 1 if the stream is already writable (no event will follow),
     * 0 if Python must wait for PWT_EV_STREAM_WRITABLE. */
    atomic_store(&s->want_writable, 1);
    if (atomic_load(&s->outstanding) <= s->send_high_water / 2) {
        if (atomic_exchange(&s->want_writable, 0)) {
            return 1;
        }
    }
    return 0;
}

void pwt_stream_consumed(pwt_stream *s, uint64_t n) {
    int64_t left = atomic_fetch_sub(&s->buffered, (int64_t)n) - (int64_t)n;
    /* Resume below half the limit; "2 * left < limit" also holds for a limit of 1. */
    if (left * 2 < s->recv_limit && atomic_exchange(&s->paused, 0)) {
        MsQuic->StreamReceiveSetEnabled(s->h, TRUE);
    }
}

void pwt_stream_resume(pwt_stream *s) { MsQuic->StreamReceiveSetEnabled(s->h, TRUE); }

int64_t pwt_stream_buffered(pwt_stream *s) { return atomic_load(&s->buffered); }

uint32_t pwt_stream_diag(pwt_stream *s, uint64_t *out) {
    QUIC_STREAM_STATISTICS st;
    uint32_t len = (uint32_t)sizeof(st);
    memset(&st, 0, sizeof(st));
    QUIC_STATUS r = MsQuic->GetParam(s->h, QUIC_PARAM_STREAM_STATISTICS, &len, &st);
    out[0] = st.ConnBlockedBySchedulingUs;
    out[1] = st.ConnBlockedByPacingUs;
    out[2] = st.ConnBlockedByAmplificationProtUs;
    out[3] = st.ConnBlockedByCongestionControlUs;
    out[4] = st.ConnBlockedByFlowControlUs;
    out[5] = st.StreamBlockedByIdFlowControlUs;
    out[6] = st.StreamBlockedByFlowControlUs;
    out[7] = st.StreamBlockedByAppUs;
    out[8] = (uint64_t)atomic_load(&s->paused);
    out[9] = (uint64_t)atomic_load(&s->outstanding);
    return norm(r);
}

uint32_t pwt_stream_shutdown(pwt_stream *s, int32_t mode, uint64_t error_code) {
    return norm(MsQuic->StreamShutdown(s->h, (QUIC_STREAM_SHUTDOWN_FLAGS)mode, error_code));
}

uint32_t pwt_stream_set_reliable_offset(pwt_stream *s, uint64_t offset) {
    return norm(MsQuic->SetParam(s->h, QUIC_PARAM_STREAM_RELIABLE_OFFSET, sizeof(offset), &offset));
}

/* Caller holds q->mu: unlink every queued record of `s` (usually there is none).
 * Returns the bytes of dropped zero-copy receives, which msquic still waits for
 * (the caller completes them once the lock is released). */
static uint64_t purge_stream_records(pwt_queue *q, pwt_stream *s) {
    uint64_t pending = 0;
    pwt_node *prev = NULL;
    pwt_node *n = q->head;
    while (n != NULL && s->queued > 0) {
        pwt_node *next = n->next;
        if (n->stream == s) {
            s->queued--;
            if (n->ev.type == PWT_EV_STREAM_RECEIVE_ZC) {
                pending += n->ev.len;
            }
            if (prev != NULL) {
                prev->next = next;
            } else {
                q->head = next;
                if (next == NULL) {
                    atomic_store_explicit(&q->nonempty, 0, memory_order_relaxed);
                }
            }
            if (q->tail == n) {
                q->tail = prev;
            }
            q->count--;
            if (n->conn != NULL) {
                n->conn->queued--;
            }
            node_free(n);
        } else {
            prev = n;
        }
        n = next;
    }
    s->rx_node = NULL;
    return pending;
}

int32_t pwt_stream_release_when_done(pwt_stream *s) {
    pwt_queue *q = s->q;
    pthread_mutex_lock(&q->mu);
    int complete = atomic_fetch_or(&s->done, PWT_DONE_RELEASED) & PWT_DONE_COMPLETE;
    uint64_t pending = purge_stream_records(q, s);
    pthread_mutex_unlock(&q->mu);
    if (pending) {
        MsQuic->StreamReceiveComplete(s->h, pending);
    }
    /* 2: msquic completed it already (its record, if still queued, is gone now):
     * Python closes the handle itself. */
    return complete ? 2 : 1;
}

void pwt_stream_close(pwt_stream *s) {
    if (s == NULL) {
        return;
    }
    if (stream_close_async(s)) {
        return;
    }
    atomic_fetch_sub(&s->c->live_streams, 1);
    MsQuic->StreamClose(s->h);
    bury(s);
    atomic_fetch_sub(&LiveObjects, 1);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

/* PEER_CERTIFICATE_RECEIVED: copy the DER certificate and PKCS#7 chain (both
 * valid only during the callback) into one record and return PENDING, so the
 * handshake waits until Python calls pwt_conn_certificate_complete().  This
 * record must never be dropped by a queue bound: the handshake waits for it
 * (at most one per connection). */
static QUIC_STATUS push_peer_certificate(pwt_conn *c, QUIC_CONNECTION_EVENT *ev) {
    const QUIC_BUFFER *cert = (const QUIC_BUFFER *)ev->PEER_CERTIFICATE_RECEIVED.Certificate;
    const QUIC_BUFFER *chain = (const QUIC_BUFFER *)ev->PEER_CERTIFICATE_RECEIVED.Chain;
    uint32_t cert_len = (cert != NULL && cert->Buffer != NULL) ? cert->Length : 0;
    uint32_t chain_len = (chain != NULL && chain->Buffer != NULL) ? chain->Length : 0;
    if (cert_len > (1u << 20) || chain_len > (1u << 20)) {
        return QUIC_STATUS_BAD_CERTIFICATE; /* TLS already caps this far lower */
    }
    pwt_node *n = node_new(cert_len + chain_len);
    if (n == NULL) {
        return QUIC_STATUS_OUT_OF_MEMORY; /* fails the handshake */
    }
    if (cert_len) {
        memcpy(n->data, cert->Buffer, cert_len);
    }
    if (chain_len) {
        memcpy(n->data + cert_len, chain->Buffer, chain_len);
    }
    n->ev.type = PWT_EV_CONN_PEER_CERTIFICATE;
    n->ev.obj = c;
    n->ev.u0 = cert_len;
    n->ev.u1 = chain_len;
    n->ev.u2 = (uint64_t)ev->PEER_CERTIFICATE_RECEIVED.DeferredStatus;
    queue_push(c->q, n);
    return QUIC_STATUS_PENDING;
}

uint32_t pwt_conn_certificate_complete(pwt_conn *c, int32_t accept, int32_t tls_alert) {
    QUIC_TLS_ALERT_CODES alert = accept ? QUIC_TLS_ALERT_CODE_SUCCESS
                                        : (QUIC_TLS_ALERT_CODES)(tls_alert & 0xFF);
    return norm(MsQuic->ConnectionCertificateValidationComplete(c->h, accept ? TRUE : FALSE, alert));
}

static QUIC_STATUS QUIC_API conn_cb(HQUIC h, void *ctx, QUIC_CONNECTION_EVENT *ev) {
    pwt_conn *c = (pwt_conn *)ctx;
    switch (ev->Type) {
    case QUIC_CONNECTION_EVENT_CONNECTED: {
        uint32_t n = ev->CONNECTED.NegotiatedAlpnLength;
        if (n > 255) {
            n = 255;
        }
        memcpy(c->alpn, ev->CONNECTED.NegotiatedAlpn, n);
        atomic_store(&c->alpn_len, n);
        QUIC_ADDR local, remote;
        uint32_t sz = sizeof(local);
        int known = 0;
        if (QUIC_SUCCEEDED(MsQuic->GetParam(h, QUIC_PARAM_CONN_LOCAL_ADDRESS, &sz, &local))) {
            known |= 1;
        }
        sz = sizeof(remote);
        if (QUIC_SUCCEEDED(MsQuic->GetParam(h, QUIC_PARAM_CONN_REMOTE_ADDRESS, &sz, &remote))) {
            known |= 2;
        }
        pthread_mutex_lock(&c->addr_mu);
        if (known & 1) {
            addr_from_quic(&local, &c->local_addr);
        }
        if (known & 2) {
            addr_from_quic(&remote, &c->remote_addr);
        }
        c->addrs_known |= known;
        atomic_fetch_add(&c->addr_gen, 1);
        pthread_mutex_unlock(&c->addr_mu);
        /* A server learns the peer's datagram support before the application owns the
         * connection, so msquic's first DATAGRAM_STATE_CHANGED is not indicated; the next
         * comes only when path MTU discovery succeeds, which loss can delay for seconds.
         * Until then allow what fits the minimum QUIC path MTU. */
        BOOLEAN dgram_ok = FALSE;
        sz = sizeof(dgram_ok);
        if (atomic_load(&c->dgram_max) == 0 &&
            QUIC_SUCCEEDED(MsQuic->GetParam(h, QUIC_PARAM_CONN_DATAGRAM_SEND_ENABLED, &sz, &dgram_ok)) &&
            dgram_ok) {
            unsigned int expected = 0;
            atomic_compare_exchange_strong(&c->dgram_max, &expected, PWT_DGRAM_MIN_PATH_PAYLOAD);
        }
        if (c->send_ticket) {
            /* Queued by msquic; sent once the handshake is confirmed. */
            MsQuic->ConnectionSendResumptionTicket(h, QUIC_SEND_RESUMPTION_FLAG_FINAL, 0, NULL);
        }
        push_ev(c->q, c, NULL, PWT_EV_CONN_CONNECTED, c, NULL, ev->CONNECTED.SessionResumed, 0, 0);
        break;
    }
    case QUIC_CONNECTION_EVENT_PEER_CERTIFICATE_RECEIVED:
        return push_peer_certificate(c, ev);
    case QUIC_CONNECTION_EVENT_LOCAL_ADDRESS_CHANGED:
    case QUIC_CONNECTION_EVENT_PEER_ADDRESS_CHANGED: {
        int local = ev->Type == QUIC_CONNECTION_EVENT_LOCAL_ADDRESS_CHANGED;
        const QUIC_ADDR *qa = local ? ev->LOCAL_ADDRESS_CHANGED.Address
                                    : ev->PEER_ADDRESS_CHANGED.Address;
        pthread_mutex_lock(&c->addr_mu);
        addr_from_quic(qa, local ? &c->local_addr : &c->remote_addr);
        c->addrs_known |= local ? 1 : 2;
        atomic_fetch_add(&c->addr_gen, 1);
        pthread_mutex_unlock(&c->addr_mu);
        break;
    }
    case QUIC_CONNECTION_EVENT_SHUTDOWN_INITIATED_BY_TRANSPORT:
        push_ev(c->q, c, NULL, PWT_EV_CONN_SHUTDOWN_BY_TRANSPORT, c, NULL,
                    (uint64_t)ev->SHUTDOWN_INITIATED_BY_TRANSPORT.Status,
                    ev->SHUTDOWN_INITIATED_BY_TRANSPORT.ErrorCode, 0);
        break;
    case QUIC_CONNECTION_EVENT_SHUTDOWN_INITIATED_BY_PEER:
        push_ev(c->q, c, NULL, PWT_EV_CONN_SHUTDOWN_BY_PEER, c, NULL,
                    ev->SHUTDOWN_INITIATED_BY_PEER.ErrorCode, 0, 0);
        break;
    case QUIC_CONNECTION_EVENT_SHUTDOWN_COMPLETE:
        push_ev(c->q, c, NULL, PWT_EV_CONN_SHUTDOWN_COMPLETE, c, NULL,
                    ev->SHUTDOWN_COMPLETE.HandshakeCompleted,
                    ev->SHUTDOWN_COMPLETE.PeerAcknowledgedShutdown,
                    ev->SHUTDOWN_COMPLETE.AppCloseInProgress);
        break;
    case QUIC_CONNECTION_EVENT_PEER_STREAM_STARTED: {
        pwt_stream *s = stream_new(c);
        if (s == NULL) {
            return QUIC_STATUS_OUT_OF_MEMORY;
        }
        s->h = ev->PEER_STREAM_STARTED.Stream;
        MsQuic->SetCallbackHandler(s->h, (void *)stream_cb, s);
        /* Stream credit (MAX_STREAMS) for this stream is returned to the
         * peer at StreamClose, i.e. when Python releases the stream, not
         * when msquic completes its shutdown: a peer can never have more
         * live streams than the limit, however far Python lags. */
        ev->PEER_STREAM_STARTED.Flags |= QUIC_STREAM_OPEN_FLAG_DELAY_ID_FC_UPDATES;
        QUIC_UINT62 id = 0;
        uint32_t sz = sizeof(id);
        MsQuic->GetParam(s->h, QUIC_PARAM_STREAM_ID, &sz, &id);
        /* Queued with the stream's first record (usually carrying its first
         * bytes, see push_receive), not now: msquic indicates the stream's
         * data right after this event. Inline room for small first chunks. */
        pwt_node *n = node_new(PWT_START_INLINE);
        if (n == NULL) {
            MsQuic->SetCallbackHandler(s->h, (void *)orphan_stream_cb, NULL);
            stream_free(s);
            return QUIC_STATUS_OUT_OF_MEMORY; /* msquic aborts the stream */
        }
        n->ev.len = 0;
        n->cap = PWT_START_INLINE;
        n->conn = c;
        n->ev.type = PWT_EV_CONN_PEER_STREAM_STARTED;
        n->ev.obj = c;
        n->ev.obj2 = s;
        n->ev.u0 = id;
        n->ev.u1 = (uint64_t)ev->PEER_STREAM_STARTED.Flags;
        pthread_mutex_lock(&c->q->mu);
        s->start_node = n;
        pthread_mutex_unlock(&c->q->mu);
        break;
    }
    case QUIC_CONNECTION_EVENT_RELIABLE_RESET_NEGOTIATED:
        /* Not queued (one loop wake-up less per connection): msquic decides it
         * while processing the peer's transport parameters, before CONNECTED,
         * and Python reads it with pwt_conn_reliable_reset() when it resets. */
        atomic_store(&c->reliable_reset, ev->RELIABLE_RESET_NEGOTIATED.IsNegotiated ? 1 : 0);
        break;
    case QUIC_CONNECTION_EVENT_STREAMS_AVAILABLE:
        /* Not queued: Python does not wait for stream credit (msquic holds a
         * stream opened beyond the peer's limit until MAX_STREAMS arrives),
         * and one of these per request cost the client a loop wake-up. */
        break;
    case QUIC_CONNECTION_EVENT_DATAGRAM_STATE_CHANGED:
        /* Not queued: Python reads the limit when it sends (pwt_conn_datagram_max);
         * path MTU discovery changes it several times per connection, and each
         * record cost the loop a wake-up. */
        atomic_store(&c->dgram_max, ev->DATAGRAM_STATE_CHANGED.SendEnabled
                                        ? ev->DATAGRAM_STATE_CHANGED.MaxSendLength
                                        : 0);
        break;
    case QUIC_CONNECTION_EVENT_DATAGRAM_RECEIVED: {
        /* Bounded: beyond max_events queued for this connection the
         * datagram is dropped (and counted) before any allocation. */
        const QUIC_BUFFER *b = ev->DATAGRAM_RECEIVED.Buffer;
        pwt_queue *q = c->q;
        pthread_mutex_lock(&q->mu);
        int full = (int64_t)c->queued >= c->max_events;
        pthread_mutex_unlock(&q->mu);
        if (full) {
            atomic_fetch_add(&c->dgram_dropped, 1);
            break;
        }
        pwt_node *n = node_new(b->Length);
        if (n == NULL) {
            atomic_fetch_add(&c->dgram_dropped, 1);
            break;
        }
        memcpy(n->data, b->Buffer, b->Length);
        n->conn = c;
        n->ev.type = PWT_EV_CONN_DATAGRAM_RECEIVED;
        n->ev.obj = c;
        queue_push(q, n);
        break;
    }
    case QUIC_CONNECTION_EVENT_DATAGRAM_SEND_STATE_CHANGED: {
        QUIC_DATAGRAM_SEND_STATE st = ev->DATAGRAM_SEND_STATE_CHANGED.State;
        if (QUIC_DATAGRAM_SEND_STATE_IS_FINAL(st)) {
            free(ev->DATAGRAM_SEND_STATE_CHANGED.ClientContext);
            if (st == QUIC_DATAGRAM_SEND_CANCELED || st == QUIC_DATAGRAM_SEND_LOST_DISCARDED) {
                push_ev(c->q, c, NULL, PWT_EV_CONN_DATAGRAM_LOST, c, NULL, (uint64_t)st, 0, 0);
            }
        }
        break;
    }
    case QUIC_CONNECTION_EVENT_RESUMPTION_TICKET_RECEIVED: {
        uint32_t len = ev->RESUMPTION_TICKET_RECEIVED.ResumptionTicketLength;
        /* Servers send tickets unasked (rustls two per connection): a record,
         * often a loop wake-up, each, for a client that keeps none. */
        if (!atomic_load(&c->want_tickets) || len == 0 || len > 65536) {
            break;
        }
        pwt_node *n = node_new(len);
        if (n == NULL) {
            break;
        }
        memcpy(n->data, ev->RESUMPTION_TICKET_RECEIVED.ResumptionTicket, len);
        n->conn = c;
        n->ev.type = PWT_EV_CONN_RESUMPTION_TICKET;
        n->ev.obj = c;
        queue_push(c->q, n);
        break;
    }
    default:
        break;
    }
    (void)h;
    return QUIC_STATUS_SUCCESS;
}

static pwt_conn *conn_new(pwt_queue *q) {
    pwt_conn *c = (pwt_conn *)calloc(1, sizeof(pwt_conn));
    if (c == NULL) {
        return NULL;
    }
    c->q = q;
    pthread_mutex_init(&c->addr_mu, NULL);
    c->recv_limit = DefaultRecvLimit;
    c->send_high_water = DefaultSendHighWater;
    c->max_events = DefaultMaxEvents;
    atomic_fetch_add(&LiveObjects, 1);
    return c;
}

static void conn_free(pwt_conn *c) {
    /* msquic can still indicate an event while the handle closes (a late
     * datagram send state, #4316); records still queued must not count
     * against this connection once it is freed. */
    pwt_queue *q = c->q;
    pthread_mutex_lock(&q->mu);
    for (pwt_node *n = q->head; n != NULL; n = n->next) {
        if (n->conn == c) {
            n->conn = NULL;
        }
    }
    pthread_mutex_unlock(&q->mu);
    pthread_mutex_destroy(&c->addr_mu);
    free(c->secrets);
    free(c);
    atomic_fetch_sub(&LiveObjects, 1);
}

uint32_t pwt_conn_open(pwt_queue *q, pwt_conn **out) {
    if (MsQuic == NULL) {
        return QUIC_STATUS_INVALID_STATE;
    }
    pwt_conn *c = conn_new(q);
    if (c == NULL) {
        return QUIC_STATUS_OUT_OF_MEMORY;
    }
    QUIC_STATUS st = MsQuic->ConnectionOpen(Registration, conn_cb, c, &c->h);
    if (QUIC_FAILED(st)) {
        conn_free(c);
        return st;
    }
    *out = c;
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_conn_start(pwt_conn *c, pwt_config *cfg, const pwt_addr *remote,
                        const char *server_name) {
    QUIC_ADDR qa;
    addr_to_quic(remote, &qa);
    QUIC_STATUS st = MsQuic->SetParam(c->h, QUIC_PARAM_CONN_REMOTE_ADDRESS, sizeof(qa), &qa);
    if (QUIC_FAILED(st)) {
        return st;
    }
    QUIC_ADDRESS_FAMILY fam = remote->family == 6 ? QUIC_ADDRESS_FAMILY_INET6
                                                  : QUIC_ADDRESS_FAMILY_INET;
    return norm(MsQuic->ConnectionStart(c->h, cfg->h, fam, server_name, remote->port));
}

void pwt_conn_shutdown(pwt_conn *c, uint64_t error_code, int32_t silent) {
    MsQuic->ConnectionShutdown(c->h,
                               silent ? QUIC_CONNECTION_SHUTDOWN_FLAG_SILENT
                                      : QUIC_CONNECTION_SHUTDOWN_FLAG_NONE,
                               error_code);
}

/* ------------------------------------------------------------------ */
/* Helper thread for msquic calls that block the caller                */
/*
 * ConnectionClose, called from a thread that is not the connection's
 * worker, queues an operation and WAITS for the worker (msquic 2.5.1 has no
 * async close, QUIC_PARAM_CONN_CLOSE_ASYNC is 2.6).  Every closed connection
 * would cost the event loop such a round trip; closes run on this thread
 * instead, in order, so the loop never waits.  (A client's SetParams before
 * ConnectionStart run inline instead: set_param_before_start.)
 */
typedef struct pwt_job {
    struct pwt_job *next;
    pwt_conn *c;   /* a connection to close, or */
    pwt_stream *s; /* a stream to close */
} pwt_job;

static pthread_mutex_t JobMu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t JobCv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t JobIdleCv = PTHREAD_COND_INITIALIZER;
static pwt_job *JobHead, *JobTail;
static int JobBusy, JobThreadUp;

/* SetParam before ConnectionStart without a worker round trip: our msquic
 * build runs a client connection's SetParam inline when the caller adds this
 * bit and the connection is not started yet (vendor/build_msquic.py, patch 7).
 * A stock msquic refuses the bit (INVALID_PARAMETER): the first call that is
 * refused with it and accepted without it switches the process to plain,
 * blocking SetParams.  1 = inline works, 0 = stock msquic, -1 = not known yet. */
#define PWT_PARAM_BEFORE_START 0x20000000u
static atomic_int BeforeStartParams = -1;

static QUIC_STATUS set_param_before_start(HQUIC h, uint32_t param, uint32_t len, const void *buf) {
    /* Plain ones wait for the connection's worker; HIGH_PRIORITY puts them
     * ahead of the worker's backlog (other connections' handshakes). */
    uint32_t plain = param | QUIC_PARAM_HIGH_PRIORITY;
    int known = atomic_load(&BeforeStartParams);
    if (known == 0) {
        return MsQuic->SetParam(h, plain, len, buf);
    }
    QUIC_STATUS st = MsQuic->SetParam(h, param | PWT_PARAM_BEFORE_START, len, buf);
    if (known == 1) {
        return st;
    }
    if (st != QUIC_STATUS_INVALID_PARAMETER) {
        atomic_store(&BeforeStartParams, 1);
        return st;
    }
    st = MsQuic->SetParam(h, plain, len, buf);
    if (st != QUIC_STATUS_INVALID_PARAMETER) {
        atomic_store(&BeforeStartParams, 0); /* refused only with the bit */
    }
    return st;
}

int32_t pwt_setup_params_inline(void) { return atomic_load(&BeforeStartParams); }

static uint32_t conn_start_now(pwt_conn *c, HQUIC cfg, const pwt_addr *remote,
                               const char *server_name, int name_is_address, int share,
                               const pwt_addr *local, const unsigned char *ticket,
                               uint32_t ticket_len) {
    QUIC_STATUS st;
    if (share) {
        BOOLEAN on = TRUE;
        st = set_param_before_start(c->h, QUIC_PARAM_CONN_SHARE_UDP_BINDING, sizeof(on), &on);
        if (QUIC_FAILED(st)) {
            return st;
        }
        if (local != NULL) {
            QUIC_ADDR la;
            addr_to_quic(local, &la);
            st = set_param_before_start(c->h, QUIC_PARAM_CONN_LOCAL_ADDRESS, sizeof(la), &la);
            if (QUIC_FAILED(st)) {
                return st;
            }
        }
    }
    if (ticket != NULL && ticket_len > 0) {
        /* A stale or foreign ticket only means a full handshake. */
        (void)set_param_before_start(c->h, QUIC_PARAM_CONN_RESUMPTION_TICKET, ticket_len, ticket);
    }
    if (!name_is_address) {
        /* msquic parses an address given as the server name itself. */
        QUIC_ADDR qa;
        addr_to_quic(remote, &qa);
        st = set_param_before_start(c->h, QUIC_PARAM_CONN_REMOTE_ADDRESS, sizeof(qa), &qa);
        if (QUIC_FAILED(st)) {
            return st;
        }
    }
    QUIC_ADDRESS_FAMILY fam = remote->family == 6 ? QUIC_ADDRESS_FAMILY_INET6
                                                  : QUIC_ADDRESS_FAMILY_INET;
    return norm(MsQuic->ConnectionStart(c->h, cfg, fam, server_name, remote->port));
}

static void *job_thread(void *arg) {
    (void)arg;
#ifdef SCHED_BATCH
    /* Batch scheduling: waking this thread must not preempt the event
     * loop's thread (which just queued the job and wants to go on). */
    struct sched_param sp;
    memset(&sp, 0, sizeof(sp));
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
#endif
    pthread_mutex_lock(&JobMu);
    for (;;) {
        while (JobHead == NULL) {
            JobBusy = 0;
            pthread_cond_broadcast(&JobIdleCv);
            pthread_cond_wait(&JobCv, &JobMu);
        }
        pwt_job *j = JobHead;
        JobHead = j->next;
        if (JobHead == NULL) {
            JobTail = NULL;
        }
        JobBusy = 1;
        pthread_mutex_unlock(&JobMu);
        if (j->s != NULL) {
            /* Uncounted first: the close returns the peer's stream credit. */
            atomic_fetch_sub(&j->s->c->live_streams, 1);
            MsQuic->StreamClose(j->s->h);
            bury(j->s);
            atomic_fetch_sub(&LiveObjects, 1);
        } else {
            MsQuic->ConnectionClose(j->c->h);
            conn_free(j->c);
        }
        free(j);
        pthread_mutex_lock(&JobMu);
    }
    return NULL;
}

static int job_submit(pwt_job *j) {
    pthread_mutex_lock(&JobMu);
    if (!JobThreadUp) {
        if (start_detached(job_thread) != 0) {
            pthread_mutex_unlock(&JobMu);
            return 0;
        }
        JobThreadUp = 1;
    }
    j->next = NULL;
    if (JobTail) {
        JobTail->next = j;
    } else {
        JobHead = j;
    }
    JobTail = j;
    JobBusy = 1;
    pthread_cond_signal(&JobCv);
    pthread_mutex_unlock(&JobMu);
    return 1;
}

static void jobs_flush(void) {
    pthread_mutex_lock(&JobMu);
    while (JobThreadUp && (JobHead != NULL || JobBusy)) {
        pthread_cond_wait(&JobIdleCv, &JobMu);
    }
    pthread_mutex_unlock(&JobMu);
}

/* StreamClose from the loop's thread waits for the connection's worker
 * (5-30 us per stream); the helper thread takes that wait instead.  Python
 * closes a stream only after its SHUTDOWN_COMPLETE, so no event of the stream
 * can follow, and jobs run in order, so a connection is closed after its
 * streams. */
static int stream_close_async(pwt_stream *s) {
    pwt_job *j = (pwt_job *)calloc(1, sizeof(pwt_job));
    if (j == NULL) {
        return 0;
    }
    j->s = s;
    if (job_submit(j)) {
        return 1;
    }
    free(j);
    return 0;
}

void pwt_conn_close(pwt_conn *c) {
    if (c == NULL) {
        return;
    }
    pwt_job *j = (pwt_job *)calloc(1, sizeof(pwt_job));
    if (j != NULL) {
        j->c = c;
        if (job_submit(j)) {
            return;
        }
        free(j);
    }
    MsQuic->ConnectionClose(c->h);
    conn_free(c);
}

uint32_t pwt_conn_start_ex(pwt_conn *c, pwt_config *cfg, const pwt_addr *remote,
                           const char *server_name, int32_t name_is_address, int32_t share,
                           const pwt_addr *local, const unsigned char *ticket,
                           uint32_t ticket_len) {
    return conn_start_now(c, cfg->h, remote, server_name, name_is_address, share, local, ticket,
                          ticket_len);
}

uint32_t pwt_conn_stats(pwt_conn *c, pwt_stats *out) {
    QUIC_STATISTICS_V2 st;
    memset(&st, 0, sizeof(st));
    uint32_t sz = sizeof(st);
    /* HIGH_PRIORITY: jump the worker's queue; this call blocks the caller. */
    QUIC_STATUS r = MsQuic->GetParam(c->h, QUIC_PARAM_CONN_STATISTICS_V2 | QUIC_PARAM_HIGH_PRIORITY,
                                     &sz, &st);
    if (QUIC_FAILED(r)) {
        return r;
    }
    memset(out, 0, sizeof(*out));
    out->rtt_us = st.Rtt;
    out->min_rtt_us = st.MinRtt;
    out->max_rtt_us = st.MaxRtt;
    out->rtt_variance_us = st.RttVariance;
    out->cwnd = st.SendCongestionWindow;
    out->path_mtu = st.SendPathMtu;
    out->send_total_packets = st.SendTotalPackets;
    out->send_lost_packets = st.SendSuspectedLostPackets;
    out->send_spurious_lost_packets = st.SendSpuriousLostPackets;
    out->send_total_bytes = st.SendTotalBytes;
    out->send_stream_bytes = st.SendTotalStreamBytes;
    out->send_congestion_count = st.SendCongestionCount;
    out->recv_total_packets = st.RecvTotalPackets;
    out->recv_total_bytes = st.RecvTotalBytes;
    out->recv_stream_bytes = st.RecvTotalStreamBytes;
    out->recv_dropped_packets = st.RecvDroppedPackets;
    out->key_update_count = st.KeyUpdateCount;
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_conn_addr(pwt_conn *c, int32_t remote, pwt_addr *out) {
    pthread_mutex_lock(&c->addr_mu);
    int known = c->addrs_known & (remote ? 2 : 1);
    if (known) {
        *out = remote ? c->remote_addr : c->local_addr;
    }
    pthread_mutex_unlock(&c->addr_mu);
    if (known) {
        return QUIC_STATUS_SUCCESS;
    }
    QUIC_ADDR qa;
    uint32_t sz = sizeof(qa);
    QUIC_STATUS st = MsQuic->GetParam(
        c->h, remote ? QUIC_PARAM_CONN_REMOTE_ADDRESS : QUIC_PARAM_CONN_LOCAL_ADDRESS, &sz, &qa);
    if (QUIC_FAILED(st)) {
        return st;
    }
    addr_from_quic(&qa, out);
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_conn_datagram_send(pwt_conn *c, const unsigned char *data, uint32_t len) {
    pwt_dgram *d = (pwt_dgram *)malloc(sizeof(pwt_dgram) + len);
    if (d == NULL) {
        return QUIC_STATUS_OUT_OF_MEMORY;
    }
    memcpy(d->data, data, len);
    d->buf.Buffer = d->data;
    d->buf.Length = len;
    QUIC_STATUS st = MsQuic->DatagramSend(c->h, &d->buf, 1, QUIC_SEND_FLAG_NONE, d);
    if (QUIC_FAILED(st)) {
        free(d);
    }
    return norm(st);
}

uint32_t pwt_conn_share_binding(pwt_conn *c, const pwt_addr *local) {
    BOOLEAN share = TRUE;
    QUIC_STATUS st = MsQuic->SetParam(c->h, QUIC_PARAM_CONN_SHARE_UDP_BINDING, sizeof(share), &share);
    if (QUIC_FAILED(st) || local == NULL) {
        return norm(st);
    }
    QUIC_ADDR qa;
    addr_to_quic(local, &qa);
    return norm(MsQuic->SetParam(c->h, QUIC_PARAM_CONN_LOCAL_ADDRESS, sizeof(qa), &qa));
}

uint32_t pwt_conn_set_resumption_ticket(pwt_conn *c, const unsigned char *ticket, uint32_t len) {
    return norm(MsQuic->SetParam(c->h, QUIC_PARAM_CONN_RESUMPTION_TICKET, len, ticket));
}

/* Key logging (SSLKEYLOGFILE): msquic writes the handshake's secrets into a struct
 * given before ConnectionStart; Python reads them once the handshake completed
 * (after the CONNECTED record, so the worker's writes are visible through q->mu). */
uint32_t pwt_conn_log_secrets(pwt_conn *c) {
    if (c->secrets == NULL) {
        c->secrets = (QUIC_TLS_SECRETS *)calloc(1, sizeof(QUIC_TLS_SECRETS));
        if (c->secrets == NULL) {
            return QUIC_STATUS_OUT_OF_MEMORY;
        }
    }
    return norm(set_param_before_start(c->h, QUIC_PARAM_CONN_TLS_SECRETS, sizeof(QUIC_TLS_SECRETS),
                                       c->secrets));
}

int32_t pwt_conn_secret(pwt_conn *c, int32_t which, unsigned char *out) {
    /* which: 0 client random (32 bytes), 1 client early traffic, 2 client handshake,
     * 3 server handshake, 4 client traffic 0, 5 server traffic 0.  Returns the
     * length copied into out (64 bytes of room), 0 when that secret is not set. */
    const QUIC_TLS_SECRETS *t = c->secrets;
    if (t == NULL) {
        return 0;
    }
    const uint8_t *src = NULL;
    int set = 0;
    switch (which) {
    case 0: set = t->IsSet.ClientRandom; src = t->ClientRandom; break;
    case 1: set = t->IsSet.ClientEarlyTrafficSecret; src = t->ClientEarlyTrafficSecret; break;
    case 2: set = t->IsSet.ClientHandshakeTrafficSecret; src = t->ClientHandshakeTrafficSecret; break;
    case 3: set = t->IsSet.ServerHandshakeTrafficSecret; src = t->ServerHandshakeTrafficSecret; break;
    case 4: set = t->IsSet.ClientTrafficSecret0; src = t->ClientTrafficSecret0; break;
    case 5: set = t->IsSet.ServerTrafficSecret0; src = t->ServerTrafficSecret0; break;
    default: return 0;
    }
    if (!set) {
        return 0;
    }
    int n = which == 0 ? 32 : t->SecretLength;
    if (n > QUIC_TLS_SECRETS_MAX_SECRET_LEN) {
        return 0;
    }
    memcpy(out, src, (size_t)n);
    return n;
}

void pwt_conn_want_tickets(pwt_conn *c, int32_t want) { atomic_store(&c->want_tickets, want ? 1 : 0); }

void pwt_conn_allow_early_data(pwt_conn *c, int32_t allow) {
    atomic_store(&c->allow_early, allow ? 1 : 0);
}

uint32_t pwt_conn_datagram_max(pwt_conn *c) { return atomic_load(&c->dgram_max); }

int32_t pwt_conn_reliable_reset(pwt_conn *c) { return atomic_load(&c->reliable_reset); }

uint32_t pwt_conn_addr_gen(pwt_conn *c) { return atomic_load(&c->addr_gen); }

uint32_t pwt_conn_alpn(pwt_conn *c, char *out, uint32_t cap) {
    uint32_t n = atomic_load(&c->alpn_len);
    if (n > cap) {
        n = cap;
    }
    memcpy(out, c->alpn, n);
    return n;
}

/* ------------------------------------------------------------------ */
/* Listeners                                                           */

static QUIC_STATUS QUIC_API listener_cb(HQUIC h, void *ctx, QUIC_LISTENER_EVENT *ev) {
    pwt_listener *l = (pwt_listener *)ctx;
    (void)h;
    switch (ev->Type) {
    case QUIC_LISTENER_EVENT_NEW_CONNECTION: {
        pwt_conn *c = conn_new(l->q);
        if (c == NULL) {
            return QUIC_STATUS_OUT_OF_MEMORY;
        }
        c->recv_limit = l->recv_limit;
        c->send_high_water = l->send_high_water;
        c->max_events = l->max_events;
        c->send_ticket = l->send_tickets;
        c->h = ev->NEW_CONNECTION.Connection;
        MsQuic->SetCallbackHandler(c->h, (void *)conn_cb, c);
        QUIC_STATUS st = MsQuic->ConnectionSetConfiguration(c->h, l->cfg);
        if (QUIC_FAILED(st)) {
            /* Rejecting: msquic frees the connection; never close it here. */
            MsQuic->SetCallbackHandler(c->h, (void *)orphan_conn_cb, NULL);
            conn_free(c);
            return st;
        }
        push_simple(l->q, PWT_EV_LISTENER_NEW_CONNECTION, l, c, 0, 0, 0);
        return QUIC_STATUS_SUCCESS;
    }
    case QUIC_LISTENER_EVENT_STOP_COMPLETE:
        push_simple(l->q, PWT_EV_LISTENER_STOP_COMPLETE, l, NULL, 0, 0, 0);
        break;
    default:
        break;
    }
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_listener_open(pwt_queue *q, pwt_config *cfg, pwt_listener **out) {
    if (MsQuic == NULL) {
        return QUIC_STATUS_INVALID_STATE;
    }
    pwt_listener *l = (pwt_listener *)calloc(1, sizeof(pwt_listener));
    if (l == NULL) {
        return QUIC_STATUS_OUT_OF_MEMORY;
    }
    l->q = q;
    l->cfg = cfg->h;
    l->recv_limit = DefaultRecvLimit;
    l->send_high_water = DefaultSendHighWater;
    l->max_events = DefaultMaxEvents;
    QUIC_STATUS st = MsQuic->ListenerOpen(Registration, listener_cb, l, &l->h);
    if (QUIC_FAILED(st)) {
        free(l);
        return st;
    }
    atomic_fetch_add(&LiveObjects, 1);
    *out = l;
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_listener_start(pwt_listener *l, const char *const *alpns, uint32_t alpn_count,
                            const pwt_addr *addr) {
    QUIC_BUFFER bufs[16];
    if (alpn_count == 0 || alpn_count > 16) {
        return QUIC_STATUS_INVALID_PARAMETER;
    }
    for (uint32_t i = 0; i < alpn_count; i++) {
        bufs[i].Length = (uint32_t)strlen(alpns[i]);
        bufs[i].Buffer = (uint8_t *)alpns[i];
    }
    QUIC_ADDR qa;
    addr_to_quic(addr, &qa);
    return norm(MsQuic->ListenerStart(l->h, bufs, alpn_count, &qa));
}

uint32_t pwt_listener_local_addr(pwt_listener *l, pwt_addr *out) {
    QUIC_ADDR qa;
    uint32_t sz = sizeof(qa);
    QUIC_STATUS st = MsQuic->GetParam(l->h, QUIC_PARAM_LISTENER_LOCAL_ADDRESS, &sz, &qa);
    if (QUIC_FAILED(st)) {
        return st;
    }
    addr_from_quic(&qa, out);
    return QUIC_STATUS_SUCCESS;
}

void pwt_listener_stop(pwt_listener *l) { MsQuic->ListenerStop(l->h); }

void pwt_listener_close(pwt_listener *l) {
    if (l == NULL) {
        return;
    }
    MsQuic->ListenerClose(l->h);
    free(l);
    atomic_fetch_sub(&LiveObjects, 1);
}

/* ------------------------------------------------------------------ */
/* Observability: library facts, global counters, per-connection flags  */

int32_t pwt_perf_counters(int64_t *out, int32_t cap) {
    int64_t counters[QUIC_PERF_COUNTER_MAX];
    uint32_t sz = sizeof(counters);
    if (MsQuic == NULL) {
        return -1;
    }
    if (QUIC_FAILED(MsQuic->GetParam(NULL, QUIC_PARAM_GLOBAL_PERF_COUNTERS, &sz, counters))) {
        return -1;
    }
    int32_t n = (int32_t)(sz / sizeof(int64_t));
    if (n > cap) {
        n = cap;
    }
    memcpy(out, counters, (size_t)n * sizeof(int64_t));
    return n;
}

uint32_t pwt_library_info(uint32_t *version4, int32_t *tls_provider, char *git_hash, uint32_t hash_cap) {
    if (MsQuic == NULL) {
        return QUIC_STATUS_INVALID_STATE;
    }
    uint32_t sz = 4 * sizeof(uint32_t);
    QUIC_STATUS st = MsQuic->GetParam(NULL, QUIC_PARAM_GLOBAL_LIBRARY_VERSION, &sz, version4);
    if (QUIC_FAILED(st)) {
        return st;
    }
    QUIC_TLS_PROVIDER provider = QUIC_TLS_PROVIDER_OPENSSL;
    sz = sizeof(provider);
    *tls_provider = QUIC_SUCCEEDED(MsQuic->GetParam(NULL, QUIC_PARAM_GLOBAL_TLS_PROVIDER, &sz, &provider))
                        ? (int32_t)provider
                        : -1;
    if (git_hash != NULL && hash_cap > 0) {
        sz = hash_cap;
        if (QUIC_FAILED(MsQuic->GetParam(NULL, QUIC_PARAM_GLOBAL_LIBRARY_GIT_HASH, &sz, git_hash))) {
            git_hash[0] = 0;
        }
        git_hash[hash_cap - 1] = 0;
    }
    return QUIC_STATUS_SUCCESS;
}

uint32_t pwt_conn_flags(pwt_conn *c, uint32_t *out) {
    QUIC_STATISTICS_V2 st;
    memset(&st, 0, sizeof(st));
    uint32_t sz = sizeof(st);
    QUIC_STATUS r = MsQuic->GetParam(c->h, QUIC_PARAM_CONN_STATISTICS_V2 | QUIC_PARAM_HIGH_PRIORITY,
                                     &sz, &st);
    if (QUIC_FAILED(r)) {
        return r;
    }
    *out = (st.EcnCapable ? PWT_CONN_FLAG_ECN_CAPABLE : 0) |
           (st.ResumptionAttempted ? PWT_CONN_FLAG_RESUMPTION_ATTEMPTED : 0) |
           (st.ResumptionSucceeded ? PWT_CONN_FLAG_RESUMPTION_SUCCEEDED : 0) |
           (st.EncryptionOffloaded ? PWT_CONN_FLAG_ENCRYPTION_OFFLOADED : 0) |
           (st.GreaseBitNegotiated ? PWT_CONN_FLAG_GREASE_BIT : 0);
    return QUIC_STATUS_SUCCESS;
}

#ifndef PWT_PACKAGE_VERSION
#define PWT_PACKAGE_VERSION "unknown"
#endif
const char *pwt_package_version(void) { return PWT_PACKAGE_VERSION; }
