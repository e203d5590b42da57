/* Native msquic baseline for bench/quic_bench.py.
 *
 * One process acts as both server and client over 127.0.0.1 (the same setup
 * as the Python benchmark, which runs server and client on one asyncio loop
 * in one process).  It uses the msquic API directly (MsQuicOpenVersion(2))
 * with the same QUIC settings, registration profile and credentials as the
 * Python layer's defaults (pywebtransport/quic/config.py native_settings and
 * pwt_shim.c):
 *
 *   IdleTimeoutMs 30000, HandshakeIdleTimeoutMs 10000,
 *   PeerBidiStreamCount 100, PeerUnidiStreamCount 100,
 *   StreamRecvWindowDefault 1 MiB, ConnFlowControlWindow 16 MiB,
 *   DatagramReceiveEnabled 1, CongestionControlAlgorithm CUBIC, PacingEnabled 1,
 *   execution profile LOW_LATENCY.
 *
 * Scenarios (methods mirrored exactly by quic_bench.py):
 *   upload     client sends N MiB on one bidi stream (chunk/window below),
 *              server discards; timed from the first send until the server
 *              sees the peer FIN (PEER_SEND_SHUTDOWN).
 *   download   client sends a 1-byte request + FIN; server answers N MiB + FIN;
 *              timed from the request until the client sees the FIN.
 *              Senders keep at most --window-kib KiB in flight in --chunk-kib
 *              pieces (defaults 1024/256 = the Python layer's
 *              send_buffer_high_water and WRITE_CHUNK).  Receivers consume
 *              every RECEIVE inline.
 *   echo       64-byte messages on ONE bidi stream, sequential round trips;
 *              the server echoes inside its RECEIVE callback.  Two client
 *              drivers are measured:
 *                echo_cb_*     next send issued from the client's RECEIVE
 *                              callback (the native floor, no thread handoff);
 *                echo_thread_* main thread sends, then blocks on a condvar
 *                              the RECEIVE callback signals (one cross-thread
 *                              wake-up per round trip, like an event loop).
 *   datagram   send-one-wait-echo: the main thread sends one 64-byte
 *              datagram (carrying a sequence number), waits (200 ms timeout)
 *              for the echo with the same sequence, repeats.  Reported as
 *              round trips per second plus the number lost.
 *   PWT_CUSTOM_EXEC=1 runs msquic on ONE thread owned by this program
 *              (custom execution: ExecutionCreate + ExecutionPoll + epoll),
 *              so echo_cb_* then measures "application code on the msquic
 *              thread" (what running msquic on the asyncio thread would give
 *              at best); docs/dev/custom-execution.md has the numbers.
 *   handshake  sequential: ConnectionOpen + ConnectionStart, wait CONNECTED,
 *              ConnectionShutdown(0), wait SHUTDOWN_COMPLETE, ConnectionClose.
 *              The client configuration is opened once and reused.
 *
 * Output: one JSON object on stdout.
 */
#define _GNU_SOURCE
#define QUIC_API_ENABLE_PREVIEW_FEATURES 1 /* QUIC_GLOBAL_EXECUTION_CONFIG */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msquic.h"

#define MSG 64
#define WAIT_FOREVER (-1)

static const QUIC_API_TABLE *Q;
static HQUIC Reg, SrvCfg, CliCfg, Listener;
static uint16_t Port;

enum { M_UPLOAD = 1, M_DOWNLOAD = 2, M_ECHO = 3, M_ECHO_LOOP = 4 };
static atomic_int ServerMode; /* what the server does with the next peer stream */
static uint64_t Bytes;        /* transfer size for upload/download */
static uint64_t Chunk = 256 * 1024;
static uint64_t Window = 1024 * 1024;
static unsigned char *Data; /* Chunk bytes of payload, shared by all senders */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, QUIC_STATUS st) {
    fprintf(stderr, "baseline: %s failed: 0x%x\n", what, (unsigned)st);
    exit(2);
}

/* ------------------------------------------------------------------ */
/* A counter main waits on and callbacks bump.                         */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t count;
} counter_t;

static void ctr_init(counter_t *c) {
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &a);
    c->count = 0;
}

static void ctr_set(counter_t *c, uint64_t v) {
    pthread_mutex_lock(&c->mu);
    c->count = v;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void ctr_add(counter_t *c) {
    pthread_mutex_lock(&c->mu);
    c->count++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Wait until count >= target; returns 0, or -1 on timeout. */
static int ctr_wait(counter_t *c, uint64_t target, int timeout_ms) {
    struct timespec dl;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    while (c->count < target) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&c->cv, &c->mu);
        } else if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) {
            rc = c->count >= target ? 0 : -1;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */

typedef struct bstream {
    HQUIC h;
    int mode;
    int server;
    pthread_mutex_t mu; /* guards the bulk-send pump (main + worker threads) */
    uint64_t total, sent, outstanding, received;
    QUIC_BUFFER full, tail;
    uint64_t t_end;
    /* echo (client side) */
    int echo_driver;      /* ECHO_CB, ECHO_THREAD or ECHO_LOOP */
    uint64_t rounds, done;
    uint64_t t_last;
    uint64_t *samples;
    counter_t *echo_ctr;  /* thread driver: bumped per completed round */
} bstream;

enum { ECHO_CB = 0, ECHO_THREAD = 1, ECHO_LOOP = 2 };

/* "loop" echo driver: one application thread serves both sides, like the
 * Python layer's single asyncio loop.  Server RECEIVE callbacks hand the
 * bytes to that thread, which sends the echo; client RECEIVE callbacks
 * report completed rounds to it. */
typedef struct loop_item {
    QUIC_BUFFER buf; /* first: SEND_COMPLETE frees the item */
    struct loop_item *next;
    HQUIC h;
    unsigned char data[];
} loop_item;
static pthread_mutex_t LoopMu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t LoopCv = PTHREAD_COND_INITIALIZER;
static loop_item *LoopHead, *LoopTail;
static uint64_t LoopClientDone;
static double EchoLoopCpuUs;

static counter_t UploadDone, DownloadDone, EchoDone, EchoRound, StreamsClosed;
static uint64_t UploadEnd;
static QUIC_BUFFER EchoBuf;
static unsigned char EchoBytes[MSG];

/* Keep up to Window bytes in flight, Chunk bytes per StreamSend. */
static void pump(bstream *s) {
    pthread_mutex_lock(&s->mu);
    while (s->sent < s->total && s->outstanding + Chunk <= Window) {
        uint64_t len = s->total - s->sent < Chunk ? s->total - s->sent : Chunk;
        int fin = s->sent + len == s->total;
        QUIC_BUFFER *b = &s->full;
        if (len != Chunk) {
            s->tail.Buffer = Data;
            s->tail.Length = (uint32_t)len;
            b = &s->tail;
        }
        s->sent += len;
        s->outstanding += len;
        QUIC_STATUS st = Q->StreamSend(s->h, b, 1, fin ? QUIC_SEND_FLAG_FIN : QUIC_SEND_FLAG_NONE,
                                       (void *)(uintptr_t)len);
        if (QUIC_FAILED(st)) {
            die("StreamSend", st);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static bstream *bstream_new(int mode, int server) {
    bstream *s = calloc(1, sizeof(*s));
    s->mode = mode;
    s->server = server;
    pthread_mutex_init(&s->mu, NULL);
    s->full.Buffer = Data;
    s->full.Length = (uint32_t)Chunk;
    return s;
}

typedef struct {
    QUIC_BUFFER buf;
    unsigned char data[];
} owned_buf;

static QUIC_STATUS QUIC_API server_stream_cb(HQUIC h, void *ctx, QUIC_STREAM_EVENT *ev) {
    bstream *s = ctx;
    switch (ev->Type) {
    case QUIC_STREAM_EVENT_RECEIVE:
        if (s->mode == M_ECHO_LOOP && ev->RECEIVE.TotalBufferLength > 0) {
            uint64_t n = ev->RECEIVE.TotalBufferLength;
            loop_item *it = malloc(sizeof(loop_item) + n);
            uint64_t off = 0;
            for (uint32_t i = 0; i < ev->RECEIVE.BufferCount; i++) {
                memcpy(it->data + off, ev->RECEIVE.Buffers[i].Buffer, ev->RECEIVE.Buffers[i].Length);
                off += ev->RECEIVE.Buffers[i].Length;
            }
            it->buf.Buffer = it->data;
            it->buf.Length = (uint32_t)n;
            it->h = h;
            it->next = NULL;
            pthread_mutex_lock(&LoopMu);
            if (LoopTail) {
                LoopTail->next = it;
            } else {
                LoopHead = it;
            }
            LoopTail = it;
            pthread_cond_signal(&LoopCv);
            pthread_mutex_unlock(&LoopMu);
        } else if (s->mode == M_ECHO && ev->RECEIVE.TotalBufferLength > 0) {
            uint64_t n = ev->RECEIVE.TotalBufferLength;
            owned_buf *o = malloc(sizeof(owned_buf) + n);
            uint64_t off = 0;
            for (uint32_t i = 0; i < ev->RECEIVE.BufferCount; i++) {
                memcpy(o->data + off, ev->RECEIVE.Buffers[i].Buffer, ev->RECEIVE.Buffers[i].Length);
                off += ev->RECEIVE.Buffers[i].Length;
            }
            o->buf.Buffer = o->data;
            o->buf.Length = (uint32_t)n;
            QUIC_STATUS st = Q->StreamSend(h, &o->buf, 1, QUIC_SEND_FLAG_NONE, o);
            if (QUIC_FAILED(st)) {
                free(o);
            }
        } else {
            s->received += ev->RECEIVE.TotalBufferLength;
        }
        break;
    case QUIC_STREAM_EVENT_PEER_SEND_SHUTDOWN:
        if (s->mode == M_UPLOAD) {
            UploadEnd = now_ns();
            ctr_add(&UploadDone);
            Q->StreamShutdown(h, QUIC_STREAM_SHUTDOWN_FLAG_GRACEFUL, 0);
        } else if (s->mode == M_DOWNLOAD) {
            s->total = Bytes;
            pump(s);
        } else {
            Q->StreamShutdown(h, QUIC_STREAM_SHUTDOWN_FLAG_GRACEFUL, 0);
        }
        break;
    case QUIC_STREAM_EVENT_SEND_COMPLETE:
        if (s->mode == M_ECHO || s->mode == M_ECHO_LOOP) {
            free(ev->SEND_COMPLETE.ClientContext);
        } else if (s->mode == M_DOWNLOAD) {
            pthread_mutex_lock(&s->mu);
            s->outstanding -= (uint64_t)(uintptr_t)ev->SEND_COMPLETE.ClientContext;
            pthread_mutex_unlock(&s->mu);
            pump(s);
        }
        break;
    case QUIC_STREAM_EVENT_SHUTDOWN_COMPLETE:
        if (!ev->SHUTDOWN_COMPLETE.AppCloseInProgress) {
            Q->StreamClose(h);
        }
        free(s);
        break;
    default:
        break;
    }
    return QUIC_STATUS_SUCCESS;
}

static QUIC_STATUS QUIC_API client_stream_cb(HQUIC h, void *ctx, QUIC_STREAM_EVENT *ev) {
    bstream *s = ctx;
    switch (ev->Type) {
    case QUIC_STREAM_EVENT_RECEIVE:
        s->received += ev->RECEIVE.TotalBufferLength;
        if (s->mode == M_ECHO || s->mode == M_ECHO_LOOP) {
            while (s->done < s->rounds && s->received >= (s->done + 1) * MSG) {
                s->done++;
                if (s->echo_driver == ECHO_CB) {
                    uint64_t t = now_ns();
                    s->samples[s->done - 1] = t - s->t_last;
                    s->t_last = t;
                    if (s->done < s->rounds) {
                        QUIC_STATUS st = Q->StreamSend(h, &EchoBuf, 1, QUIC_SEND_FLAG_NONE, NULL);
                        if (QUIC_FAILED(st)) {
                            die("StreamSend(echo)", st);
                        }
                    } else {
                        ctr_add(&EchoDone);
                    }
                } else if (s->echo_driver == ECHO_LOOP) {
                    pthread_mutex_lock(&LoopMu);
                    LoopClientDone++;
                    pthread_cond_signal(&LoopCv);
                    pthread_mutex_unlock(&LoopMu);
                } else {
                    ctr_add(s->echo_ctr);
                }
            }
        }
        break;
    case QUIC_STREAM_EVENT_PEER_SEND_SHUTDOWN:
        if (s->mode == M_DOWNLOAD) {
            s->t_end = now_ns();
            ctr_add(&DownloadDone);
        }
        break;
    case QUIC_STREAM_EVENT_SEND_COMPLETE:
        if (s->mode == M_UPLOAD && ev->SEND_COMPLETE.ClientContext != NULL) {
            pthread_mutex_lock(&s->mu);
            s->outstanding -= (uint64_t)(uintptr_t)ev->SEND_COMPLETE.ClientContext;
            pthread_mutex_unlock(&s->mu);
            pump(s);
        }
        break;
    case QUIC_STREAM_EVENT_SHUTDOWN_COMPLETE:
        ctr_add(&StreamsClosed);
        break;
    default:
        break;
    }
    return QUIC_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static QUIC_STATUS QUIC_API server_conn_cb(HQUIC h, void *ctx, QUIC_CONNECTION_EVENT *ev) {
    (void)ctx;
    switch (ev->Type) {
    case QUIC_CONNECTION_EVENT_PEER_STREAM_STARTED: {
        bstream *s = bstream_new(atomic_load(&ServerMode), 1);
        s->h = ev->PEER_STREAM_STARTED.Stream;
        Q->SetCallbackHandler(s->h, (void *)server_stream_cb, s);
        break;
    }
    case QUIC_CONNECTION_EVENT_DATAGRAM_RECEIVED: {
        const QUIC_BUFFER *b = ev->DATAGRAM_RECEIVED.Buffer;
        owned_buf *o = malloc(sizeof(owned_buf) + b->Length);
        memcpy(o->data, b->Buffer, b->Length);
        o->buf.Buffer = o->data;
        o->buf.Length = b->Length;
        if (QUIC_FAILED(Q->DatagramSend(h, &o->buf, 1, QUIC_SEND_FLAG_NONE, o))) {
            free(o);
        }
        break;
    }
    case QUIC_CONNECTION_EVENT_DATAGRAM_SEND_STATE_CHANGED:
        if (QUIC_DATAGRAM_SEND_STATE_IS_FINAL(ev->DATAGRAM_SEND_STATE_CHANGED.State)) {
            free(ev->DATAGRAM_SEND_STATE_CHANGED.ClientContext);
        }
        break;
    case QUIC_CONNECTION_EVENT_SHUTDOWN_COMPLETE:
        if (!ev->SHUTDOWN_COMPLETE.AppCloseInProgress) {
            Q->ConnectionClose(h);
        }
        break;
    default:
        break;
    }
    return QUIC_STATUS_SUCCESS;
}

static QUIC_STATUS QUIC_API listener_cb(HQUIC h, void *ctx, QUIC_LISTENER_EVENT *ev) {
    (void)h;
    (void)ctx;
    if (ev->Type == QUIC_LISTENER_EVENT_NEW_CONNECTION) {
        Q->SetCallbackHandler(ev->NEW_CONNECTION.Connection, (void *)server_conn_cb, NULL);
        return Q->ConnectionSetConfiguration(ev->NEW_CONNECTION.Connection, SrvCfg);
    }
    return QUIC_STATUS_SUCCESS;
}

typedef struct {
    counter_t connected;
    counter_t closed;
    atomic_uint dgram_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t last_seq; /* sequence of the last echoed datagram + 1 */
    void *slot_unused;
} client_conn;

static QUIC_STATUS QUIC_API client_conn_cb(HQUIC h, void *ctx, QUIC_CONNECTION_EVENT *ev) {
    client_conn *c = ctx;
    (void)h;
    switch (ev->Type) {
    case QUIC_CONNECTION_EVENT_CONNECTED:
        ctr_add(&c->connected);
        break;
    case QUIC_CONNECTION_EVENT_DATAGRAM_STATE_CHANGED:
        atomic_store(&c->dgram_max, ev->DATAGRAM_STATE_CHANGED.SendEnabled
                                        ? ev->DATAGRAM_STATE_CHANGED.MaxSendLength
                                        : 0);
        break;
    case QUIC_CONNECTION_EVENT_DATAGRAM_RECEIVED: {
        const QUIC_BUFFER *b = ev->DATAGRAM_RECEIVED.Buffer;
        uint64_t seq = 0;
        if (b->Length >= sizeof(seq)) {
            memcpy(&seq, b->Buffer, sizeof(seq));
            pthread_mutex_lock(&c->mu);
            c->last_seq = seq + 1;
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
        }
        break;
    }
    case QUIC_CONNECTION_EVENT_DATAGRAM_SEND_STATE_CHANGED:
        if (QUIC_DATAGRAM_SEND_STATE_IS_FINAL(ev->DATAGRAM_SEND_STATE_CHANGED.State)) {
            free(ev->DATAGRAM_SEND_STATE_CHANGED.ClientContext);
        }
        break;
    case QUIC_CONNECTION_EVENT_SHUTDOWN_COMPLETE:
        ctr_add(&c->closed);
        break;
    default:
        break;
    }
    return QUIC_STATUS_SUCCESS;
}

static void client_conn_init(client_conn *c) {
    memset(c, 0, sizeof(*c));
    ctr_init(&c->connected);
    ctr_init(&c->closed);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static HQUIC client_connect(client_conn *c, HQUIC cfg) {
    HQUIC conn;
    QUIC_STATUS st = Q->ConnectionOpen(Reg, client_conn_cb, c, &conn);
    if (QUIC_FAILED(st)) {
        die("ConnectionOpen", st);
    }
    QUIC_ADDR ra;
    memset(&ra, 0, sizeof(ra));
    ra.Ipv4.sin_family = AF_INET;
    ra.Ipv4.sin_port = htons(Port);
    inet_pton(AF_INET, "127.0.0.1", &ra.Ipv4.sin_addr);
    st = Q->SetParam(conn, QUIC_PARAM_CONN_REMOTE_ADDRESS, sizeof(ra), &ra);
    if (QUIC_FAILED(st)) {
        die("SetParam(remote)", st);
    }
    st = Q->ConnectionStart(conn, cfg, QUIC_ADDRESS_FAMILY_INET, "127.0.0.1", Port);
    if (QUIC_FAILED(st)) {
        die("ConnectionStart", st);
    }
    if (ctr_wait(&c->connected, 1, 10000) != 0) {
        fprintf(stderr, "baseline: handshake timed out\n");
        exit(2);
    }
    return conn;
}

static void client_close(HQUIC conn, client_conn *c) {
    Q->ConnectionShutdown(conn, QUIC_CONNECTION_SHUTDOWN_FLAG_NONE, 0);
    ctr_wait(&c->closed, 1, WAIT_FOREVER);
    Q->ConnectionClose(conn);
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

static uint64_t streams_opened;

static bstream *open_stream(HQUIC conn, int mode) {
    atomic_store(&ServerMode, mode);
    bstream *s = bstream_new(mode, 0);
    QUIC_STATUS st = Q->StreamOpen(conn, QUIC_STREAM_OPEN_FLAG_NONE, client_stream_cb, s, &s->h);
    if (QUIC_FAILED(st)) {
        die("StreamOpen", st);
    }
    st = Q->StreamStart(s->h, QUIC_STREAM_START_FLAG_NONE);
    if (QUIC_FAILED(st)) {
        die("StreamStart", st);
    }
    streams_opened++;
    return s;
}

static void close_stream(bstream *s) {
    ctr_wait(&StreamsClosed, streams_opened, WAIT_FOREVER);
    Q->StreamClose(s->h);
    free(s->samples);
    free(s);
}

static double upload(HQUIC conn, uint64_t bytes) {
    uint64_t before = UploadDone.count;
    bstream *s = open_stream(conn, M_UPLOAD);
    s->total = bytes;
    uint64_t t0 = now_ns();
    pump(s);
    ctr_wait(&UploadDone, before + 1, WAIT_FOREVER);
    double secs = (double)(UploadEnd - t0) / 1e9;
    close_stream(s);
    return (double)bytes / (1024.0 * 1024.0) / secs;
}

static double download(HQUIC conn, uint64_t bytes) {
    static const unsigned char req[1] = {'D'};
    static QUIC_BUFFER rb = {1, (uint8_t *)req};
    Bytes = bytes;
    uint64_t before = DownloadDone.count;
    bstream *s = open_stream(conn, M_DOWNLOAD);
    uint64_t t0 = now_ns();
    QUIC_STATUS st = Q->StreamSend(s->h, &rb, 1, QUIC_SEND_FLAG_FIN, NULL);
    if (QUIC_FAILED(st)) {
        die("StreamSend(request)", st);
    }
    ctr_wait(&DownloadDone, before + 1, WAIT_FOREVER);
    double secs = (double)(s->t_end - t0) / 1e9;
    if (s->received != bytes) {
        fprintf(stderr, "baseline: download got %" PRIu64 " of %" PRIu64 " bytes\n", s->received,
                bytes);
        exit(2);
    }
    close_stream(s);
    return (double)bytes / (1024.0 * 1024.0) / secs;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, uint64_t n, double p) {
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* Runs warmup + rounds round trips on one stream; fills p50/p99 (us). */
static void echo(HQUIC conn, uint64_t rounds, uint64_t warmup, int driver, double *p50,
                 double *p99) {
    bstream *s = open_stream(conn, driver == ECHO_LOOP ? M_ECHO_LOOP : M_ECHO);
    uint64_t total = rounds + warmup;
    s->rounds = total;
    s->samples = calloc(total, sizeof(uint64_t));
    s->echo_driver = driver;
    if (driver == ECHO_LOOP) {
        LoopClientDone = 0;
        struct timespec c0, c1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        for (uint64_t i = 0; i < total; i++) {
            uint64_t t0 = now_ns();
            QUIC_STATUS st = Q->StreamSend(s->h, &EchoBuf, 1, QUIC_SEND_FLAG_NONE, NULL);
            if (QUIC_FAILED(st)) {
                die("StreamSend(echo)", st);
            }
            pthread_mutex_lock(&LoopMu);
            for (;;) {
                while (LoopHead) {
                    loop_item *it = LoopHead;
                    LoopHead = it->next;
                    if (!LoopHead) {
                        LoopTail = NULL;
                    }
                    pthread_mutex_unlock(&LoopMu);
                    if (QUIC_FAILED(Q->StreamSend(it->h, &it->buf, 1, QUIC_SEND_FLAG_NONE, it))) {
                        free(it);
                    }
                    pthread_mutex_lock(&LoopMu);
                }
                if (LoopClientDone >= i + 1) {
                    break;
                }
                pthread_cond_wait(&LoopCv, &LoopMu);
            }
            pthread_mutex_unlock(&LoopMu);
            s->samples[i] = now_ns() - t0;
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        EchoLoopCpuUs = ((double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec)) /
                        1e3 / (double)total;
    } else if (driver == ECHO_CB) {
        uint64_t before = EchoDone.count;
        s->t_last = now_ns();
        QUIC_STATUS st = Q->StreamSend(s->h, &EchoBuf, 1, QUIC_SEND_FLAG_NONE, NULL);
        if (QUIC_FAILED(st)) {
            die("StreamSend(echo)", st);
        }
        ctr_wait(&EchoDone, before + 1, WAIT_FOREVER);
    } else {
        ctr_set(&EchoRound, 0);
        s->echo_ctr = &EchoRound;
        for (uint64_t i = 0; i < total; i++) {
            uint64_t t0 = now_ns();
            QUIC_STATUS st = Q->StreamSend(s->h, &EchoBuf, 1, QUIC_SEND_FLAG_NONE, NULL);
            if (QUIC_FAILED(st)) {
                die("StreamSend(echo)", st);
            }
            ctr_wait(&EchoRound, i + 1, WAIT_FOREVER);
            s->samples[i] = now_ns() - t0;
        }
    }
    Q->StreamShutdown(s->h, QUIC_STREAM_SHUTDOWN_FLAG_GRACEFUL, 0);
    uint64_t *v = s->samples + warmup;
    qsort(v, rounds, sizeof(uint64_t), cmp_u64);
    *p50 = pct(v, rounds, 0.50);
    *p99 = pct(v, rounds, 0.99);
    close_stream(s);
}

static double datagrams(HQUIC conn, client_conn *c, uint64_t rounds, uint64_t *lost) {
    for (int i = 0; i < 1000 && atomic_load(&c->dgram_max) == 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&c->dgram_max) == 0) {
        fprintf(stderr, "baseline: datagrams not enabled\n");
        exit(2);
    }
    *lost = 0;
    uint64_t t0 = now_ns();
    for (uint64_t seq = 0; seq < rounds; seq++) {
        owned_buf *o = malloc(sizeof(owned_buf) + MSG);
        memset(o->data, 'x', MSG);
        memcpy(o->data, &seq, sizeof(seq));
        o->buf.Buffer = o->data;
        o->buf.Length = MSG;
        QUIC_STATUS st = Q->DatagramSend(conn, &o->buf, 1, QUIC_SEND_FLAG_NONE, o);
        if (QUIC_FAILED(st)) {
            die("DatagramSend", st);
        }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 200 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&c->mu);
        while (c->last_seq != seq + 1) {
            if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) {
                (*lost)++;
                break;
            }
        }
        pthread_mutex_unlock(&c->mu);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    return (double)rounds / secs;
}

static HQUIC open_client_config(void);
static uint64_t HsConnectNs, HsCloseNs;

/* new_cfg: open (and close) a client configuration per connection, as the
 * Python layer's connect() does, instead of reusing one. */
static double handshakes(uint64_t n, int new_cfg) {
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        client_conn c;
        client_conn_init(&c);
        HQUIC cfg = new_cfg ? open_client_config() : CliCfg;
        uint64_t ta = now_ns();
        HQUIC conn = client_connect(&c, cfg);
        uint64_t tb = now_ns();
        client_close(conn, &c);
        HsConnectNs += tb - ta;
        HsCloseNs += now_ns() - tb;
        if (new_cfg) {
            Q->ConfigurationClose(cfg);
        }
    }
    return (double)n / ((double)(now_ns() - t0) / 1e9);
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */

static void settings(QUIC_SETTINGS *s) {
    memset(s, 0, sizeof(*s));
    s->IdleTimeoutMs = 30000;
    s->IsSet.IdleTimeoutMs = 1;
    s->HandshakeIdleTimeoutMs = 10000;
    s->IsSet.HandshakeIdleTimeoutMs = 1;
    s->PeerBidiStreamCount = 100;
    s->IsSet.PeerBidiStreamCount = 1;
    s->PeerUnidiStreamCount = 100;
    s->IsSet.PeerUnidiStreamCount = 1;
    s->StreamRecvWindowDefault = 1u << 20;
    s->IsSet.StreamRecvWindowDefault = 1;
    s->ConnFlowControlWindow = 16u << 20;
    s->IsSet.ConnFlowControlWindow = 1;
    s->DatagramReceiveEnabled = 1;
    s->IsSet.DatagramReceiveEnabled = 1;
    s->CongestionControlAlgorithm = QUIC_CONGESTION_CONTROL_ALGORITHM_CUBIC;
    s->IsSet.CongestionControlAlgorithm = 1;
    s->PacingEnabled = 1;
    s->IsSet.PacingEnabled = 1;
}

static HQUIC open_config(QUIC_BUFFER *alpn, QUIC_CREDENTIAL_CONFIG *cc) {
    QUIC_SETTINGS s;
    settings(&s);
    HQUIC cfg;
    QUIC_STATUS st = Q->ConfigurationOpen(Reg, alpn, 1, &s, sizeof(s), NULL, &cfg);
    if (QUIC_FAILED(st)) {
        die("ConfigurationOpen", st);
    }
    st = Q->ConfigurationLoadCredential(cfg, cc);
    if (QUIC_FAILED(st)) {
        die("ConfigurationLoadCredential", st);
    }
    return cfg;
}

static QUIC_BUFFER Alpn;

static HQUIC open_client_config(void) {
    QUIC_CREDENTIAL_CONFIG ccc;
    memset(&ccc, 0, sizeof(ccc));
    ccc.Type = QUIC_CREDENTIAL_TYPE_NONE;
    ccc.Flags = QUIC_CREDENTIAL_FLAG_CLIENT | QUIC_CREDENTIAL_FLAG_NO_CERTIFICATE_VALIDATION;
    return open_config(&Alpn, &ccc);
}

static void usage(void) {
    fprintf(stderr,
            "usage: baseline --cert PEM --key PEM [--size-mib N] [--rounds N] [--warmup N]\n"
            "                [--dgram-rounds N] [--handshakes N] [--chunk-kib N] [--window-kib N]\n"
            "                [--warmup-mib N] [--alpn NAME] [--only a,b,...]\n"
            "scenarios for --only: upload,download,echo,datagram,handshake\n");
    exit(1);
}

static QUIC_EXECUTION *Exec;
static int ExecFd;
/* msquic on ONE application-owned thread (custom execution): every callback
 * of both endpoints runs here, as it would on the asyncio thread. */
static void *pump_thread(void *arg) {
    (void)arg;
    struct epoll_event evs[16];
    for (;;) {
        uint32_t wait = Q->ExecutionPoll(Exec);
        int n = epoll_wait(ExecFd, evs, 16, wait == UINT32_MAX ? -1 : (int)wait);
        for (int i = 0; i < n; i++) {
            QUIC_SQE *sqe = (QUIC_SQE *)evs[i].data.ptr;
            sqe->Completion(&evs[i]);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *cert = NULL, *key = NULL, *alpn_name = "bench", *only = NULL;
    uint64_t size_mib = 256, rounds = 5000, warmup = 200, dgram_rounds = 5000, n_hs = 200;
    uint64_t warmup_mib = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (!strcmp(a, "--cert")) cert = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--alpn")) alpn_name = v;
        else if (!strcmp(a, "--only")) only = v;
        else if (!strcmp(a, "--size-mib")) size_mib = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--warmup-mib")) warmup_mib = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--rounds")) rounds = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--warmup")) warmup = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dgram-rounds")) dgram_rounds = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--handshakes")) n_hs = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--chunk-kib")) Chunk = strtoull(v, NULL, 10) * 1024;
        else if (!strcmp(a, "--window-kib")) Window = strtoull(v, NULL, 10) * 1024;
        else usage();
        i++;
    }
    if (!cert || !key || rounds == 0 || Chunk == 0 || Window < Chunk) {
        usage();
    }
#define WANT(name) (only == NULL || strstr(only, name) != NULL)

    Data = malloc(Chunk);
    memset(Data, 'b', Chunk);
    memset(EchoBytes, 'e', MSG);
    EchoBuf.Buffer = EchoBytes;
    EchoBuf.Length = MSG;
    ctr_init(&UploadDone);
    ctr_init(&DownloadDone);
    ctr_init(&EchoDone);
    ctr_init(&EchoRound);
    ctr_init(&StreamsClosed);

    QUIC_STATUS st = MsQuicOpenVersion(QUIC_API_VERSION_2, (const void **)&Q);
    if (QUIC_FAILED(st)) {
        die("MsQuicOpenVersion(2)", st);
    }
    /* Same worker polling as the Python layer (PYWEBTRANSPORT_MSQUIC_POLL_US), so both
     * sides of the comparison run msquic identically. */
    const char *poll = getenv("PWT_BASELINE_POLL_US");
    if (poll != NULL && atoi(poll) >= 0) {
        QUIC_GLOBAL_EXECUTION_CONFIG ec;
        memset(&ec, 0, sizeof(ec));
        ec.PollingIdleTimeoutUs = (uint32_t)atoi(poll);
        st = Q->SetParam(NULL, QUIC_PARAM_GLOBAL_EXECUTION_CONFIG, QUIC_GLOBAL_EXECUTION_CONFIG_MIN_SIZE, &ec);
        if (QUIC_FAILED(st)) {
            die("SetParam(GLOBAL_EXECUTION_CONFIG)", st);
        }
    }
    if (getenv("PWT_CUSTOM_EXEC")) {
        static int epfd;
        epfd = epoll_create1(EPOLL_CLOEXEC);
        QUIC_EXECUTION_CONFIG xc = {0, &epfd};
        st = Q->ExecutionCreate(QUIC_GLOBAL_EXECUTION_CONFIG_FLAG_NONE, 0, 1, &xc, &Exec);
        if (QUIC_FAILED(st)) {
            die("ExecutionCreate", st);
        }
        ExecFd = epfd;
        pthread_t th;
        pthread_create(&th, NULL, pump_thread, NULL);
    }
    QUIC_REGISTRATION_CONFIG rc = {"pwt-baseline", QUIC_EXECUTION_PROFILE_LOW_LATENCY};
    st = Q->RegistrationOpen(&rc, &Reg);
    if (QUIC_FAILED(st)) {
        die("RegistrationOpen", st);
    }
    Alpn.Length = (uint32_t)strlen(alpn_name);
    Alpn.Buffer = (uint8_t *)alpn_name;

    QUIC_CERTIFICATE_FILE cf = {key, cert};
    QUIC_CREDENTIAL_CONFIG scc;
    memset(&scc, 0, sizeof(scc));
    scc.Type = QUIC_CREDENTIAL_TYPE_CERTIFICATE_FILE;
    scc.CertificateFile = &cf;
    SrvCfg = open_config(&Alpn, &scc);
    CliCfg = open_client_config();

    st = Q->ListenerOpen(Reg, listener_cb, NULL, &Listener);
    if (QUIC_FAILED(st)) {
        die("ListenerOpen", st);
    }
    QUIC_ADDR la;
    memset(&la, 0, sizeof(la));
    la.Ipv4.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &la.Ipv4.sin_addr);
    st = Q->ListenerStart(Listener, &Alpn, 1, &la);
    if (QUIC_FAILED(st)) {
        die("ListenerStart", st);
    }
    uint32_t sz = sizeof(la);
    st = Q->GetParam(Listener, QUIC_PARAM_LISTENER_LOCAL_ADDRESS, &sz, &la);
    if (QUIC_FAILED(st)) {
        die("GetParam(listener address)", st);
    }
    Port = ntohs(la.Ipv4.sin_port);

    client_conn cc;
    client_conn_init(&cc);
    HQUIC conn = client_connect(&cc, CliCfg);

    printf("{\"impl\": \"c-msquic\", \"size_mib\": %" PRIu64 ", \"chunk_kib\": %" PRIu64
           ", \"window_kib\": %" PRIu64,
           size_mib, Chunk / 1024, Window / 1024);
    uint64_t bytes = size_mib << 20;
    if (warmup_mib && (WANT("upload") || WANT("download"))) {
        upload(conn, warmup_mib << 20);
        download(conn, warmup_mib << 20);
    }
    if (WANT("upload")) {
        printf(", \"upload_mib_s\": %.1f", upload(conn, bytes));
        fflush(stdout);
    }
    if (WANT("download")) {
        printf(", \"download_mib_s\": %.1f", download(conn, bytes));
        fflush(stdout);
    }
    if (WANT("echo")) {
        double p50, p99;
        echo(conn, rounds, warmup, ECHO_CB, &p50, &p99);
        printf(", \"echo_rounds\": %" PRIu64 ", \"echo_cb_p50_us\": %.1f, \"echo_cb_p99_us\": %.1f",
               rounds, p50, p99);
        echo(conn, rounds, warmup, ECHO_THREAD, &p50, &p99);
        printf(", \"echo_thread_p50_us\": %.1f, \"echo_thread_p99_us\": %.1f", p50, p99);
        echo(conn, rounds, warmup, ECHO_LOOP, &p50, &p99);
        printf(", \"echo_loop_p50_us\": %.1f, \"echo_loop_p99_us\": %.1f", p50, p99);
        printf(", \"echo_loop_cpu_us\": %.1f", EchoLoopCpuUs);
        fflush(stdout);
    }
    if (WANT("datagram")) {
        uint64_t lost;
        double rate = datagrams(conn, &cc, dgram_rounds, &lost);
        printf(", \"dgram_rounds\": %" PRIu64 ", \"dgram_rt_per_s\": %.0f, \"dgram_lost\": %" PRIu64,
               dgram_rounds, rate, lost);
        fflush(stdout);
    }
    client_close(conn, &cc);
    if (WANT("handshake") && n_hs) {
        printf(", \"handshakes\": %" PRIu64 ", \"handshakes_per_s\": %.1f", n_hs, handshakes(n_hs, 0));
        printf(", \"hs_connect_us\": %.0f, \"hs_close_us\": %.0f", HsConnectNs / 1e3 / n_hs,
               HsCloseNs / 1e3 / n_hs);
        HsConnectNs = HsCloseNs = 0;
        printf(", \"handshakes_newcfg_per_s\": %.1f", handshakes(n_hs, 1));
        printf(", \"hs_newcfg_connect_us\": %.0f, \"hs_newcfg_close_us\": %.0f",
               HsConnectNs / 1e3 / n_hs, HsCloseNs / 1e3 / n_hs);
    }
    printf("}\n");
    fflush(stdout);

    if (Exec) {
        _exit(0); /* 2.5.1 cannot tear custom execution down reliably */
    }
    Q->ListenerClose(Listener);
    Q->ConfigurationClose(CliCfg);
    Q->ConfigurationClose(SrvCfg);
    Q->RegistrationClose(Reg);
    MsQuicClose(Q);
    free(Data);
    return 0;
}
