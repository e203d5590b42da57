/* The C shim's interface to Python.
 *
 * This file is read twice: by the C compiler (through pwt_shim.c) and by
 * cffi's cdef in build_ffi.py.  It must therefore contain only what cffi's
 * parser understands: typedefs, structs, prototypes and integer #defines.
 *
 * Model: msquic callbacks run on msquic's worker threads and never touch
 * Python.  Each callback turns its event into a pwt_event record appended to
 * the pwt_queue of the object's event loop.  The queue signals one fd on the
 * empty -> non-empty transition; Python drains every pending record with one
 * pwt_queue_poll() call per wake-up.
 */

/* Event types. */
#define PWT_EV_LISTENER_NEW_CONNECTION 1
#define PWT_EV_LISTENER_STOP_COMPLETE 2
#define PWT_EV_CONN_CONNECTED 10
#define PWT_EV_CONN_SHUTDOWN_BY_TRANSPORT 11
#define PWT_EV_CONN_SHUTDOWN_BY_PEER 12
#define PWT_EV_CONN_SHUTDOWN_COMPLETE 13
/* A peer's stream: obj2 = its pwt_stream, u0 = stream id, u1 = msquic's flags.  Queued
 * with the stream's first record: data/len are its first received bytes, u2 = 1 if
 * they end with FIN (more bytes follow as PWT_EV_STREAM_RECEIVE). */
#define PWT_EV_CONN_PEER_STREAM_STARTED 14
#define PWT_EV_CONN_DATAGRAM_STATE 15 /* not queued: pwt_conn_datagram_max() */
#define PWT_EV_CONN_DATAGRAM_RECEIVED 16
#define PWT_EV_CONN_DATAGRAM_LOST 17
#define PWT_EV_CONN_STREAMS_AVAILABLE 18 /* not queued (Python has no use for it) */
/* Peer certificate for the application to verify (only with
 * pwt_credentials.app_verify): data = DER certificate (u0 bytes, 0 = none
 * presented) followed by the PKCS#7 DER chain (u1 bytes); u2 = msquic's
 * deferred status.  The handshake waits for pwt_conn_certificate_complete(). */
#define PWT_EV_CONN_PEER_CERTIFICATE 20
#define PWT_EV_CONN_RELIABLE_RESET 21  /* not queued: pwt_conn_reliable_reset() */
/* Client: a TLS resumption ticket for the next connection to this server
 * (data = the ticket). */
#define PWT_EV_CONN_RESUMPTION_TICKET 22
#define PWT_EV_STREAM_START_COMPLETE 30 /* only on failure or an id other than expected_id */
#define PWT_EV_STREAM_RECEIVE 31
#define PWT_EV_STREAM_WRITABLE 32
#define PWT_EV_STREAM_PEER_SEND_SHUTDOWN 33 /* not after a RECEIVE that carried the FIN */
#define PWT_EV_STREAM_PEER_SEND_ABORTED 34
#define PWT_EV_STREAM_PEER_RECEIVE_ABORTED 35
#define PWT_EV_STREAM_SEND_SHUTDOWN_COMPLETE 36 /* not queued */
#define PWT_EV_STREAM_SHUTDOWN_COMPLETE 37 /* not when the connection shuts down: see PWT_EV_CONN_SHUTDOWN_COMPLETE */
#define PWT_EV_STREAM_RESUME 38
/* A received chunk left in msquic's buffers: data points at u2 pwt_chunk entries
 * (len bytes in all, u0 = FIN).  Python copies them and must then call
 * pwt_stream_receive_complete(obj, len): msquic indicates nothing more on the
 * stream until then. */
#define PWT_EV_STREAM_RECEIVE_ZC 39

/* Stream shutdown modes for pwt_stream_shutdown. */
#define PWT_SHUTDOWN_GRACEFUL 1
#define PWT_SHUTDOWN_ABORT_SEND 2
#define PWT_SHUTDOWN_ABORT_RECEIVE 4
#define PWT_SHUTDOWN_ABORT 6
#define PWT_SHUTDOWN_IMMEDIATE 8

typedef struct pwt_queue pwt_queue;
typedef struct pwt_listener pwt_listener;
typedef struct pwt_conn pwt_conn;
typedef struct pwt_stream pwt_stream;
typedef struct pwt_config pwt_config;

/* One event record.  `obj` is the pwt_listener/pwt_conn/pwt_stream the
 * event belongs to; `obj2` is a new child object (new connection, peer
 * stream).  `data` points into memory owned by the queue, valid until the
 * next pwt_queue_poll() on the same queue. */
typedef struct pwt_event {
    int32_t type;
    uint32_t len;
    void *obj;
    void *obj2;
    uint64_t u0;
    uint64_t u1;
    uint64_t u2;
    const char *data; /* char, so that ffi.unpack returns bytes */
} pwt_event;

/* Flat, cffi-friendly mirror of the QUIC_SETTINGS fields we expose.
 * A field is applied when its value is not the "unset" sentinel (-1 or 0
 * as noted). */
typedef struct pwt_chunk {
    const char *data;
    uint64_t len;
} pwt_chunk;

typedef struct pwt_settings {
    int64_t idle_timeout_ms;          /* -1 = msquic default */
    int64_t handshake_idle_timeout_ms;/* -1 = default */
    int64_t keep_alive_interval_ms;   /* -1 = default (off) */
    int32_t peer_bidi_stream_count;   /* -1 = default */
    int32_t peer_unidi_stream_count;  /* -1 = default */
    int64_t stream_recv_window;       /* -1 = default; power of two */
    int64_t conn_flow_control_window; /* -1 = default */
    int32_t datagram_receive_enabled; /* -1 = default */
    int32_t congestion_control;       /* -1 = default, 0 cubic, 1 bbr */
    int32_t send_buffering_enabled;   /* -1 = default */
    int32_t pacing_enabled;           /* -1 = default */
    int32_t server_resumption_level;  /* -1 = default */
    int64_t disconnect_timeout_ms;    /* -1 = default */
    int32_t max_operations_per_drain; /* -1 = default */
    int32_t reliable_reset_enabled;   /* -1 = default (off); RESET_STREAM_AT */
    int64_t stream_recv_buffer;       /* -1 = default (4096); initial receive buffer, power of two >= 256 */
} pwt_settings;

typedef struct pwt_credentials {
    int32_t is_client;
    int32_t verify_peer;            /* client: verify server; server: require client cert */
    const char *cert_file;          /* PEM */
    const char *key_file;           /* PEM */
    const char *key_password;       /* NULL if key not encrypted */
    const unsigned char *pkcs12;    /* PKCS#12 blob or NULL */
    uint32_t pkcs12_len;
    const char *pkcs12_password;
    const char *ca_file;            /* PEM bundle or NULL */
    int32_t app_verify;             /* 1: msquic does not validate the peer certificate but
                                     * hands it to Python (PWT_EV_CONN_PEER_CERTIFICATE);
                                     * on a server verify_peer then only requests one */
} pwt_credentials;

typedef struct pwt_stats {
    uint64_t rtt_us;
    uint64_t min_rtt_us;
    uint64_t max_rtt_us;
    uint64_t rtt_variance_us;
    uint64_t cwnd;
    uint64_t path_mtu;
    uint64_t send_total_packets;
    uint64_t send_lost_packets;
    uint64_t send_spurious_lost_packets;
    uint64_t send_total_bytes;
    uint64_t send_stream_bytes;
    uint64_t send_congestion_count;
    uint64_t recv_total_packets;
    uint64_t recv_total_bytes;
    uint64_t recv_stream_bytes;
    uint64_t recv_dropped_packets;
    uint64_t key_update_count;
} pwt_stats;

/* Per-connection counters kept by the shim (pwt_conn_counters). */
typedef struct pwt_conn_counters {
    uint64_t queued_events;      /* events of this connection waiting for Python */
    uint64_t peak_queued_events; /* highest value queued_events reached */
    uint64_t datagrams_dropped;  /* received datagrams dropped: event queue full */
    uint64_t live_streams;       /* native streams not yet closed by Python */
    uint64_t peak_live_streams;
} pwt_conn_counters;

typedef struct pwt_addr {
    int32_t family;     /* 4 or 6 */
    uint16_t port;
    unsigned char addr[16];
} pwt_addr;

/* Library. Returns a QUIC_STATUS (0 = success). */
uint32_t pwt_init(const char *lib_path, int32_t execution_profile, int32_t polling_idle_us,
                  int32_t worker_count, char *err, uint32_t errlen);
/* Returns 1 when msquic was closed, 0 when it still held objects after 5 s
 * (the library then stays loaded; meant for interpreter exit). */
int32_t pwt_cleanup(void);
int32_t pwt_is_initialized(void);
const char *pwt_status_name(uint32_t status);

/* Event queues (one per asyncio loop). */
pwt_queue *pwt_queue_new(void);
int32_t pwt_queue_fd(pwt_queue *q);
int32_t pwt_queue_poll(pwt_queue *q, pwt_event *out, int32_t cap);
/* Wait up to max_us for a record without sleeping (spins, yielding the CPU now and then);
 * 1 when one is queued. Called by the loop before its selector would sleep. */
int32_t pwt_queue_spin(pwt_queue *q, int32_t max_us);
void pwt_queue_free(pwt_queue *q);

/* Configurations. */
uint32_t pwt_config_open(const char *const *alpns, uint32_t alpn_count,
                         const pwt_settings *settings, const pwt_credentials *cred,
                         pwt_config **out);
void pwt_config_close(pwt_config *cfg);

/* Listeners. */
uint32_t pwt_listener_open(pwt_queue *q, pwt_config *cfg, pwt_listener **out);
uint32_t pwt_listener_start(pwt_listener *l, const char *const *alpns, uint32_t alpn_count,
                            const pwt_addr *addr);
uint32_t pwt_listener_local_addr(pwt_listener *l, pwt_addr *out);
void pwt_listener_stop(pwt_listener *l);
void pwt_listener_close(pwt_listener *l);

/* Connections. */
uint32_t pwt_conn_open(pwt_queue *q, pwt_conn **out);
uint32_t pwt_conn_start(pwt_conn *c, pwt_config *cfg, const pwt_addr *remote,
                        const char *server_name);
void pwt_conn_shutdown(pwt_conn *c, uint64_t error_code, int32_t silent);
void pwt_conn_close(pwt_conn *c);
uint32_t pwt_conn_stats(pwt_conn *c, pwt_stats *out);
uint32_t pwt_conn_addr(pwt_conn *c, int32_t remote, pwt_addr *out);
uint32_t pwt_conn_addr_gen(pwt_conn *c); /* changes whenever the shim learns an address */
uint32_t pwt_conn_datagram_send(pwt_conn *c, const unsigned char *data, uint32_t len);
uint32_t pwt_conn_datagram_max(pwt_conn *c);
int32_t pwt_conn_reliable_reset(pwt_conn *c); /* 1 once RESET_STREAM_AT was negotiated */
uint32_t pwt_conn_alpn(pwt_conn *c, char *out, uint32_t cap);
/* Python's verdict on a PWT_EV_CONN_PEER_CERTIFICATE (tls_alert is sent on rejection). */
uint32_t pwt_conn_certificate_complete(pwt_conn *c, int32_t accept, int32_t tls_alert);

/* Streams. */
/* expected_id: the stream id Python predicts (ids are assigned in start
 * order); START_COMPLETE is then queued only if the start fails or the id
 * differs.  -1 queues it always. */
uint32_t pwt_stream_open(pwt_conn *c, int32_t unidirectional, int64_t expected_id,
                         pwt_stream **out);
uint32_t pwt_stream_send(pwt_stream *s, const unsigned char *data, uint64_t len, int32_t fin);
int64_t pwt_stream_outstanding(pwt_stream *s);
int32_t pwt_stream_want_writable(pwt_stream *s);
void pwt_stream_consumed(pwt_stream *s, uint64_t n);
int64_t pwt_stream_buffered(pwt_stream *s);
/* Diagnostics: out[0..7] = msquic's QUIC_STREAM_STATISTICS (microseconds the stream was held
 * back: connection scheduling, pacing, amplification, congestion control, connection flow
 * control, stream id credit, stream flow control, the app), out[8] = receive paused by the
 * shim (1/0), out[9] = bytes queued to msquic and not yet completed.  Returns msquic's status. */
uint32_t pwt_stream_diag(pwt_stream *s, uint64_t *out);
void pwt_stream_receive_complete(pwt_stream *s, uint64_t n);
void pwt_stream_resume(pwt_stream *s);
uint32_t pwt_stream_shutdown(pwt_stream *s, int32_t mode, uint64_t error_code);
/* Bytes [0, offset) are delivered even if the send side is later aborted
 * (RESET_STREAM_AT). Needs a negotiated reliable reset and offset <= bytes sent. */
uint32_t pwt_stream_set_reliable_offset(pwt_stream *s, uint64_t offset);
void pwt_stream_close(pwt_stream *s);
/* Python is done with both directions of the stream: its queued records are dropped
 * and none follow.  Returns 1 if the shim now owns the handle (closed when msquic
 * completes the stream, without a record), 2 if msquic completed it already: then
 * Python closes it with pwt_stream_close() (no SHUTDOWN_COMPLETE record comes). */
int32_t pwt_stream_release_when_done(pwt_stream *s);
void pwt_conn_set_limits(pwt_conn *c, int64_t recv_limit, int64_t send_high_water);
void pwt_listener_set_limits(pwt_listener *l, int64_t recv_limit, int64_t send_high_water);
/* Bound on a connection's queued events: received datagrams beyond it are
 * dropped and counted (other events are bounded by stream limits). */
void pwt_conn_set_event_limit(pwt_conn *c, int64_t max_events);
void pwt_listener_set_event_limit(pwt_listener *l, int64_t max_events);
void pwt_conn_counters_get(pwt_conn *c, pwt_conn_counters *out);
/* Server: send each client a TLS resumption ticket when its handshake
 * completes (needs a configuration with a server resumption level). */
void pwt_listener_set_resumption(pwt_listener *l, int32_t send_tickets);
/* Client, before pwt_conn_start: share one UDP socket between connections
 * to the same server (`local` = the local address of a live connection to
 * share with, or NULL for a new shareable socket). */
uint32_t pwt_conn_share_binding(pwt_conn *c, const pwt_addr *local);
/* Client, before pwt_conn_start: resume TLS with a ticket from
 * PWT_EV_CONN_RESUMPTION_TICKET. */
uint32_t pwt_conn_set_resumption_ticket(pwt_conn *c, const unsigned char *ticket, uint32_t len);
/* Client: queue PWT_EV_CONN_RESUMPTION_TICKET records (default: tickets dropped). */
void pwt_conn_want_tickets(pwt_conn *c, int32_t want);
/* Client, before start: have msquic record the TLS secrets (key logging). */
uint32_t pwt_conn_log_secrets(pwt_conn *c);
/* After CONNECTED: secret `which` (0 client random, 1 client early, 2 client
 * handshake, 3 server handshake, 4 client traffic 0, 5 server traffic 0) into
 * out (64 bytes of room); returns its length, 0 if not set. */
int32_t pwt_conn_secret(pwt_conn *c, int32_t which, unsigned char *out);
/* Sends may use 0-RTT keys when available (client with a ticket). */
void pwt_conn_allow_early_data(pwt_conn *c, int32_t allow);
/* Client: pwt_conn_start plus, in the same call, a shared local socket
 * (`share`, `local` as for pwt_conn_share_binding) and a resumption ticket
 * (NULL/0 for none).  name_is_address: server_name is the literal address
 * `remote` (msquic then parses it, which saves a blocking SetParam). */
uint32_t pwt_conn_start_ex(pwt_conn *c, pwt_config *cfg, const pwt_addr *remote,
                           const char *server_name, int32_t name_is_address, int32_t share,
                           const pwt_addr *local, const unsigned char *ticket,
                           uint32_t ticket_len);
/* How pwt_conn_start_ex applies its settings: 1 = inline on the caller's thread
 * (our msquic build), 0 = blocking round trips to a worker (a stock msquic),
 * -1 = no client connection needed one yet. */
int32_t pwt_setup_params_inline(void);
uint64_t pwt_live_objects(void);

/* Observability.  pwt_perf_counters copies msquic's global performance counters
 * (QUIC_PERFORMANCE_COUNTERS order) and returns how many, or -1. */
#define PWT_CONN_FLAG_ECN_CAPABLE 1
#define PWT_CONN_FLAG_RESUMPTION_ATTEMPTED 2
#define PWT_CONN_FLAG_RESUMPTION_SUCCEEDED 4
#define PWT_CONN_FLAG_ENCRYPTION_OFFLOADED 8
#define PWT_CONN_FLAG_GREASE_BIT 16
int32_t pwt_perf_counters(int64_t *out, int32_t cap);
uint32_t pwt_library_info(uint32_t *version4, int32_t *tls_provider, char *git_hash, uint32_t hash_cap);
uint32_t pwt_conn_flags(pwt_conn *c, uint32_t *out);

/* Version stamp compiled into the extension; checked at import. */
const char *pwt_package_version(void);
