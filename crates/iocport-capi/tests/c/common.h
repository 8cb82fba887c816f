/*
 * Helpers shared by the C tests of iocport-capi (the programs in tests/c, driven by
 * tests/c_api.rs).
 *
 * Every test includes this header first. It compiles as C11 (with -D_GNU_SOURCE) and as C++17,
 * warning-free under -Wall -Wextra -Werror. Failures print file:line, the expression, both values
 * where there are two, GetLastError(), WSAGetLastError() and errno, then exit(1). A deadline
 * (alarm) ends a test that hangs.
 */
#ifndef IOCPORT_CAPI_TEST_COMMON_H
#define IOCPORT_CAPI_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

/*
 * Every system header first: iocport/windows.h defines socket and setsockopt as macros.
 * (<sys/ioctl.h> is left out: its IOC_IN and IOC_OUT clash with the header's.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

/*
 * libc's socket calls under names of their own, defined before iocport/windows.h routes the
 * Winsock spellings (bind, connect, send, ...) to the library: the helpers below drive the peer
 * ends of connections with plain POSIX semantics (errno, MSG_NOSIGNAL, MSG_DONTWAIT) in C and in
 * C++ alike. The tests call the Winsock spellings where they test them.
 */
static inline int sys_bind(int fd, const struct sockaddr *a, socklen_t len)
{
    return bind(fd, a, len);
}
static inline int sys_listen(int fd, int backlog)
{
    return listen(fd, backlog);
}
static inline int sys_connect(int fd, const struct sockaddr *a, socklen_t len)
{
    return connect(fd, a, len);
}
static inline int sys_accept(int fd)
{
    return accept(fd, NULL, NULL);
}
static inline int sys_getsockname(int fd, struct sockaddr *a, socklen_t *len)
{
    return getsockname(fd, a, len);
}
static inline int sys_getpeername(int fd, struct sockaddr *a, socklen_t *len)
{
    return getpeername(fd, a, len);
}
static inline int sys_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    return getsockopt(fd, level, name, val, len);
}
static inline ssize_t sys_send(int fd, const void *buf, size_t len, int flags)
{
    return send(fd, buf, len, flags);
}
static inline ssize_t sys_recv(int fd, void *buf, size_t len, int flags)
{
    return recv(fd, buf, len, flags);
}

#include <iocport/windows.h>

/* The deadline of one test program, in seconds; the cargo driver's own is longer. */
#ifndef TEST_DEADLINE_SECONDS
#define TEST_DEADLINE_SECONDS 30
#endif

/* How long a test waits for a packet that must come. */
#define PACKET_WAIT_MS 5000u

/* Atomics that compile as C11 and as C++17 (GCC and Clang builtins). */
#define ALOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ASTORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define AADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)

static const char *test_name_ = "?";
static int test_failures_ = 0;
static int test_keep_going_ = 0;

static inline void test_fail_(const char *file, int line, const char *what, const char *detail)
{
    /* Read the error values before anything else can change them. */
    DWORD last = GetLastError();
    int wsa = WSAGetLastError();
    int err = errno;
    fprintf(stderr,
            "%s:%d: [%s] CHECK failed: %s%s\n"
            "    GetLastError() = %lu (0x%lx), WSAGetLastError() = %d, errno = %d (%s)\n",
            file, line, test_name_, what, detail ? detail : "", (unsigned long)last,
            (unsigned long)last, wsa, err, strerror(err));
    fflush(stderr);
    AADD(&test_failures_, 1);
    if (!test_keep_going_) {
        exit(1);
    }
}

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            test_fail_(__FILE__, __LINE__, #cond, NULL);                                \
        }                                                                               \
    } while (0)

/* Compares two integers or pointers as 64-bit values (negative ints sign-extended). */
#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        unsigned long long a_ = (unsigned long long)(uintptr_t)(a);                     \
        unsigned long long b_ = (unsigned long long)(uintptr_t)(b);                     \
        if (a_ != b_) {                                                                 \
            char d_[160];                                                               \
            snprintf(d_, sizeof d_, "\n    left  = %llu (0x%llx)\n    right = %llu (0x%llx)", \
                     a_, a_, b_, b_);                                                   \
            test_fail_(__FILE__, __LINE__, #a " == " #b, d_);                           \
        }                                                                               \
    } while (0)

#define CHECK_NE(a, b)                                                                  \
    do {                                                                                \
        unsigned long long a_ = (unsigned long long)(uintptr_t)(a);                     \
        unsigned long long b_ = (unsigned long long)(uintptr_t)(b);                     \
        if (a_ == b_) {                                                                 \
            char d_[96];                                                                \
            snprintf(d_, sizeof d_, "\n    both = %llu (0x%llx)", a_, a_);              \
            test_fail_(__FILE__, __LINE__, #a " != " #b, d_);                           \
        }                                                                               \
    } while (0)

/* The thread's last error is `e` (read once). */
#define CHECK_ERR(e)                                                                    \
    do {                                                                                \
        DWORD ce_ = GetLastError();                                                     \
        if ((unsigned long long)ce_ != (unsigned long long)(e)) {                       \
            char d_[96];                                                                \
            snprintf(d_, sizeof d_, "\n    GetLastError() = %lu, expected %lld",        \
                     (unsigned long)ce_, (long long)(e));                               \
            test_fail_(__FILE__, __LINE__, "GetLastError() == " #e, d_);                \
        }                                                                               \
    } while (0)

#define CHECK_WSAERR(e)                                                                 \
    do {                                                                                \
        int cw_ = WSAGetLastError();                                                    \
        if ((long long)cw_ != (long long)(e)) {                                         \
            char d_[96];                                                                \
            snprintf(d_, sizeof d_, "\n    WSAGetLastError() = %d, expected %lld", cw_, \
                     (long long)(e));                                                   \
            test_fail_(__FILE__, __LINE__, "WSAGetLastError() == " #e, d_);             \
        }                                                                               \
    } while (0)

/* Inside a waiting loop: fails and leaves the loop once the deadline `end` (now_ms()) passed. */
#define BREAK_IF_LATE(end)                                                              \
    if (now_ms() >= (end)) {                                                            \
        test_fail_(__FILE__, __LINE__, "waited too long", NULL);                        \
        break;                                                                          \
    }

/* A Winsock overlapped call (WSARecv, WSASend, ...) was accepted: it pended or succeeded. */
#define CHECK_WSA_STARTED(r)                                                            \
    do {                                                                                \
        int cs_ = (r);                                                                  \
        if (cs_ != 0 && !(cs_ == SOCKET_ERROR && WSAGetLastError() == WSA_IO_PENDING)) { \
            test_fail_(__FILE__, __LINE__, #r " is 0 or SOCKET_ERROR/WSA_IO_PENDING", NULL); \
        }                                                                               \
    } while (0)

/* A BOOL overlapped call (ReadFile, AcceptEx, ConnectEx, ...) was accepted. */
#define CHECK_STARTED(r)                                                                \
    do {                                                                                \
        BOOL cs_ = (r);                                                                 \
        if (!cs_ && GetLastError() != ERROR_IO_PENDING) {                               \
            test_fail_(__FILE__, __LINE__, #r " is TRUE or FALSE/ERROR_IO_PENDING", NULL); \
        }                                                                               \
    } while (0)

static inline void on_deadline_(int sig)
{
    static const char msg[] = "deadline exceeded: the test hung\n";
    (void)sig;
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

/*
 * Names the test in failure messages and arms the deadline. With IOCPORT_CAPI_KEEP_GOING=1 in the
 * environment a failed CHECK is counted and the test goes on (to see every failure at once; later
 * ones may be consequences of the first); the exit status is still 1.
 */
static inline void test_init(const char *name)
{
    struct sigaction sa;
    const char *keep = getenv("IOCPORT_CAPI_KEEP_GOING");
    test_keep_going_ = keep && *keep && strcmp(keep, "0") != 0;
    test_name_ = name;
    setvbuf(stdout, NULL, _IONBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_deadline_;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(TEST_DEADLINE_SECONDS);
}

static inline void test_step(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%s] ", test_name_);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The end of main: 0 when every CHECK passed. */
static inline int test_done(void)
{
    int n = ALOAD(&test_failures_);
    if (n) {
        printf("[%s] %d CHECK(s) failed\n", test_name_, n);
        return 1;
    }
    printf("[%s] ok\n", test_name_);
    return 0;
}

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000u;
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits (bounded) until *flag is non-zero. */
static inline void wait_flag(int *flag, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!ALOAD(flag)) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
}

static inline void ov_init(OVERLAPPED *ov)
{
    memset(ov, 0, sizeof *ov);
}

static inline HANDLE new_port(DWORD concurrency)
{
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, concurrency);
    CHECK(port != NULL);
    CHECK(port != INVALID_HANDLE_VALUE);
    return port;
}

static inline void associate(HANDLE h, HANDLE port, ULONG_PTR key)
{
    HANDLE r = CreateIoCompletionPort(h, port, key, 0);
    CHECK_EQ(r, port);
}

#define HSOCK(s) ((HANDLE)(uintptr_t)(s))

/* Dequeues one packet that must come and checks it succeeded with these values. */
#define EXPECT_PACKET(port, key, bytes, ov)                                             \
    do {                                                                                \
        DWORD eb_ = 0xfeedu;                                                            \
        ULONG_PTR ek_ = 0xfeedu;                                                        \
        LPOVERLAPPED eo_ = NULL;                                                        \
        BOOL er_ = GetQueuedCompletionStatus((port), &eb_, &ek_, &eo_, PACKET_WAIT_MS); \
        CHECK(er_);                                                                     \
        CHECK_EQ(eo_, (ov));                                                            \
        CHECK_EQ(ek_, (key));                                                           \
        CHECK_EQ(eb_, (bytes));                                                         \
    } while (0)

/* Dequeues one packet that must come and checks it failed with this error. */
#define EXPECT_FAILED_PACKET(port, key, ov, err)                                        \
    do {                                                                                \
        DWORD eb_ = 0xfeedu;                                                            \
        ULONG_PTR ek_ = 0xfeedu;                                                        \
        LPOVERLAPPED eo_ = NULL;                                                        \
        BOOL er_ = GetQueuedCompletionStatus((port), &eb_, &ek_, &eo_, PACKET_WAIT_MS); \
        CHECK(!er_);                                                                    \
        CHECK_ERR(err);                                                                 \
        CHECK_EQ(eo_, (ov));                                                            \
        CHECK_EQ(ek_, (key));                                                           \
        CHECK_EQ(eb_, 0);                                                               \
    } while (0)

/* No packet arrives within ms milliseconds. */
#define EXPECT_NO_PACKET(port, ms)                                                      \
    do {                                                                                \
        DWORD nb_ = 0;                                                                  \
        ULONG_PTR nk_ = 0;                                                              \
        LPOVERLAPPED no_ = (LPOVERLAPPED)(uintptr_t)1;                                  \
        BOOL nr_ = GetQueuedCompletionStatus((port), &nb_, &nk_, &no_, (ms));           \
        if (nr_ || no_ != NULL) {                                                       \
            char d_[128];                                                               \
            snprintf(d_, sizeof d_, "\n    got a packet: ok=%d key=%llu bytes=%lu ov=%p", \
                     nr_, (unsigned long long)nk_, (unsigned long)nb_, (void *)no_);     \
            test_fail_(__FILE__, __LINE__, "no packet within " #ms " ms", d_);          \
        }                                                                               \
        CHECK_ERR(WAIT_TIMEOUT);                                                        \
    } while (0)

/* ---- Sockets ------------------------------------------------------------------------- */

static inline void wsa_startup(void)
{
    WSADATA wsa;
    int r = WSAStartup(MAKEWORD(2, 2), &wsa);
    CHECK_EQ(r, 0);
    CHECK_EQ(wsa.wVersion, MAKEWORD(2, 2));
}

static inline SOCKET new_socket(int type)
{
    SOCKET s = WSASocketW(AF_INET, type, type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP, NULL,
                          0, WSA_FLAG_OVERLAPPED);
    CHECK(s != INVALID_SOCKET);
    CHECK(s > 2);
    CHECK((uint64_t)s < ((uint64_t)1 << 32));
    return s;
}

static inline SOCKET tcp_socket(void)
{
    return new_socket(SOCK_STREAM);
}

static inline void loopback_addr(struct sockaddr_in *a, unsigned short port)
{
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* Binds s to 127.0.0.1 on a free port and returns the address it got. */
static inline void bind_loopback(SOCKET s, struct sockaddr_in *out)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    loopback_addr(&a, 0);
    CHECK_EQ(sys_bind((int)s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(sys_getsockname((int)s, (struct sockaddr *)&a, &len), 0);
    CHECK_EQ(len, sizeof a);
    CHECK(a.sin_port != 0);
    if (out) {
        *out = a;
    }
}

static inline void local_addr(SOCKET s, struct sockaddr_in *out)
{
    socklen_t len = sizeof *out;
    CHECK_EQ(sys_getsockname((int)s, (struct sockaddr *)out, &len), 0);
}

static inline int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_family == b->sin_family && a->sin_port == b->sin_port &&
           a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/* A TCP listener on 127.0.0.1, port chosen by the kernel. */
static inline SOCKET tcp_listener(struct sockaddr_in *addr)
{
    SOCKET l = tcp_socket();
    bind_loopback(l, addr);
    CHECK_EQ(sys_listen((int)l, 64), 0);
    return l;
}

/* Waits (bounded) until fd is ready for events; 1 when it is. */
static inline int wait_fd(SOCKET fd, short events)
{
    struct pollfd p;
    int r;
    p.fd = (int)fd;
    p.events = events;
    p.revents = 0;
    do {
        r = poll(&p, 1, (int)PACKET_WAIT_MS);
    } while (r < 0 && errno == EINTR);
    CHECK_EQ(r, 1);
    return r == 1;
}

/* connect(2), also when the library made the socket non-blocking. */
static inline void connect_to(SOCKET s, const struct sockaddr_in *addr)
{
    int r = sys_connect((int)s, (const struct sockaddr *)addr, sizeof *addr);
    if (r != 0) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        CHECK(errno == EINPROGRESS || errno == EAGAIN);
        wait_fd(s, POLLOUT);
        CHECK_EQ(sys_getsockopt((int)s, SOL_SOCKET, SO_ERROR, &soerr, &len), 0);
        CHECK_EQ(soerr, 0);
    }
}

/* accept(2) of one connection, also on a non-blocking listener. */
static inline SOCKET accept_one(SOCKET l)
{
    for (;;) {
        int fd = sys_accept((int)l);
        if (fd >= 0) {
            CHECK(fd > 2);
            return (SOCKET)fd;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            CHECK(!"accept failed");
            return INVALID_SOCKET;
        }
        if (!wait_fd(l, POLLIN)) {
            return INVALID_SOCKET;
        }
    }
}

/* A connected TCP pair on 127.0.0.1: client from WSASocketW, server from accept(2). */
static inline void tcp_pair(SOCKET *client, SOCKET *server)
{
    struct sockaddr_in a;
    SOCKET l = tcp_listener(&a);
    SOCKET c = tcp_socket();
    connect_to(c, &a);
    *server = accept_one(l);
    CHECK_EQ(closesocket(l), 0);
    *client = c;
}

/* send(2) of every byte, on a socket with no overlapped operation in flight. */
static inline void send_all(SOCKET s, const void *buf, size_t len)
{
    const char *p = (const char *)buf;
    while (len > 0) {
        ssize_t n = sys_send((int)s, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                CHECK(!"send failed");
                return;
            }
            if (!wait_fd(s, POLLOUT)) {
                return;
            }
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* recv(2) of exactly len bytes (bounded wait), on a socket with no overlapped operation. */
static inline void recv_exact(SOCKET s, void *buf, size_t len)
{
    char *p = (char *)buf;
    while (len > 0) {
        ssize_t n;
        if (!wait_fd(s, POLLIN)) {
            return;
        }
        n = sys_recv((int)s, p, len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                CHECK(!"recv failed");
                return;
            }
            continue;
        }
        if (n == 0) {
            CHECK(!"recv: end of stream");
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Waits (bounded) until at least n bytes are readable on s. */
static inline void wait_readable_bytes(SOCKET s, int n)
{
    uint64_t end = now_ms() + PACKET_WAIT_MS;
    static char peek[1 << 16];
    CHECK(n <= (int)sizeof peek);
    for (;;) {
        ssize_t avail = sys_recv((int)s, peek, (size_t)n, MSG_PEEK | MSG_DONTWAIT);
        if (avail >= n) {
            return;
        }
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
}

/* Makes the connection absorb little (32 KiB buffers): a peer that does not read stops the
 * sender soon, and a large send cannot go at once. */
static inline void small_buffers(SOCKET c, SOCKET s)
{
    int v = 32 * 1024;
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_SNDBUF, (char *)&v, (int)sizeof v), 0);
    CHECK_EQ(setsockopt(s, SOL_SOCKET, SO_RCVBUF, (char *)&v, (int)sizeof v), 0);
}

/* Makes closesocket(s) send a reset instead of a FIN. */
static inline void set_linger0(SOCKET s)
{
    struct linger lg;
    lg.l_onoff = 1;
    lg.l_linger = 0;
    /* Winsock style: through the header to iocp_setsockopt. */
    CHECK_EQ(setsockopt(s, SOL_SOCKET, SO_LINGER, (char *)&lg, (int)sizeof lg), 0);
}

/* ---- Files ----------------------------------------------------------------------------- */

/* Paths handed out by temp_path, removed at exit (also when a CHECK failed). */
static char temp_paths_[32][256];
static int temp_count_ = 0;

static inline void remove_temp_paths_(void)
{
    int i;
    for (i = 0; i < temp_count_; i++) {
        unlink(temp_paths_[i]);
    }
}

/* A fresh path in $TMPDIR (or /tmp) for this process; nothing is created. */
static inline void temp_path(char *out, size_t n, const char *tag)
{
    static int counter = 0;
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) {
        dir = "/tmp";
    }
    snprintf(out, n, "%s/iocport-capi-%s-%s-%d-%d", dir, test_name_, tag, (int)getpid(),
             ++counter);
    unlink(out);
    if (temp_count_ == 0) {
        atexit(remove_temp_paths_);
    }
    if (temp_count_ < 32) {
        snprintf(temp_paths_[temp_count_], sizeof temp_paths_[0], "%s", out);
        temp_count_++;
    }
}

/* The same path as a wide string, for CreateFileW. */
static inline void to_wide(const char *path, WCHAR *out, size_t n)
{
    size_t i = 0;
    for (; path[i] && i + 1 < n; i++) {
        out[i] = (WCHAR)(unsigned char)path[i];
    }
    out[i] = 0;
}

static inline void fill_pattern(char *buf, size_t len, unsigned seed)
{
    size_t i;
    for (i = 0; i < len; i++) {
        buf[i] = (char)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
    }
}

#endif /* IOCPORT_CAPI_TEST_COMMON_H */
