/*
 * Closing under pending work: closesocket with a pending WSARecv (ERROR_CONNECTION_ABORTED) and a
 * pending WSASend, closesocket of a listener with a pending AcceptEx (ERROR_OPERATION_ABORTED),
 * CloseHandle of a port while threads wait in GetQueuedCompletionStatus(Ex)
 * (ERROR_ABANDONED_WAIT_0), handles that are invalid once closed, and a port closed while its
 * sockets still have operations in flight.
 */
#include "common.h"

static void close_with_pending_recv(HANDLE port)
{
    SOCKET c, s;
    char buf[16];
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0;

    test_step("closesocket with a pending WSARecv: FALSE, ERROR_CONNECTION_ABORTED");
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, 0x51);
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    CHECK_EQ(WSARecv(s, &b, 1, &n, &flags, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
    CHECK_EQ(closesocket(s), 0);
    EXPECT_FAILED_PACKET(port, 0x51, &ov, ERROR_CONNECTION_ABORTED);
    CHECK(HasOverlappedIoCompleted(&ov));
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CONNECTION_ABORTED);
    CHECK_EQ(ov.InternalHigh, 0);
    EXPECT_NO_PACKET(port, 20);

    test_step("the peer sees the connection end");
    {
        char x;
        ssize_t r;
        wait_fd(c, POLLIN);
        r = sys_recv((int)c, &x, 1, MSG_DONTWAIT);
        CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    }
    CHECK_EQ(closesocket(c), 0);
}

static void close_with_pending_send(HANDLE port)
{
    enum { CHUNK = 1 << 20 };
    SOCKET c, s;
    char *big = (char *)malloc(CHUNK);
    static OVERLAPPED ovs[64];
    WSABUF b;
    int i, started = 0, completed = 0, aborted = 0, pending = 0;

    test_step("closesocket with sends stuck behind a full window: each packet arrives once");
    CHECK(big != NULL);
    memset(big, 'x', CHUNK);
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, 0x52);
    b.buf = big;
    b.len = CHUNK;
    /* The peer reads nothing, so sends eventually stop completing. */
    for (i = 0; i < 64; i++) {
        DWORD n = 0;
        int r;
        ov_init(&ovs[i]);
        r = WSASend(c, &b, 1, &n, 0, &ovs[i], NULL);
        CHECK_WSA_STARTED(r);
        started++;
        if (r == SOCKET_ERROR) {
            /* Stop once one is really stuck: nothing for 100 ms. */
            DWORD bytes = 0;
            ULONG_PTR key = 0;
            LPOVERLAPPED ov = NULL;
            while (GetQueuedCompletionStatus(port, &bytes, &key, &ov, 100)) {
                completed++;
            }
            CHECK_ERR(WAIT_TIMEOUT);
            if (completed < started) {
                pending = started - completed;
                break;
            }
        }
    }
    CHECK(pending > 0);
    CHECK_EQ(closesocket(c), 0);
    while (completed + aborted < started) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS);
        CHECK(ov != NULL);
        CHECK_EQ(key, 0x52);
        if (ok) {
            completed++;
        } else {
            CHECK_ERR(ERROR_CONNECTION_ABORTED);
            aborted++;
        }
    }
    CHECK(aborted >= 1);
    EXPECT_NO_PACKET(port, 20);
    CHECK_EQ(closesocket(s), 0);
    free(big);
}

static void close_listener(HANDLE port)
{
    struct sockaddr_in la;
    SOCKET l = tcp_listener(&la);
    SOCKET a = tcp_socket();
    char buf[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
    const DWORD alen = (DWORD)(sizeof(SOCKADDR_STORAGE) + 16);
    OVERLAPPED ov;
    DWORD bytes = 0;

    test_step("closesocket of a listener with a pending AcceptEx: ERROR_OPERATION_ABORTED");
    associate(HSOCK(l), port, 0x53);
    ov_init(&ov);
    SetLastError(0);
    CHECK(!AcceptEx(l, a, buf, 0, alen, alen, &bytes, &ov));
    CHECK_ERR(ERROR_IO_PENDING);
    CHECK_EQ(closesocket(l), 0);
    EXPECT_FAILED_PACKET(port, 0x53, &ov, ERROR_OPERATION_ABORTED);
    CHECK(HasOverlappedIoCompleted(&ov));
    EXPECT_NO_PACKET(port, 20);
    CHECK_EQ(closesocket(a), 0);
}

struct waiter {
    HANDLE port;
    int ex;
    int ready;
    int done;
    BOOL ok;
    DWORD err;
    DWORD bytes;
    ULONG_PTR key;
    LPOVERLAPPED ov;
    ULONG removed;
};

static void *wait_on_port(void *arg)
{
    struct waiter *w = (struct waiter *)arg;
    ASTORE(&w->ready, 1);
    if (w->ex) {
        OVERLAPPED_ENTRY e[4];
        w->removed = 99;
        w->ok = GetQueuedCompletionStatusEx(w->port, e, 4, &w->removed, INFINITE, FALSE);
    } else {
        w->ov = (LPOVERLAPPED)(uintptr_t)1;
        w->ok = GetQueuedCompletionStatus(w->port, &w->bytes, &w->key, &w->ov, INFINITE);
    }
    w->err = GetLastError();
    ASTORE(&w->done, 1);
    return NULL;
}

static void close_port_under_waiters(void)
{
    HANDLE port = new_port(0);
    struct waiter w[2];
    pthread_t t[2];
    int i;

    test_step("CloseHandle(port) releases threads waiting in GQCS and GQCSEx");
    memset(w, 0, sizeof w);
    for (i = 0; i < 2; i++) {
        w[i].port = port;
        w[i].ex = i;
        CHECK_EQ(pthread_create(&t[i], NULL, wait_on_port, &w[i]), 0);
        wait_flag(&w[i].ready, PACKET_WAIT_MS);
    }
    /* Let both reach their wait. */
    sleep_ms(150);
    CHECK(!ALOAD(&w[0].done));
    CHECK(!ALOAD(&w[1].done));
    CHECK(CloseHandle(port));
    for (i = 0; i < 2; i++) {
        wait_flag(&w[i].done, PACKET_WAIT_MS);
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    CHECK(!w[0].ok);
    CHECK_EQ(w[0].err, ERROR_ABANDONED_WAIT_0);
    CHECK(w[0].ov == NULL);
    CHECK(!w[1].ok);
    CHECK_EQ(w[1].err, ERROR_ABANDONED_WAIT_0);
    CHECK_EQ(w[1].removed, 0);

    test_step("the closed port's handle is invalid everywhere");
    {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)1;
        OVERLAPPED_ENTRY e[1];
        ULONG removed = 5;
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        CHECK(ov == NULL);
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatusEx(port, e, 1, &removed, 0, FALSE));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK(!PostQueuedCompletionStatus(port, 0, 0, NULL));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK(!CloseHandle(port));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        {
            SOCKET s = tcp_socket();
            SetLastError(0);
            CHECK(CreateIoCompletionPort(HSOCK(s), port, 1, 0) == NULL);
            CHECK_ERR(ERROR_INVALID_HANDLE);
            CHECK_EQ(closesocket(s), 0);
        }
    }
}

static void close_port_with_packets(void)
{
    HANDLE port = new_port(0);
    int i;
    test_step("CloseHandle(port) with 1000 packets queued");
    for (i = 0; i < 1000; i++) {
        CHECK(PostQueuedCompletionStatus(port, 1, 2, NULL));
    }
    CHECK(CloseHandle(port));
}

static void close_port_with_io_in_flight(void)
{
    HANDLE port = new_port(0);
    HANDLE port2;
    SOCKET c, s;
    char buf[16];
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0;

    test_step("CloseHandle(port) while a socket's receive is in flight: the receive is cancelled");
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, 0x54);
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    CHECK_WSA_STARTED(WSARecv(s, &b, 1, &n, &flags, &ov, NULL));
    CHECK(CloseHandle(port));
    send_all(c, "late", 4);
    /* On Windows the receive would go on (the socket keeps the port object alive) and complete
     * with the 4 bytes, its packet queued where no one can dequeue it. Here closing the port
     * cancels the operations still in flight on it (docs/porting.md), before CloseHandle returns:
     * the OVERLAPPED says so at once, and the bytes stay in the socket. */
    CHECK(HasOverlappedIoCompleted(&ov));
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CANCELLED);
    CHECK_EQ(ov.InternalHigh, 0);
    CHECK_EQ(sys_recv((int)s, buf, sizeof buf, 0), 4);
    /* A new port does not receive the old one's packets. */
    port2 = new_port(0);
    EXPECT_NO_PACKET(port2, 50);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK(CloseHandle(port2));
}

static void closed_handles(void)
{
    char path[256];
    HANDLE port = new_port(0);
    HANDLE f;
    SOCKET s;
    OVERLAPPED ov;
    char buf[4];
    WSABUF b;
    DWORD n = 0, flags = 0;

    test_step("a closed file handle: ERROR_INVALID_HANDLE");
    temp_path(path, sizeof path, "closed");
    f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_FLAG_OVERLAPPED,
                    NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    associate(f, port, 1);
    CHECK(CloseHandle(f));
    ov_init(&ov);
    SetLastError(0);
    CHECK(!ReadFile(f, buf, sizeof buf, NULL, &ov));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!WriteFile(f, buf, sizeof buf, NULL, &ov));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!CloseHandle(f));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(f, port, 1, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    unlink(path);

    test_step("a closed socket: WSAENOTSOCK");
    s = tcp_socket();
    associate(HSOCK(s), port, 2);
    CHECK_EQ(closesocket(s), 0);
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    WSASetLastError(0);
    CHECK_EQ(WSARecv(s, &b, 1, &n, &flags, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(WSASend(s, &b, 1, &n, 0, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(closesocket(s), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTSOCK);
    EXPECT_NO_PACKET(port, 20);
    CHECK(CloseHandle(port));
}

int main(void)
{
    HANDLE port;
    test_init("close");
    wsa_startup();
    port = new_port(0);
    close_with_pending_recv(port);
    close_with_pending_send(port);
    close_listener(port);
    CHECK(CloseHandle(port));
    close_port_under_waiters();
    close_port_with_packets();
    close_port_with_io_in_flight();
    closed_handles();
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
