/*
 * GetQueuedCompletionStatusEx: batches of posted packets in order, ulCount limits, the entries'
 * fields (Internal 0 for posted packets, the NTSTATUS of real I/O, failed I/O included with TRUE),
 * timeouts (FALSE, WAIT_TIMEOUT, *ulNumEntriesRemoved 0), ulCount 0, fAlertable ignored, and a
 * blocking call woken by another thread.
 */
#include "common.h"

static void batches(HANDLE port)
{
    static OVERLAPPED ovs[10];
    OVERLAPPED_ENTRY e[64];
    ULONG removed = 0;
    int i;

    test_step("10 posted packets, taken 4 then the rest, in order");
    for (i = 0; i < 10; i++) {
        CHECK(PostQueuedCompletionStatus(port, (DWORD)(100 + i), (ULONG_PTR)(200 + i), &ovs[i]));
    }
    memset(e, 0xab, sizeof e);
    CHECK(GetQueuedCompletionStatusEx(port, e, 4, &removed, 0, FALSE));
    CHECK_EQ(removed, 4);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(e[i].lpCompletionKey, 200 + i);
        CHECK_EQ(e[i].dwNumberOfBytesTransferred, 100 + i);
        CHECK(e[i].lpOverlapped == &ovs[i]);
        CHECK_EQ(e[i].Internal, 0);
    }
    /* Entries past the count are not written. */
    CHECK_EQ(e[4].lpCompletionKey, (ULONG_PTR)0xababababababababull);

    memset(e, 0xab, sizeof e);
    removed = 0;
    CHECK(GetQueuedCompletionStatusEx(port, e, 64, &removed, INFINITE, FALSE));
    CHECK_EQ(removed, 6);
    for (i = 0; i < 6; i++) {
        CHECK_EQ(e[i].lpCompletionKey, 204 + i);
        CHECK_EQ(e[i].dwNumberOfBytesTransferred, 104 + i);
        CHECK(e[i].lpOverlapped == &ovs[4 + i]);
        CHECK_EQ(e[i].Internal, 0);
    }

    test_step("ulCount 1 takes one at a time; a NULL OVERLAPPED is an entry too");
    CHECK(PostQueuedCompletionStatus(port, 1, 2, NULL));
    CHECK(PostQueuedCompletionStatus(port, 3, 4, NULL));
    removed = 0;
    CHECK(GetQueuedCompletionStatusEx(port, e, 1, &removed, 0, FALSE));
    CHECK_EQ(removed, 1);
    CHECK_EQ(e[0].lpCompletionKey, 2);
    CHECK(e[0].lpOverlapped == NULL);
    removed = 0;
    CHECK(GetQueuedCompletionStatusEx(port, e, 1, &removed, 0, TRUE));
    CHECK_EQ(removed, 1);
    CHECK_EQ(e[0].lpCompletionKey, 4);
}

static void timeouts(HANDLE port)
{
    OVERLAPPED_ENTRY e[4];
    ULONG removed;
    unsigned waits[] = {0, 20, 100};
    size_t i;
    int alertable;

    for (alertable = 0; alertable < 2; alertable++) {
        test_step("timeouts, fAlertable %d: FALSE, WAIT_TIMEOUT, 0 removed", alertable);
        for (i = 0; i < sizeof waits / sizeof waits[0]; i++) {
            uint64_t t0 = now_ms(), elapsed;
            removed = 77;
            SetLastError(0);
            CHECK(!GetQueuedCompletionStatusEx(port, e, 4, &removed, waits[i], alertable));
            elapsed = now_ms() - t0;
            CHECK_ERR(WAIT_TIMEOUT);
            CHECK_EQ(removed, 0);
            CHECK(elapsed + 2 >= waits[i]);
            CHECK(elapsed < waits[i] + 2000);
        }
    }

    test_step("ulCount 0: ERROR_INVALID_PARAMETER");
    removed = 77;
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(port, e, 0, &removed, 0, FALSE));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
}

static void real_io(HANDLE port)
{
    SOCKET c, s;
    char rbuf[16], sbuf[] = "batch";
    WSABUF rb, sb, cb;
    OVERLAPPED rov, sov, cov;
    OVERLAPPED_ENTRY e[8];
    ULONG removed, total = 0;
    DWORD n = 0, flags = 0;
    int seen_r = 0, seen_s = 0, seen_c = 0;
    char cbuf[4];
    uint64_t end;

    test_step("real I/O: entries carry the key, bytes, OVERLAPPED and NTSTATUS; failures too");
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, 0xc);
    associate(HSOCK(s), port, 0x5);
    rb.buf = rbuf;
    rb.len = sizeof rbuf;
    ov_init(&rov);
    CHECK_WSA_STARTED(WSARecv(s, &rb, 1, &n, &flags, &rov, NULL));
    /* A receive on the other end, cancelled: its entry holds STATUS_CANCELLED. */
    cb.buf = cbuf;
    cb.len = sizeof cbuf;
    ov_init(&cov);
    flags = 0;
    CHECK_EQ(WSARecv(c, &cb, 1, &n, &flags, &cov, NULL), SOCKET_ERROR);
    CHECK_WSAERR(WSA_IO_PENDING);
    CHECK(CancelIoEx(HSOCK(c), &cov));
    sb.buf = sbuf;
    sb.len = 5;
    ov_init(&sov);
    CHECK_WSA_STARTED(WSASend(c, &sb, 1, &n, 0, &sov, NULL));
    end = now_ms() + PACKET_WAIT_MS;
    while (total < 3) {
        ULONG i;
        BREAK_IF_LATE(end);
        removed = 0;
        SetLastError(0);
        /* The call succeeds even when an entry is a failed operation. */
        CHECK(GetQueuedCompletionStatusEx(port, e, 8, &removed, PACKET_WAIT_MS, FALSE));
        CHECK(removed >= 1 && removed <= 3 - total);
        for (i = 0; i < removed; i++) {
            if (e[i].lpOverlapped == &rov) {
                CHECK_EQ(e[i].lpCompletionKey, 0x5);
                CHECK_EQ(e[i].dwNumberOfBytesTransferred, 5);
                CHECK_EQ((NTSTATUS)e[i].Internal, STATUS_SUCCESS);
                seen_r++;
            } else if (e[i].lpOverlapped == &sov) {
                CHECK_EQ(e[i].lpCompletionKey, 0xc);
                CHECK_EQ(e[i].dwNumberOfBytesTransferred, 5);
                CHECK_EQ((NTSTATUS)e[i].Internal, STATUS_SUCCESS);
                seen_s++;
            } else {
                CHECK(e[i].lpOverlapped == &cov);
                CHECK_EQ(e[i].lpCompletionKey, 0xc);
                CHECK_EQ(e[i].dwNumberOfBytesTransferred, 0);
                CHECK_EQ((NTSTATUS)e[i].Internal, STATUS_CANCELLED);
                seen_c++;
            }
        }
        total += removed;
    }
    CHECK_EQ(seen_r, 1);
    CHECK_EQ(seen_s, 1);
    CHECK_EQ(seen_c, 1);
    CHECK(memcmp(rbuf, "batch", 5) == 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

struct poster {
    HANDLE port;
    int count;
};

static void *post_later(void *arg)
{
    struct poster *p = (struct poster *)arg;
    int i;
    sleep_ms(80);
    for (i = 0; i < p->count; i++) {
        CHECK(PostQueuedCompletionStatus(p->port, 0, (ULONG_PTR)(500 + i), NULL));
    }
    return NULL;
}

static void wakeup(HANDLE port)
{
    pthread_t t;
    struct poster p;
    OVERLAPPED_ENTRY e[16];
    ULONG removed = 0, total = 0;
    uint64_t t0 = now_ms();

    test_step("a blocking GQCSEx wakes for packets posted by another thread");
    p.port = port;
    p.count = 5;
    CHECK_EQ(pthread_create(&t, NULL, post_later, &p), 0);
    while (total < 5) {
        ULONG i;
        CHECK(GetQueuedCompletionStatusEx(port, e, 16, &removed, PACKET_WAIT_MS, TRUE));
        CHECK(removed >= 1);
        for (i = 0; i < removed; i++) {
            CHECK_EQ(e[i].lpCompletionKey, 500 + total + i);
        }
        total += removed;
    }
    CHECK_EQ(total, 5);
    CHECK(now_ms() - t0 >= 70);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

static void large_batch(HANDLE port)
{
    enum { N = 5000 };
    static OVERLAPPED_ENTRY e[1024];
    ULONG removed, got = 0;
    int i;
    test_step("5000 packets through batches of 1024");
    for (i = 0; i < N; i++) {
        CHECK(PostQueuedCompletionStatus(port, (DWORD)i, (ULONG_PTR)i, NULL));
    }
    while (got < N) {
        ULONG j;
        removed = 0;
        CHECK(GetQueuedCompletionStatusEx(port, e, 1024, &removed, 0, FALSE));
        CHECK(removed >= 1 && removed <= 1024);
        for (j = 0; j < removed; j++) {
            CHECK_EQ(e[j].lpCompletionKey, got + j);
            CHECK_EQ(e[j].dwNumberOfBytesTransferred, got + j);
        }
        got += removed;
    }
    EXPECT_NO_PACKET(port, 0);
}

int main(void)
{
    HANDLE port;
    test_init("gqcsex");
    wsa_startup();
    port = new_port(0);
    batches(port);
    timeouts(port);
    real_io(port);
    wakeup(port);
    large_batch(port);
    EXPECT_NO_PACKET(port, 0);
    CHECK(CloseHandle(port));
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
