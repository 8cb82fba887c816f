/*
 * SetFileCompletionNotificationModes(FILE_SKIP_COMPLETION_PORT_ON_SUCCESS): an operation that
 * succeeds at once returns 0 (TRUE) with its byte count and queues no packet; without the flag the
 * same operation's packet arrives; operations that pend still complete through the port; failures
 * at once queue nothing either way.
 */
#include "common.h"

#define KEY_C 0xc
#define KEY_S 0x5

static void without_flag(HANDLE port, SOCKET c, SOCKET s)
{
    char msg[] = "plain";
    char buf[16];
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0;

    test_step("without the flag: a WSASend's packet arrives, even on immediate success");
    b.buf = msg;
    b.len = 5;
    ov_init(&ov);
    CHECK_WSA_STARTED(WSASend(c, &b, 1, &n, 0, &ov, NULL));
    EXPECT_PACKET(port, KEY_C, 5, &ov);
    wait_readable_bytes(s, 5);

    test_step("without the flag: a WSARecv with data there: packet arrives");
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    CHECK_WSA_STARTED(WSARecv(s, &b, 1, &n, &flags, &ov, NULL));
    EXPECT_PACKET(port, KEY_S, 5, &ov);
    CHECK(memcmp(buf, "plain", 5) == 0);
}

static void with_flag(HANDLE port, SOCKET c, SOCKET s)
{
    char msg[] = "skipped";
    char buf[16];
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0, got = 0;
    int r;

    test_step("SetFileCompletionNotificationModes on both ends");
    SetLastError(0xdeadbeefu);
    CHECK(SetFileCompletionNotificationModes(HSOCK(c), FILE_SKIP_COMPLETION_PORT_ON_SUCCESS));
    CHECK(SetFileCompletionNotificationModes(HSOCK(s), FILE_SKIP_COMPLETION_PORT_ON_SUCCESS));
    CHECK_ERR(0xdeadbeefu);

    test_step("a WSASend that completes at once: returns 0 with the count, queues no packet");
    b.buf = msg;
    b.len = 7;
    ov_init(&ov);
    n = 0xfeed;
    r = WSASend(c, &b, 1, &n, 0, &ov, NULL);
    CHECK_EQ(r, 0);
    CHECK_EQ(n, 7);
    EXPECT_NO_PACKET(port, 0);
    EXPECT_NO_PACKET(port, 50);
    CHECK(HasOverlappedIoCompleted(&ov));
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
    CHECK_EQ(ov.InternalHigh, 7);
    CHECK(WSAGetOverlappedResult(c, &ov, &got, FALSE, &flags));
    CHECK_EQ(got, 7);

    test_step("a WSARecv with the data already there: returns 0 at once, no packet");
    wait_readable_bytes(s, 7);
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    n = 0xfeed;
    flags = 0;
    r = WSARecv(s, &b, 1, &n, &flags, &ov, NULL);
    CHECK_EQ(r, 0);
    CHECK_EQ(n, 7);
    CHECK(memcmp(buf, "skipped", 7) == 0);
    EXPECT_NO_PACKET(port, 50);
    CHECK_EQ(ov.InternalHigh, 7);

    test_step("a WSARecv that pends still completes through the port");
    ov_init(&ov);
    flags = 0;
    CHECK_EQ(WSARecv(s, &b, 1, &n, &flags, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
    send_all(c, "later", 5);
    EXPECT_PACKET(port, KEY_S, 5, &ov);
    CHECK(memcmp(buf, "later", 5) == 0);

    test_step("a cancelled pending WSARecv still queues its (failed) packet");
    ov_init(&ov);
    flags = 0;
    CHECK_EQ(WSARecv(s, &b, 1, &n, &flags, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
    CHECK(CancelIoEx(HSOCK(s), &ov));
    EXPECT_FAILED_PACKET(port, KEY_S, &ov, ERROR_OPERATION_ABORTED);

    test_step("many immediate sends in a row: no packets at all");
    {
        int i;
        size_t total = 0;
        char in[64 * 7];
        for (i = 0; i < 64; i++) {
            b.buf = msg;
            b.len = 7;
            ov_init(&ov);
            r = WSASend(c, &b, 1, &n, 0, &ov, NULL);
            CHECK_EQ(r, 0);
            CHECK_EQ(n, 7);
            total += n;
        }
        EXPECT_NO_PACKET(port, 20);
        recv_exact(s, in, total);
    }
}

static void files_with_flag(HANDLE port)
{
    char path[256];
    HANDLE f;
    OVERLAPPED ov;
    char buf[32];
    DWORD n = 0;
    BOOL ok;

    test_step("files: with the flag, TRUE means no packet; FALSE/IO_PENDING means a packet");
    temp_path(path, sizeof path, "skip");
    f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_FLAG_OVERLAPPED,
                    NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    associate(f, port, 0xf);
    CHECK(SetFileCompletionNotificationModes(f, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS));
    ov_init(&ov);
    n = 0;
    ok = WriteFile(f, "0123456789", 10, &n, &ov);
    if (ok) {
        CHECK_EQ(n, 10);
        EXPECT_NO_PACKET(port, 50);
    } else {
        CHECK_ERR(ERROR_IO_PENDING);
        EXPECT_PACKET(port, 0xf, 10, &ov);
    }
    CHECK_EQ(ov.InternalHigh, 10);
    ov_init(&ov);
    n = 0;
    ok = ReadFile(f, buf, sizeof buf, &n, &ov);
    if (ok) {
        CHECK_EQ(n, 10);
        EXPECT_NO_PACKET(port, 50);
    } else {
        CHECK_ERR(ERROR_IO_PENDING);
        EXPECT_PACKET(port, 0xf, 10, &ov);
    }
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    CHECK(CloseHandle(f));
    unlink(path);
}

static void immediate_failure(HANDLE port)
{
    SOCKET c, s;
    char buf[8];
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0;
    struct sockaddr_in la;
    SOCKET l;
    int r;

    test_step("a send on a reset connection fails (at once or through the port), once");
    l = tcp_listener(&la);
    c = tcp_socket();
    connect_to(c, &la);
    s = accept_one(l);
    CHECK_EQ(closesocket(l), 0);
    associate(HSOCK(c), port, KEY_C);
    set_linger0(s);
    CHECK_EQ(closesocket(s), 0);
    /* Wait for the reset to arrive (poll leaves the socket's error in place). */
    wait_fd(c, POLLIN);
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    WSASetLastError(0);
    r = WSASend(c, &b, 1, &n, 0, &ov, NULL);
    CHECK_EQ(r, SOCKET_ERROR);
    if (WSAGetLastError() == WSA_IO_PENDING) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED got = NULL;
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &got, PACKET_WAIT_MS));
        CHECK(got == &ov);
    } else {
        /* An immediate failure queues nothing. */
        CHECK(WSAGetLastError() == WSAECONNRESET || WSAGetLastError() == WSAECONNABORTED ||
              WSAGetLastError() == WSAENOTCONN || WSAGetLastError() == WSAESHUTDOWN);
        EXPECT_NO_PACKET(port, 50);
    }
    CHECK_EQ(closesocket(c), 0);
}

int main(void)
{
    HANDLE port;
    SOCKET c, s;
    test_init("skip");
    wsa_startup();
    port = new_port(0);
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, KEY_C);
    associate(HSOCK(s), port, KEY_S);
    without_flag(port, c, s);
    with_flag(port, c, s);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    files_with_flag(port);
    immediate_failure(port);
    EXPECT_NO_PACKET(port, 0);
    CHECK(CloseHandle(port));
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
