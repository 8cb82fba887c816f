/*
 * Cancellation: CancelIoEx(h, ov) fails the one operation (GQCS FALSE, ERROR_OPERATION_ABORTED,
 * Internal STATUS_CANCELLED); CancelIoEx with nothing to cancel gives ERROR_NOT_FOUND;
 * CancelIoEx(h, NULL) cancels every operation on the handle; CancelIo cancels only the calling
 * thread's operations. A cancelled receive takes no data.
 */
#include "common.h"

#define KEY_S 0x5

static void start_recv(SOCKET s, WSABUF *b, char *buf, ULONG len, OVERLAPPED *ov)
{
    DWORD n = 0, flags = 0;
    b->buf = buf;
    b->len = len;
    ov_init(ov);
    CHECK_EQ(WSARecv(s, b, 1, &n, &flags, ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
}

static void cancel_one(HANDLE port, SOCKET c, SOCKET s)
{
    char b1[16], b2[16];
    WSABUF w1, w2;
    OVERLAPPED o1, o2, other;
    DWORD got = 0xfeed, flags = 0;

    test_step("CancelIoEx(h, ov) cancels that operation only");
    start_recv(s, &w1, b1, sizeof b1, &o1);
    start_recv(s, &w2, b2, sizeof b2, &o2);
    SetLastError(0xdeadbeefu);
    CHECK(CancelIoEx(HSOCK(s), &o1));
    EXPECT_FAILED_PACKET(port, KEY_S, &o1, ERROR_OPERATION_ABORTED);
    CHECK(HasOverlappedIoCompleted(&o1));
    CHECK_EQ((NTSTATUS)o1.Internal, STATUS_CANCELLED);
    CHECK_EQ(o1.InternalHigh, 0);
    SetLastError(0);
    CHECK(!WSAGetOverlappedResult(s, &o1, &got, FALSE, &flags));
    CHECK_WSAERR(WSA_OPERATION_ABORTED);
    CHECK_EQ(got, 0);
    SetLastError(0);
    CHECK(!GetOverlappedResult(HSOCK(s), &o1, &got, FALSE));
    CHECK_ERR(ERROR_OPERATION_ABORTED);

    test_step("the other receive is still pending and gets the data");
    CHECK(!HasOverlappedIoCompleted(&o2));
    EXPECT_NO_PACKET(port, 50);
    send_all(c, "data", 4);
    EXPECT_PACKET(port, KEY_S, 4, &o2);
    CHECK(memcmp(b2, "data", 4) == 0);

    test_step("CancelIoEx of an operation that already completed: ERROR_NOT_FOUND");
    SetLastError(0);
    CHECK(!CancelIoEx(HSOCK(s), &o2));
    CHECK_ERR(ERROR_NOT_FOUND);

    test_step("CancelIoEx with an OVERLAPPED never used: ERROR_NOT_FOUND");
    ov_init(&other);
    start_recv(s, &w1, b1, sizeof b1, &o1);
    SetLastError(0);
    CHECK(!CancelIoEx(HSOCK(s), &other));
    CHECK_ERR(ERROR_NOT_FOUND);
    test_step("CancelIoEx with the right OVERLAPPED on another handle: ERROR_NOT_FOUND");
    SetLastError(0);
    CHECK(!CancelIoEx(HSOCK(c), &o1));
    CHECK_ERR(ERROR_NOT_FOUND);
    EXPECT_NO_PACKET(port, 20);
    CHECK(CancelIoEx(HSOCK(s), &o1));
    EXPECT_FAILED_PACKET(port, KEY_S, &o1, ERROR_OPERATION_ABORTED);

    test_step("CancelIoEx(h, NULL) with nothing in flight: ERROR_NOT_FOUND");
    SetLastError(0);
    CHECK(!CancelIoEx(HSOCK(s), NULL));
    CHECK_ERR(ERROR_NOT_FOUND);

    test_step("data sent after a cancel is not lost");
    send_all(c, "after", 5);
    wait_readable_bytes(s, 5);
    {
        char buf[8];
        WSABUF b;
        OVERLAPPED o;
        DWORD n = 0;
        flags = 0;
        b.buf = buf;
        b.len = sizeof buf;
        ov_init(&o);
        CHECK_WSA_STARTED(WSARecv(s, &b, 1, &n, &flags, &o, NULL));
        EXPECT_PACKET(port, KEY_S, 5, &o);
        CHECK(memcmp(buf, "after", 5) == 0);
    }
}

static void cancel_all(HANDLE port, SOCKET s)
{
    char b[3][8];
    WSABUF w[3];
    static OVERLAPPED o[3];
    int seen[3] = {0, 0, 0};
    int i;

    test_step("CancelIoEx(h, NULL) cancels the 3 pending receives");
    for (i = 0; i < 3; i++) {
        start_recv(s, &w[i], b[i], sizeof b[i], &o[i]);
    }
    CHECK(CancelIoEx(HSOCK(s), NULL));
    for (i = 0; i < 3; i++) {
        DWORD bytes = 0xfeed;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        int idx;
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        CHECK_ERR(ERROR_OPERATION_ABORTED);
        CHECK_EQ(key, KEY_S);
        CHECK_EQ(bytes, 0);
        CHECK(ov >= &o[0] && ov < &o[3]);
        idx = (int)(ov - &o[0]);
        CHECK_EQ(seen[idx], 0);
        seen[idx] = 1;
        CHECK_EQ((NTSTATUS)o[idx].Internal, STATUS_CANCELLED);
    }
    EXPECT_NO_PACKET(port, 50);
}

static void cancel_accept(HANDLE port)
{
    struct sockaddr_in la;
    SOCKET l = tcp_listener(&la);
    SOCKET a = tcp_socket();
    char buf[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
    OVERLAPPED ov;
    DWORD bytes = 0;
    const DWORD alen = (DWORD)(sizeof(SOCKADDR_STORAGE) + 16);

    test_step("CancelIoEx cancels a pending AcceptEx; the listener accepts afterwards");
    associate(HSOCK(l), port, 0x11);
    ov_init(&ov);
    SetLastError(0);
    CHECK(!AcceptEx(l, a, buf, 0, alen, alen, &bytes, &ov));
    CHECK_ERR(ERROR_IO_PENDING);
    CHECK(CancelIoEx(HSOCK(l), &ov));
    EXPECT_FAILED_PACKET(port, 0x11, &ov, ERROR_OPERATION_ABORTED);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CANCELLED);

    /* After a failed AcceptEx, Windows code closes the accept socket and takes a new one. */
    CHECK_EQ(closesocket(a), 0);
    a = tcp_socket();
    ov_init(&ov);
    CHECK_STARTED(AcceptEx(l, a, buf, 0, alen, alen, &bytes, &ov));
    {
        SOCKET c = tcp_socket();
        connect_to(c, &la);
        EXPECT_PACKET(port, 0x11, 0, &ov);
        CHECK_EQ(closesocket(c), 0);
    }
    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(l), 0);
}

/* ---- CancelIo and threads ---------------------------------------------------------------- */

struct thread_ctx {
    SOCKET s;
    OVERLAPPED ov;
    WSABUF b;
    char buf[8];
    int started;
    int may_cancel;
    int cancelled;
    BOOL cancel_result;
};

static void *cancel_from_other_thread(void *arg)
{
    struct thread_ctx *t = (struct thread_ctx *)arg;
    t->cancel_result = CancelIo(HSOCK(t->s));
    return NULL;
}

static void *start_then_cancel(void *arg)
{
    struct thread_ctx *t = (struct thread_ctx *)arg;
    start_recv(t->s, &t->b, t->buf, sizeof t->buf, &t->ov);
    ASTORE(&t->started, 1);
    wait_flag(&t->may_cancel, PACKET_WAIT_MS);
    t->cancel_result = CancelIo(HSOCK(t->s));
    ASTORE(&t->cancelled, 1);
    return NULL;
}

static void cancel_io_threads(HANDLE port, SOCKET s)
{
    struct thread_ctx t;
    pthread_t th;
    char buf[8];
    WSABUF b;
    OVERLAPPED ov;

    test_step("CancelIo from another thread leaves this thread's receive alone");
    start_recv(s, &b, buf, sizeof buf, &ov);
    memset(&t, 0, sizeof t);
    t.s = s;
    CHECK_EQ(pthread_create(&th, NULL, cancel_from_other_thread, &t), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    EXPECT_NO_PACKET(port, 200);
    CHECK(!HasOverlappedIoCompleted(&ov));

    test_step("CancelIo from the thread that started it cancels it");
    SetLastError(0xdeadbeefu);
    CHECK(CancelIo(HSOCK(s)));
    EXPECT_FAILED_PACKET(port, KEY_S, &ov, ERROR_OPERATION_ABORTED);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CANCELLED);
    EXPECT_NO_PACKET(port, 20);

    test_step("the other way round: a thread's receive survives this thread's CancelIo");
    memset(&t, 0, sizeof t);
    t.s = s;
    CHECK_EQ(pthread_create(&th, NULL, start_then_cancel, &t), 0);
    wait_flag(&t.started, PACKET_WAIT_MS);
    CancelIo(HSOCK(s));
    EXPECT_NO_PACKET(port, 200);
    CHECK(!HasOverlappedIoCompleted(&t.ov));
    ASTORE(&t.may_cancel, 1);
    EXPECT_FAILED_PACKET(port, KEY_S, &t.ov, ERROR_OPERATION_ABORTED);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(t.cancel_result);
}

int main(void)
{
    HANDLE port;
    SOCKET c, s;
    test_init("cancel");
    wsa_startup();
    port = new_port(0);
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, KEY_S);
    cancel_one(port, c, s);
    cancel_all(port, s);
    cancel_accept(port);
    cancel_io_threads(port, s);
    EXPECT_NO_PACKET(port, 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK(CloseHandle(port));
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
