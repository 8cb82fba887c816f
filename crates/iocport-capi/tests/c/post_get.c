/*
 * PostQueuedCompletionStatus and GetQueuedCompletionStatus: FIFO order, values that round-trip,
 * timeouts (0 and short) that give FALSE/WAIT_TIMEOUT with *lpOverlapped NULL and leave the key
 * and byte count alone, a last error left unchanged by successful calls, and wake-ups from other
 * threads.
 */
#include "common.h"

static void fifo(HANDLE port)
{
    static OVERLAPPED ovs[100];
    int i;
    test_step("100 packets come back in the order they were posted");
    for (i = 0; i < 100; i++) {
        CHECK(PostQueuedCompletionStatus(port, (DWORD)(i * 3), (ULONG_PTR)(1000 + i), &ovs[i]));
    }
    for (i = 0; i < 100; i++) {
        EXPECT_PACKET(port, 1000 + i, i * 3, &ovs[i]);
    }
    EXPECT_NO_PACKET(port, 0);
}

static void round_trip(HANDLE port)
{
    OVERLAPPED ov;
    test_step("extreme values round-trip; a posted OVERLAPPED is not touched");
    ov_init(&ov);
    ov.Internal = 0x1111;
    ov.InternalHigh = 0x2222;
    ov.Offset = 0x3333;
    ov.OffsetHigh = 0x4444;
    CHECK(PostQueuedCompletionStatus(port, 0xffffffffu, UINTPTR_MAX, &ov));
    CHECK(PostQueuedCompletionStatus(port, 0, 0, NULL));
    /* The OVERLAPPED pointer is an opaque value: it may point anywhere. */
    CHECK(PostQueuedCompletionStatus(port, 5, 6, (LPOVERLAPPED)(uintptr_t)0x10));
    CHECK(PostQueuedCompletionStatus(port, 7, 8, (LPOVERLAPPED)(uintptr_t)UINTPTR_MAX));
    EXPECT_PACKET(port, UINTPTR_MAX, 0xffffffffu, &ov);
    CHECK_EQ(ov.Internal, 0x1111);
    CHECK_EQ(ov.InternalHigh, 0x2222);
    CHECK_EQ(ov.Offset, 0x3333);
    CHECK_EQ(ov.OffsetHigh, 0x4444);
    /* A NULL OVERLAPPED is a successful packet too: TRUE. */
    EXPECT_PACKET(port, 0, 0, NULL);
    EXPECT_PACKET(port, 6, 5, (LPOVERLAPPED)(uintptr_t)0x10);
    EXPECT_PACKET(port, 8, 7, (LPOVERLAPPED)(uintptr_t)UINTPTR_MAX);
}

static void timeouts(HANDLE port)
{
    DWORD bytes;
    ULONG_PTR key;
    LPOVERLAPPED ov;
    OVERLAPPED dummy;
    unsigned waits[] = {0, 1, 10, 50, 120};
    size_t i;
    test_step("timeouts: FALSE, WAIT_TIMEOUT, *lpOverlapped NULL, key and bytes untouched");
    for (i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        uint64_t t0, elapsed;
        bytes = 0x5a5a5a5au;
        key = (ULONG_PTR)0xa5a5a5a5u;
        ov = &dummy;
        SetLastError(0);
        t0 = now_ms();
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, waits[i]));
        elapsed = now_ms() - t0;
        CHECK_ERR(WAIT_TIMEOUT);
        CHECK(ov == NULL);
        CHECK_EQ(bytes, 0x5a5a5a5au);
        CHECK_EQ(key, 0xa5a5a5a5u);
        /* Waited at least about as long as asked (1 ms of clock granularity), not much longer. */
        CHECK(elapsed + 2 >= waits[i]);
        CHECK(elapsed < waits[i] + 2000);
    }
}

static void last_error_unchanged(HANDLE port)
{
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;
    OVERLAPPED o;
    test_step("successful calls leave the last error alone");
    SetLastError(0xdeadbeefu);
    CHECK(PostQueuedCompletionStatus(port, 3, 4, &o));
    CHECK_ERR(0xdeadbeefu);
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0));
    CHECK_ERR(0xdeadbeefu);
    CHECK(ov == &o);
    CHECK_EQ(key, 4);
    CHECK_EQ(bytes, 3);
    CHECK(PostQueuedCompletionStatus(port, 3, 4, NULL));
    SetLastError(0xdeadbeefu);
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, INFINITE));
    CHECK_ERR(0xdeadbeefu);
    CHECK(ov == NULL);
}

struct poster {
    HANDLE port;
    unsigned delay_ms;
    int count;
    ULONG_PTR key_base;
};

static void *post_later(void *arg)
{
    struct poster *p = (struct poster *)arg;
    int i;
    sleep_ms(p->delay_ms);
    for (i = 0; i < p->count; i++) {
        CHECK(PostQueuedCompletionStatus(p->port, (DWORD)i, p->key_base + (ULONG_PTR)i, NULL));
    }
    return NULL;
}

static void wakeups(HANDLE port)
{
    pthread_t t;
    struct poster p;
    uint64_t t0, elapsed;
    test_step("an INFINITE wait wakes for a packet posted by another thread");
    p.port = port;
    p.delay_ms = 80;
    p.count = 1;
    p.key_base = 77;
    t0 = now_ms();
    CHECK_EQ(pthread_create(&t, NULL, post_later, &p), 0);
    EXPECT_PACKET(port, 77, 0, NULL);
    elapsed = now_ms() - t0;
    CHECK(elapsed >= 70);
    CHECK_EQ(pthread_join(t, NULL), 0);

    test_step("a timed wait wakes before its timeout");
    p.delay_ms = 50;
    p.key_base = 78;
    t0 = now_ms();
    CHECK_EQ(pthread_create(&t, NULL, post_later, &p), 0);
    {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, 4000));
        CHECK_EQ(key, 78);
    }
    CHECK(now_ms() - t0 < 3000);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

static void many_threads(HANDLE port)
{
    pthread_t t[4];
    struct poster p[4];
    int seen[4][500];
    int i, n;
    test_step("4 threads post 500 packets each; every one arrives once, each poster's in order");
    memset(seen, 0, sizeof seen);
    for (i = 0; i < 4; i++) {
        p[i].port = port;
        p[i].delay_ms = 0;
        p[i].count = 500;
        p[i].key_base = (ULONG_PTR)(i + 1) << 16;
        CHECK_EQ(pthread_create(&t[i], NULL, post_later, &p[i]), 0);
    }
    {
        int last[4] = {-1, -1, -1, -1};
        for (n = 0; n < 2000; n++) {
            DWORD bytes = 0;
            ULONG_PTR key = 0;
            LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)1;
            int who, idx;
            CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
            CHECK(ov == NULL);
            who = (int)(key >> 16) - 1;
            idx = (int)(key & 0xffff);
            CHECK(who >= 0 && who < 4);
            CHECK(idx >= 0 && idx < 500);
            CHECK_EQ(bytes, idx);
            CHECK_EQ(seen[who][idx], 0);
            seen[who][idx] = 1;
            CHECK(idx > last[who]);
            last[who] = idx;
        }
    }
    for (i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    EXPECT_NO_PACKET(port, 0);
}

int main(void)
{
    HANDLE port;
    test_init("post_get");
    port = new_port(0);
    EXPECT_NO_PACKET(port, 0);
    fifo(port);
    round_trip(port);
    timeouts(port);
    last_error_unchanged(port);
    wakeups(port);
    many_threads(port);
    CHECK(CloseHandle(port));
    return test_done();
}
