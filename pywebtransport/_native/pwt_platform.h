/* Platform layer of the pywebtransport shim: locks, condition variables,
 * the helper thread, atomics, loading msquic, and the wake-up primitive
 * that makes the asyncio loop's fd readable.
 *
 *  - Linux:        eventfd (one fd, a counter reset by one read).
 *  - macOS / BSD:  a non-blocking pipe.
 *  - Windows:      a connected loopback TCP socket pair (Winsock has no pipe
 *                  a selector or IOCP can wait on); the read end's SOCKET
 *                  is what pwt_queue_fd() returns.
 *
 * The shim keeps the POSIX spellings (pthread_mutex_lock, dlopen, ...); on
 * Windows this header maps the subset it uses onto SRWLOCK,
 * CONDITION_VARIABLE, CreateThread and LoadLibraryExW/GetProcAddress.  Only
 * that subset is provided: threads are always detached, mutex/cond
 * attributes are ignored.  Atomics are C11 <stdatomic.h> everywhere (GCC,
 * clang, mingw-w64; MSVC needs /experimental:c11atomics, VS 2022 17.5+).
 *
 * Include before msquic.h: with mingw-w64 (GCC) it first defines the SAL
 * annotations and error codes msquic's Windows header expects from the
 * Windows SDK but mingw's headers lack.
 */
#ifndef PWT_PLATFORM_H
#define PWT_PLATFORM_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef _WIN32
/* ------------------------------------------------------------------ */
/* Windows                                                             */

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <errno.h>
#include <stdlib.h>

#ifndef _MSC_VER
/* mingw-w64: Windows SDK names msquic_winuser.h / msquic.h use. */
#ifndef _Pre_defensive_
#define _Pre_defensive_
#endif
#ifndef E_NOT_VALID_STATE
#define E_NOT_VALID_STATE HRESULT_FROM_WIN32(ERROR_INVALID_STATE)
#endif
#ifndef WSA_SECURE_HOST_NOT_FOUND
#define WSA_SECURE_HOST_NOT_FOUND 11032L
#endif
#endif

typedef SOCKET pwt_fd_t;
#define PWT_FD_INVALID INVALID_SOCKET

/* Mutexes: SRWLOCK (no destroy needed, statically initialisable). */
typedef SRWLOCK pthread_mutex_t;
#define PTHREAD_MUTEX_INITIALIZER SRWLOCK_INIT
static int pwt_mutex_init(pthread_mutex_t *m) {
    InitializeSRWLock(m);
    return 0;
}
#define pthread_mutex_init(m, attr) pwt_mutex_init(m)
#define pthread_mutex_lock(m) AcquireSRWLockExclusive(m)
#define pthread_mutex_unlock(m) ReleaseSRWLockExclusive(m)
#define pthread_mutex_destroy(m) ((void)(m))

/* Condition variables on an SRWLOCK. */
typedef CONDITION_VARIABLE pthread_cond_t;
#define PTHREAD_COND_INITIALIZER CONDITION_VARIABLE_INIT
#define pthread_cond_wait(c, m) ((void)SleepConditionVariableSRW((c), (m), INFINITE, 0))
#define pthread_cond_signal(c) WakeConditionVariable(c)
#define pthread_cond_broadcast(c) WakeAllConditionVariable(c)

/* Threads: detached only (the shim's single helper thread). */
typedef HANDLE pthread_t;
typedef int pthread_attr_t;
#define PTHREAD_CREATE_DETACHED 1
#define pthread_attr_init(a) (*(a) = 0)
#define pthread_attr_setdetachstate(a, s) (*(a) = (s))
#define pthread_attr_destroy(a) ((void)(a))

typedef struct {
    void *(*fn)(void *);
    void *arg;
} pwt_thread_start;

static DWORD WINAPI pwt_thread_trampoline(LPVOID p) {
    pwt_thread_start start = *(pwt_thread_start *)p;
    free(p);
    start.fn(start.arg);
    return 0;
}

static int pwt_thread_create(pthread_t *th, void *(*fn)(void *), void *arg) {
    pwt_thread_start *start = (pwt_thread_start *)malloc(sizeof(*start));
    if (start == NULL) {
        return ENOMEM;
    }
    start->fn = fn;
    start->arg = arg;
    HANDLE h = CreateThread(NULL, 0, pwt_thread_trampoline, start, 0, NULL);
    if (h == NULL) {
        free(start);
        return EAGAIN;
    }
    CloseHandle(h); /* detached: the thread runs on without its handle */
    *th = NULL;
    return 0;
}
#define pthread_create(th, attr, fn, arg) pwt_thread_create((th), (fn), (arg))

static void pwt_sleep_ms(unsigned ms) { Sleep(ms); }

/* Library loading.  Python passes the path as UTF-8: convert it for
 * LoadLibraryExW (LoadLibraryA would read it in the ANSI code page and fail
 * on non-ASCII user directories).  An absolute path also lets msquic.dll's
 * own dependencies resolve from its directory. */
#define RTLD_NOW 0
#define RTLD_LOCAL 0

static void *pwt_dlopen(const char *utf8_path) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8_path, -1, NULL, 0);
    if (n <= 0) {
        return NULL;
    }
    wchar_t *wide = (wchar_t *)malloc((size_t)n * sizeof(wchar_t));
    if (wide == NULL) {
        return NULL;
    }
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8_path, -1, wide, n);
    int absolute = (n > 2 && wide[1] == L':') || (wide[0] == L'\\' && wide[1] == L'\\');
    HMODULE h = LoadLibraryExW(wide, NULL, absolute ? LOAD_WITH_ALTERED_SEARCH_PATH : 0);
    DWORD err = GetLastError();
    free(wide);
    SetLastError(err);
    return (void *)h;
}
#define dlopen(path, flags) pwt_dlopen(path)
#define dlclose(h) ((void)FreeLibrary((HMODULE)(h)))

static void *pwt_dlsym(void *h, const char *name) {
    FARPROC p = GetProcAddress((HMODULE)h, name);
    void *out;
    memcpy(&out, &p, sizeof(out)); /* function -> object pointer, same size on Windows */
    return out;
}
#define dlsym(h, name) pwt_dlsym((h), (name))

static const char *pwt_dlerror(void) {
    static char buf[64];
    snprintf(buf, sizeof(buf), "Windows error %lu", (unsigned long)GetLastError());
    return buf;
}
#define dlerror() pwt_dlerror()

/* Wake-up: a connected loopback socket pair.  A listening socket on
 * 127.0.0.1:0 accepts one connection from our own client socket, then is
 * closed; the accepted end must be our client (its peer address is checked)
 * so another local process racing to connect cannot take its place. */
static int pwt_wake_open(pwt_fd_t *rfd, pwt_fd_t *wfd) {
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) { /* reference counted */
        return -1;
    }
    SOCKET lsn = INVALID_SOCKET, cli = INVALID_SOCKET, acc = INVALID_SOCKET;
    struct sockaddr_in addr, cli_addr, peer_addr;
    int len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    lsn = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (lsn == INVALID_SOCKET) {
        goto fail;
    }
    if (bind(lsn, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lsn, 1) != 0 ||
        getsockname(lsn, (struct sockaddr *)&addr, &len) != 0) {
        goto fail;
    }
    cli = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (cli == INVALID_SOCKET || connect(cli, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        goto fail;
    }
    len = sizeof(cli_addr);
    if (getsockname(cli, (struct sockaddr *)&cli_addr, &len) != 0) {
        goto fail;
    }
    len = sizeof(peer_addr);
    acc = accept(lsn, (struct sockaddr *)&peer_addr, &len);
    if (acc == INVALID_SOCKET || peer_addr.sin_port != cli_addr.sin_port ||
        peer_addr.sin_addr.s_addr != cli_addr.sin_addr.s_addr) {
        goto fail;
    }
    closesocket(lsn);
    u_long nonblocking = 1;
    BOOL nodelay = TRUE;
    ioctlsocket(acc, FIONBIO, &nonblocking);
    ioctlsocket(cli, FIONBIO, &nonblocking);
    setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, sizeof(nodelay));
    SetHandleInformation((HANDLE)acc, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation((HANDLE)cli, HANDLE_FLAG_INHERIT, 0);
    *rfd = acc; /* the loop waits on the accepted end */
    *wfd = cli;
    return 0;
fail:
    if (acc != INVALID_SOCKET) {
        closesocket(acc);
    }
    if (cli != INVALID_SOCKET) {
        closesocket(cli);
    }
    if (lsn != INVALID_SOCKET) {
        closesocket(lsn);
    }
    WSACleanup();
    return -1;
}

static void pwt_wake_signal(pwt_fd_t wfd) {
    char one = 1;
    (void)send(wfd, &one, 1, 0);
}

static void pwt_wake_drain(pwt_fd_t rfd) {
    char buf[64];
    while (recv(rfd, buf, sizeof(buf), 0) > 0) {
    }
}

static void pwt_wake_close(pwt_fd_t rfd, pwt_fd_t wfd) {
    closesocket(rfd);
    closesocket(wfd);
    WSACleanup();
}

#else
/* ------------------------------------------------------------------ */
/* POSIX (Linux, macOS, BSD)                                           */

#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

typedef int pwt_fd_t;
#define PWT_FD_INVALID (-1)

static void pwt_sleep_ms(unsigned ms) { usleep((useconds_t)ms * 1000); }

static int pwt_wake_open(pwt_fd_t *rfd, pwt_fd_t *wfd) {
#ifdef __linux__
    *rfd = *wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return *rfd < 0 ? -1 : 0;
#else
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    *rfd = fds[0];
    *wfd = fds[1];
    return 0;
#endif
}

static void pwt_wake_signal(pwt_fd_t wfd) {
#ifdef __linux__
    uint64_t one = 1;
    ssize_t r = write(wfd, &one, sizeof(one));
#else
    char one = 1;
    ssize_t r = write(wfd, &one, 1);
#endif
    (void)r;
}

static void pwt_wake_drain(pwt_fd_t rfd) {
#ifdef __linux__
    uint64_t value; /* one read resets an eventfd counter */
    ssize_t r = read(rfd, &value, sizeof(value));
    (void)r;
#else
    char buf[64];
    while (read(rfd, buf, sizeof(buf)) > 0) {
    }
#endif
}

static void pwt_wake_close(pwt_fd_t rfd, pwt_fd_t wfd) {
    close(rfd);
    if (wfd != rfd) {
        close(wfd);
    }
}

#endif /* _WIN32 */
#endif /* PWT_PLATFORM_H */
