/*
 * races.c: what a close racing an operation must not do, each a race that once went wrong.
 *
 * - closesocket while another thread starts a WSARecv on the socket: the receive either fails at
 *   once or is cancelled, and the peer sees the connection end (before the fix, a receive that
 *   started just after the close's cancel kept the socket open for ever);
 * - closesocket of an AcceptEx socket whose connection is accepted and whose first receive is
 *   still to start, then a new socket taking the number: the new socket's data never lands in
 *   the AcceptEx buffer, and the AcceptEx ends aborted;
 * - closesocket during DisconnectEx(TF_REUSE_SOCKET), then a new socket taking the number: the new
 *   socket is left alone.
 */
#include "common.h"

#include <poll.h>
#include <pthread.h>

static HANDLE g_port;
static volatile int g_go;
static SOCKET g_sock;
static OVERLAPPED g_ov;
static int g_rc, g_err;

static volatile int g_ready;

static void *start_recv(void *arg)
{
    static char buf[64];
    WSABUF b;
    DWORD flags = 0;
    (void)arg;
    b.buf = buf;
    b.len = sizeof buf;
    __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&g_go, __ATOMIC_ACQUIRE)) {
    }
    ov_init(&g_ov);
    g_rc = WSARecv(g_sock, &b, 1, NULL, &flags, &g_ov, NULL);
    g_err = WSAGetLastError();
    return NULL;
}

/* Dequeues every packet until the stop key: the receives of closed sockets end here. */
static void *drain(void *arg)
{
    (void)arg;
    for (;;) {
        DWORD n;
        ULONG_PTR key;
        LPOVERLAPPED ov;
        GetQueuedCompletionStatus(g_port, &n, &key, &ov, INFINITE);
        if (key == 0xdead) {
            return NULL;
        }
    }
}

static void close_races_recv(void)
{
    pthread_t drainer;
    int i, pending = 0;
    test_step("closesocket racing a WSARecv on another thread: the peer always sees the end");
    g_port = new_port(0);
    CHECK_EQ(pthread_create(&drainer, NULL, drain, NULL), 0);
    for (i = 0; i < 1000; i++) {
        SOCKET c, s;
        pthread_t t;
        struct pollfd p;
        tcp_pair(&c, &s);
        associate(HSOCK(s), g_port, 7);
        g_sock = s;
        __atomic_store_n(&g_go, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&g_ready, 0, __ATOMIC_RELEASE);
        CHECK_EQ(pthread_create(&t, NULL, start_recv, NULL), 0);
        while (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) {
        }
        __atomic_store_n(&g_go, 1, __ATOMIC_RELEASE);
        CHECK_EQ(closesocket(s), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        if (g_rc == SOCKET_ERROR && g_err == WSA_IO_PENDING) {
            pending++;
        }
        p.fd = (int)c;
        p.events = POLLIN | POLLRDHUP;
        p.revents = 0;
        if (poll(&p, 1, PACKET_WAIT_MS) != 1) {
            test_fail_(__FILE__, __LINE__, "the peer saw the connection end", NULL);
            break;
        }
        CHECK_EQ(closesocket(c), 0);
    }
    printf("[races] %d of %d receives went pending before their socket closed\n", pending, i);
    CHECK(PostQueuedCompletionStatus(g_port, 0, 0xdead, NULL));
    CHECK_EQ(pthread_join(drainer, NULL), 0);
    CHECK(CloseHandle(g_port));
}

static HANDLE g_leader_port;

/* A second thread in GQCS: it becomes the port's leader and reaps completions into the queue,
 * but cannot take a packet while the main thread holds the port's one concurrency slot. */
static void *lead(void *arg)
{
    DWORD n;
    ULONG_PTR key;
    LPOVERLAPPED ov;
    (void)arg;
    GetQueuedCompletionStatus(g_leader_port, &n, &key, &ov, 5000);
    return NULL;
}

static void accept_close_reuse(void)
{
    struct sockaddr_in la, la2;
    SOCKET l = tcp_listener(&la), l2 = tcp_listener(&la2);
    SOCKET acc = tcp_socket(), c, y, x;
    static char buf[256];
    OVERLAPPED ov;
    DWORD n = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED o = NULL;
    BOOL ok;
    pthread_t leader;
    HANDLE port = new_port(1);
    test_step("AcceptEx with data: closesocket before its receive starts, the number reused");
    g_leader_port = port;
    associate(HSOCK(l), port, 1);
    memset(buf, 0, sizeof buf);
    ov_init(&ov);
    CHECK_STARTED(AcceptEx(l, acc, buf, 100, 64, 64, NULL, &ov));
    /* Hold the one slot, then let another thread reap the accept into the queue. */
    CHECK(PostQueuedCompletionStatus(port, 0, 99, NULL));
    CHECK(GetQueuedCompletionStatus(port, &n, &key, &o, PACKET_WAIT_MS));
    CHECK_EQ(key, 99);
    CHECK_EQ(pthread_create(&leader, NULL, lead, NULL), 0);
    sleep_ms(50);
    c = tcp_socket();
    connect_to(c, &la);
    sleep_ms(100);
    /* The connection is accepted into acc; its first receive is still to start. */
    y = tcp_socket();
    connect_to(y, &la2);
    CHECK_EQ(closesocket(acc), 0);
    x = accept_one(l2);
    /* A new connection's socket takes acc's number (the lowest free one), unless the library
     * still holds it. */
    associate(HSOCK(x), port, 9);
    send_all(y, "secret", 6);
    sleep_ms(50);
    ok = GetQueuedCompletionStatus(port, &n, &key, &o, PACKET_WAIT_MS);
    CHECK(!ok);
    CHECK_ERR(ERROR_OPERATION_ABORTED);
    CHECK_EQ(o, &ov);
    CHECK_EQ(key, 1);
    CHECK(memcmp(buf, "secret", 6) != 0);
    {
        char r[16] = {0};
        CHECK_EQ(sys_recv((int)x, r, sizeof r, 0), 6);
        CHECK(memcmp(r, "secret", 6) == 0);
    }
    CHECK_EQ(closesocket(x), 0);
    CHECK_EQ(closesocket(y), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(closesocket(l2), 0);
    /* Closing the port releases the other thread's wait. */
    CHECK(CloseHandle(port));
    CHECK_EQ(pthread_join(leader, NULL), 0);
}

static void disconnect_close_reuse(void)
{
    SOCKET c, s, u;
    struct sockaddr_in ua, now;
    OVERLAPPED ov;
    DWORD n;
    ULONG_PTR key;
    LPOVERLAPPED o;
    HANDLE port = new_port(0);
    test_step("DisconnectEx(TF_REUSE_SOCKET): closesocket before it ends, the number reused");
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, 7);
    ov_init(&ov);
    CHECK_STARTED(DisconnectEx(s, &ov, TF_REUSE_SOCKET, 0));
    sleep_ms(100);
    CHECK_EQ(closesocket(s), 0);
    u = new_socket(SOCK_DGRAM);
    bind_loopback(u, &ua);
    GetQueuedCompletionStatus(port, &n, &key, &o, PACKET_WAIT_MS);
    CHECK_EQ(o, &ov);
    local_addr(u, &now);
    CHECK(same_addr(&ua, &now));
    CHECK_EQ(closesocket(u), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK(CloseHandle(port));
}

int main(void)
{
    test_init("races");
    wsa_startup();
    close_races_recv();
    accept_close_reuse();
    disconnect_close_reuse();
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
