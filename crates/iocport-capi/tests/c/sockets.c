/*
 * Winsock on the port: WSAStartup, WSASocketW, WSARecv and WSASend with one and several WSABUFs,
 * HasOverlappedIoCompleted and Internal/InternalHigh, WSAGetOverlappedResult, a peer's close
 * (0-byte success) and reset (ERROR_NETNAME_DELETED / WSAECONNRESET), the zero-byte WSARecv,
 * WSARecvFrom/WSASendTo on UDP, a 1 MiB exchange driven by the port alone, and a stream send
 * that fails part way (the bytes it sent reported with the error).
 */
#include "common.h"

#define KEY_C 0xc1
#define KEY_S 0x5e

static void startup(void)
{
    WSADATA wsa;
    test_step("WSAStartup(2.2)");
    memset(&wsa, 0xff, sizeof wsa);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &wsa), 0);
    CHECK_EQ(wsa.wVersion, MAKEWORD(2, 2));
    CHECK_EQ(wsa.wHighVersion, MAKEWORD(2, 2));
    CHECK(memchr(wsa.szDescription, 0, sizeof wsa.szDescription) != NULL);
    CHECK(memchr(wsa.szSystemStatus, 0, sizeof wsa.szSystemStatus) != NULL);
}

static void one_buffer(HANDLE port, SOCKET c, SOCKET s)
{
    char rbuf[64];
    char sbuf[] = "hello, port";
    WSABUF rb, sb;
    OVERLAPPED rov, sov;
    DWORD flags = 0, n = 0, got = 0, gflags = 0xffff;
    int seen_r = 0, seen_s = 0, i;

    test_step("WSARecv pends, WSASend sends, both complete on the port");
    rb.len = sizeof rbuf;
    rb.buf = rbuf;
    ov_init(&rov);
    memset(rbuf, 0, sizeof rbuf);
    SetLastError(0);
    CHECK_EQ(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
    CHECK_ERR(ERROR_IO_PENDING);
    CHECK(!HasOverlappedIoCompleted(&rov));
    CHECK_EQ(rov.Internal, STATUS_PENDING);

    SetLastError(0);
    CHECK(!GetOverlappedResult(HSOCK(s), &rov, &got, FALSE));
    CHECK_ERR(ERROR_IO_INCOMPLETE);
    SetLastError(0);
    CHECK(!WSAGetOverlappedResult(s, &rov, &got, FALSE, &gflags));
    CHECK_WSAERR(WSA_IO_INCOMPLETE);

    sb.len = (ULONG)strlen(sbuf);
    sb.buf = sbuf;
    ov_init(&sov);
    n = 0;
    CHECK_WSA_STARTED(WSASend(c, &sb, 1, &n, 0, &sov, NULL));

    for (i = 0; i < 2; i++) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        if (ov == &rov) {
            CHECK_EQ(key, KEY_S);
            CHECK_EQ(bytes, strlen(sbuf));
            seen_r++;
        } else {
            CHECK(ov == &sov);
            CHECK_EQ(key, KEY_C);
            CHECK_EQ(bytes, strlen(sbuf));
            seen_s++;
        }
    }
    CHECK_EQ(seen_r, 1);
    CHECK_EQ(seen_s, 1);
    CHECK(memcmp(rbuf, sbuf, strlen(sbuf)) == 0);
    CHECK(HasOverlappedIoCompleted(&rov));
    CHECK(HasOverlappedIoCompleted(&sov));
    CHECK_EQ((NTSTATUS)rov.Internal, STATUS_SUCCESS);
    CHECK_EQ(rov.InternalHigh, strlen(sbuf));
    CHECK_EQ((NTSTATUS)sov.Internal, STATUS_SUCCESS);
    CHECK_EQ(sov.InternalHigh, strlen(sbuf));

    test_step("WSAGetOverlappedResult / GetOverlappedResult after completion");
    got = 0;
    gflags = 0xffff;
    SetLastError(0xdeadbeefu);
    CHECK(WSAGetOverlappedResult(s, &rov, &got, FALSE, &gflags));
    CHECK_EQ(got, strlen(sbuf));
    CHECK_EQ(gflags, 0);
    got = 0;
    CHECK(GetOverlappedResult(HSOCK(c), &sov, &got, TRUE));
    CHECK_EQ(got, strlen(sbuf));
    EXPECT_NO_PACKET(port, 0);
}

struct result_waiter {
    SOCKET s;
    OVERLAPPED *ov;
    int wsa; /* WSAGetOverlappedResult instead of GetOverlappedResult */
    int done;
    BOOL ok;
    DWORD bytes;
    DWORD flags;
};

static void *wait_result(void *arg)
{
    struct result_waiter *w = (struct result_waiter *)arg;
    w->flags = 0xffff;
    if (w->wsa) {
        w->ok = WSAGetOverlappedResult(w->s, w->ov, &w->bytes, TRUE, &w->flags);
    } else {
        w->ok = GetOverlappedResult(HSOCK(w->s), w->ov, &w->bytes, TRUE);
    }
    ASTORE(&w->done, 1);
    return NULL;
}

static void wait_for_result(HANDLE port, SOCKET c, SOCKET s)
{
    char buf[16];
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0;
    int wsa;

    for (wsa = 0; wsa < 2; wsa++) {
        pthread_t t;
        struct result_waiter w;
        uint64_t end;
        test_step("%s(wait TRUE) returns once a pending receive completes, nobody in GQCS; "
                  "the packet stays queued",
                  wsa ? "WSAGetOverlappedResult" : "GetOverlappedResult");
        b.buf = buf;
        b.len = sizeof buf;
        ov_init(&ov);
        flags = 0;
        CHECK_EQ(WSARecv(s, &b, 1, &n, &flags, &ov, NULL), SOCKET_ERROR);
        CHECK_WSAERR(WSA_IO_PENDING);
        memset(&w, 0, sizeof w);
        w.s = s;
        w.ov = &ov;
        w.wsa = wsa;
        CHECK_EQ(pthread_create(&t, NULL, wait_result, &w), 0);
        sleep_ms(100);
        CHECK(!ALOAD(&w.done));
        send_all(c, "waited", 6);
        /* The I/O must complete without any thread in GetQueuedCompletionStatus. */
        end = now_ms() + 3000;
        while (!ALOAD(&w.done)) {
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
        /* Dequeue the packet (this also unblocks a waiter that depends on it). */
        EXPECT_PACKET(port, KEY_S, 6, &ov);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK(w.ok);
        CHECK_EQ(w.bytes, 6);
        if (wsa) {
            CHECK_EQ(w.flags, 0);
        }
        CHECK(memcmp(buf, "waited", 6) == 0);
    }
}

static void several_buffers(HANDLE port, SOCKET c, SOCKET s)
{
    char a[] = "abc", b[] = "defgh", d[] = "ijklmno";
    char r1[4], r2[4], r3[20];
    WSABUF sb[3], rb[3];
    OVERLAPPED sov, rov;
    DWORD n = 0, flags = 0;

    test_step("WSASend gathers 3 buffers, WSARecv scatters into 3");
    sb[0].buf = a;
    sb[0].len = 3;
    sb[1].buf = b;
    sb[1].len = 5;
    sb[2].buf = d;
    sb[2].len = 7;
    ov_init(&sov);
    CHECK_WSA_STARTED(WSASend(c, sb, 3, &n, 0, &sov, NULL));
    EXPECT_PACKET(port, KEY_C, 15, &sov);
    /* All 15 bytes are in before the receive starts, so it takes them at once. */
    wait_readable_bytes(s, 15);

    memset(r1, 0, sizeof r1);
    memset(r2, 0, sizeof r2);
    memset(r3, 0, sizeof r3);
    rb[0].buf = r1;
    rb[0].len = sizeof r1;
    rb[1].buf = r2;
    rb[1].len = sizeof r2;
    rb[2].buf = r3;
    rb[2].len = sizeof r3;
    ov_init(&rov);
    CHECK_WSA_STARTED(WSARecv(s, rb, 3, &n, &flags, &rov, NULL));
    EXPECT_PACKET(port, KEY_S, 15, &rov);
    CHECK(memcmp(r1, "abcd", 4) == 0);
    CHECK(memcmp(r2, "efgh", 4) == 0);
    CHECK(memcmp(r3, "ijklmno", 7) == 0);
    CHECK_EQ(r3[7], 0);
}

static void zero_byte_recv(HANDLE port, SOCKET c, SOCKET s)
{
    static char none[1];
    char buf[16];
    WSABUF zb, rb;
    OVERLAPPED zov, rov;
    DWORD n = 0, flags = 0;

    test_step("a zero-byte WSARecv completes (0 bytes) when data arrives, leaving the data");
    zb.len = 0;
    zb.buf = none;
    ov_init(&zov);
    CHECK_WSA_STARTED(WSARecv(s, &zb, 1, &n, &flags, &zov, NULL));
    EXPECT_NO_PACKET(port, 100);
    send_all(c, "wake", 4);
    EXPECT_PACKET(port, KEY_S, 0, &zov);
    CHECK_EQ((NTSTATUS)zov.Internal, STATUS_SUCCESS);
    CHECK_EQ(zov.InternalHigh, 0);

    rb.len = sizeof buf;
    rb.buf = buf;
    ov_init(&rov);
    flags = 0;
    CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
    EXPECT_PACKET(port, KEY_S, 4, &rov);
    CHECK(memcmp(buf, "wake", 4) == 0);
}

/* Receives len bytes on s through the port, one WSARecv after another. */
static void recv_through_port(HANDLE port, SOCKET s, ULONG_PTR key, char *buf, size_t len)
{
    size_t have = 0;
    while (have < len) {
        WSABUF rb;
        OVERLAPPED rov;
        DWORD n = 0, flags = 0, bytes = 0;
        ULONG_PTR k = 0;
        LPOVERLAPPED ov = NULL;
        rb.buf = buf + have;
        rb.len = (ULONG)(len - have);
        ov_init(&rov);
        CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
        CHECK(GetQueuedCompletionStatus(port, &bytes, &k, &ov, PACKET_WAIT_MS));
        CHECK(ov == &rov);
        CHECK_EQ(k, key);
        CHECK(bytes > 0);
        have += bytes;
    }
}

static void peer_close(HANDLE port)
{
    SOCKET c, s;
    char buf[16];
    WSABUF rb;
    OVERLAPPED rov;
    DWORD n = 0, flags = 0;

    test_step("the peer's close completes a pending WSARecv with 0 bytes, TRUE");
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, KEY_S);
    rb.len = sizeof buf;
    rb.buf = buf;
    ov_init(&rov);
    CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
    EXPECT_NO_PACKET(port, 50);
    CHECK_EQ(closesocket(c), 0);
    EXPECT_PACKET(port, KEY_S, 0, &rov);
    CHECK_EQ((NTSTATUS)rov.Internal, STATUS_SUCCESS);

    test_step("another WSARecv after the end of the stream: 0 bytes again");
    ov_init(&rov);
    flags = 0;
    CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
    EXPECT_PACKET(port, KEY_S, 0, &rov);
    CHECK_EQ(closesocket(s), 0);
}

static void peer_reset(HANDLE port)
{
    SOCKET c, s;
    char buf[16];
    WSABUF rb;
    OVERLAPPED rov;
    DWORD n = 0, flags = 0, got = 0xfeed;

    test_step("the peer's reset fails a pending WSARecv: ERROR_NETNAME_DELETED, WSAECONNRESET");
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, KEY_S);
    rb.len = sizeof buf;
    rb.buf = buf;
    ov_init(&rov);
    CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
    set_linger0(c);
    CHECK_EQ(closesocket(c), 0);
    EXPECT_FAILED_PACKET(port, KEY_S, &rov, ERROR_NETNAME_DELETED);
    CHECK(HasOverlappedIoCompleted(&rov));
    CHECK_EQ((NTSTATUS)rov.Internal, STATUS_CONNECTION_RESET);
    CHECK_EQ(rov.InternalHigh, 0);
    SetLastError(0);
    CHECK(!WSAGetOverlappedResult(s, &rov, &got, FALSE, &flags));
    CHECK_WSAERR(WSAECONNRESET);
    CHECK_EQ(got, 0);
    SetLastError(0);
    CHECK(!GetOverlappedResult(HSOCK(s), &rov, &got, FALSE));
    CHECK_ERR(ERROR_NETNAME_DELETED);
    CHECK_EQ(closesocket(s), 0);
}

static void big_exchange(HANDLE port)
{
    enum { TOTAL = 1 << 20 };
    SOCKET c, s;
    char *out = (char *)malloc(TOTAL);
    char *in = (char *)malloc(TOTAL);
    size_t sent = 0, received = 0;
    int send_busy = 0, recv_busy = 0;
    OVERLAPPED sov, rov;
    WSABUF sb, rb;

    test_step("1 MiB each way through the port alone (sends and receives in flight together)");
    CHECK(out != NULL && in != NULL);
    fill_pattern(out, TOTAL, 5);
    memset(in, 0, TOTAL);
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, KEY_C);
    associate(HSOCK(s), port, KEY_S);
    while (received < TOTAL) {
        DWORD n = 0, flags = 0, bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        if (!send_busy && sent < TOTAL) {
            sb.buf = out + sent;
            sb.len = (ULONG)((TOTAL - sent) < 200000 ? (TOTAL - sent) : 200000);
            ov_init(&sov);
            CHECK_WSA_STARTED(WSASend(c, &sb, 1, &n, 0, &sov, NULL));
            send_busy = 1;
        }
        if (!recv_busy) {
            rb.buf = in + received;
            rb.len = (ULONG)((TOTAL - received) < 65536 ? (TOTAL - received) : 65536);
            ov_init(&rov);
            CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
            recv_busy = 1;
        }
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        if (ov == &sov) {
            CHECK_EQ(key, KEY_C);
            CHECK(bytes > 0 && bytes <= sb.len);
            sent += bytes;
            send_busy = 0;
        } else {
            CHECK(ov == &rov);
            CHECK_EQ(key, KEY_S);
            CHECK(bytes > 0);
            received += bytes;
            recv_busy = 0;
        }
    }
    if (send_busy) {
        EXPECT_PACKET(port, KEY_C, sb.len, &sov);
    }
    CHECK(memcmp(in, out, TOTAL) == 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    free(out);
    free(in);
}

static void send_fails_part_way(HANDLE port)
{
    enum { TOTAL = 8 << 20 };
    SOCKET c, s;
    char *out = (char *)malloc(TOTAL);
    OVERLAPPED sov;
    WSABUF sb;
    DWORD n = 0, bytes = 0xfeed, flags = 0, got = 0xfeed;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;
    BOOL ok;

    test_step("a stream WSASend that fails part way reports the bytes it sent (Wine: sent_len)");
    CHECK(out != NULL);
    fill_pattern(out, TOTAL, 9);
    tcp_pair(&c, &s);
    small_buffers(c, s);
    associate(HSOCK(c), port, KEY_C);
    sb.buf = out;
    sb.len = TOTAL;
    ov_init(&sov);
    /* Far more than both buffers hold while nobody reads: it cannot complete at once. */
    CHECK_EQ(WSASend(c, &sb, 1, &n, 0, &sov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
    wait_readable_bytes(s, 1);
    EXPECT_NO_PACKET(port, 50);
    /* A reset while the send waits for room: it fails, after part of it went. */
    set_linger0(s);
    CHECK_EQ(closesocket(s), 0);
    ok = GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS);
    CHECK(!ok);
    CHECK_ERR(ERROR_NETNAME_DELETED);
    CHECK(ov == &sov);
    CHECK_EQ(key, KEY_C);
    CHECK_EQ((NTSTATUS)sov.Internal, STATUS_CONNECTION_RESET);
    CHECK(bytes > 0 && bytes < TOTAL);
    CHECK_EQ(sov.InternalHigh, bytes);
    SetLastError(0);
    CHECK(!WSAGetOverlappedResult(c, &sov, &got, FALSE, &flags));
    CHECK_WSAERR(WSAECONNRESET);
    CHECK_EQ(got, bytes);
    CHECK_EQ(closesocket(c), 0);
    free(out);
}

static void udp(HANDLE port)
{
    SOCKET a = new_socket(SOCK_DGRAM);
    SOCKET b = new_socket(SOCK_DGRAM);
    struct sockaddr_in aa, ba;
    SOCKADDR_STORAGE from;
    INT fromlen;
    char rbuf[64], s1[] = "dgram", s2[] = "-two";
    WSABUF rb, sb[2];
    OVERLAPPED rov, sov;
    DWORD n = 0, flags = 0;
    int i;

    test_step("WSARecvFrom pends; WSASendTo with 2 buffers; the from address is filled in");
    bind_loopback(a, &aa);
    bind_loopback(b, &ba);
    associate(HSOCK(a), port, 0xa);
    associate(HSOCK(b), port, 0xb);

    memset(&from, 0, sizeof from);
    fromlen = (INT)sizeof from;
    rb.buf = rbuf;
    rb.len = sizeof rbuf;
    ov_init(&rov);
    CHECK_WSA_STARTED(
        WSARecvFrom(b, &rb, 1, &n, &flags, (struct sockaddr *)&from, &fromlen, &rov, NULL));

    sb[0].buf = s1;
    sb[0].len = 5;
    sb[1].buf = s2;
    sb[1].len = 4;
    ov_init(&sov);
    CHECK_WSA_STARTED(WSASendTo(a, sb, 2, &n, 0, (struct sockaddr *)&ba, sizeof ba, &sov, NULL));
    for (i = 0; i < 2; i++) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        CHECK_EQ(bytes, 9);
        if (ov == &rov) {
            CHECK_EQ(key, 0xb);
        } else {
            CHECK(ov == &sov);
            CHECK_EQ(key, 0xa);
        }
    }
    CHECK(memcmp(rbuf, "dgram-two", 9) == 0);
    CHECK_EQ(fromlen, sizeof(struct sockaddr_in));
    CHECK(same_addr((struct sockaddr_in *)&from, &aa));

    test_step("a datagram already queued: WSARecvFrom takes it (at once or through the port)");
    sb[0].len = 3;
    ov_init(&sov);
    CHECK_WSA_STARTED(WSASendTo(a, sb, 1, &n, 0, (struct sockaddr *)&ba, sizeof ba, &sov, NULL));
    EXPECT_PACKET(port, 0xa, 3, &sov);
    wait_readable_bytes(b, 3);
    memset(&from, 0, sizeof from);
    fromlen = (INT)sizeof from;
    ov_init(&rov);
    flags = 0;
    CHECK_WSA_STARTED(
        WSARecvFrom(b, &rb, 1, &n, &flags, (struct sockaddr *)&from, &fromlen, &rov, NULL));
    EXPECT_PACKET(port, 0xb, 3, &rov);
    CHECK(memcmp(rbuf, "dgr", 3) == 0);
    CHECK_EQ(fromlen, sizeof(struct sockaddr_in));
    CHECK(same_addr((struct sockaddr_in *)&from, &aa));

    test_step("WSARecv on a connected UDP socket, WSASend to it");
    CHECK_EQ(sys_connect((int)a, (struct sockaddr *)&ba, sizeof ba), 0);
    ov_init(&sov);
    sb[0].len = 5;
    CHECK_WSA_STARTED(WSASend(a, sb, 1, &n, 0, &sov, NULL));
    EXPECT_PACKET(port, 0xa, 5, &sov);
    ov_init(&rov);
    flags = 0;
    CHECK_WSA_STARTED(WSARecv(b, &rb, 1, &n, &flags, &rov, NULL));
    EXPECT_PACKET(port, 0xb, 5, &rov);

    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(b), 0);
}

static void unassociated(void)
{
    SOCKET c, s;
    char buf[4] = {1, 2, 3, 4};
    WSABUF b;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0;
    test_step("overlapped WSARecv/WSASend on an unassociated socket: WSAEINVAL");
    tcp_pair(&c, &s);
    b.buf = buf;
    b.len = sizeof buf;
    ov_init(&ov);
    WSASetLastError(0);
    CHECK_EQ(WSASend(c, &b, 1, &n, 0, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSAEINVAL);
    ov_init(&ov);
    WSASetLastError(0);
    CHECK_EQ(WSARecv(c, &b, 1, &n, &flags, &ov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSAEINVAL);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

int main(void)
{
    HANDLE port;
    SOCKET c, s;
    test_init("sockets");
    startup();
    port = new_port(0);

    test_step("a TCP pair on 127.0.0.1, both ends associated");
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, KEY_C);
    associate(HSOCK(s), port, KEY_S);
    one_buffer(port, c, s);
    several_buffers(port, c, s);
    zero_byte_recv(port, c, s);
    {
        /* A receive that finds its data already there. */
        char buf[8];
        test_step("a WSARecv with data already there completes (maybe at once), packet queued");
        send_all(c, "ready", 5);
        wait_readable_bytes(s, 5);
        recv_through_port(port, s, KEY_S, buf, 5);
        CHECK(memcmp(buf, "ready", 5) == 0);
    }
    wait_for_result(port, c, s);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);

    peer_close(port);
    peer_reset(port);
    big_exchange(port);
    send_fails_part_way(port);
    udp(port);
    unassociated();
    EXPECT_NO_PACKET(port, 0);
    CHECK(CloseHandle(port));
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
