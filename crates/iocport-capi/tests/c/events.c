/*
 * Events and waits with Windows' results: manual- and auto-reset events (one auto-reset signal
 * releases one waiter), WaitForSingleObject and WaitForMultipleObjects (wait-any gives the lowest
 * index signalled, wait-all takes every auto-reset event at once or none, timeouts, INFINITE,
 * 64 handles), completion ports as waitable objects (signalled while they hold a packet, which
 * the wait does not take; an I/O completion with no thread in GetQueuedCompletionStatus wakes the
 * wait), waits on a mix of threads, events and ports, OVERLAPPED.hEvent (reset when the
 * operation starts, set when it completes, also with no thread in GetQueuedCompletionStatus; its
 * low bit still means "no packet"), and bad input to every call.
 */
#include "common.h"

static void manual_and_auto(void)
{
    HANDLE m, a;

    test_step("manual-reset: stays signalled until ResetEvent");
    m = CreateEventA(NULL, TRUE, FALSE, NULL);
    CHECK(m != NULL);
    CHECK((uint64_t)(uintptr_t)m >= ((uint64_t)1 << 32));
    CHECK_EQ(WaitForSingleObject(m, 0), WAIT_TIMEOUT);
    CHECK(SetEvent(m));
    CHECK_EQ(WaitForSingleObject(m, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(m, INFINITE), WAIT_OBJECT_0);
    CHECK(SetEvent(m)); /* setting a set event is fine */
    CHECK(ResetEvent(m));
    CHECK_EQ(WaitForSingleObject(m, 0), WAIT_TIMEOUT);
    CHECK(ResetEvent(m));

    test_step("auto-reset, initially signalled: one wait takes it");
    a = CreateEventW(NULL, FALSE, TRUE, NULL);
    CHECK(a != NULL);
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_TIMEOUT);
    CHECK(SetEvent(a));
    CHECK(SetEvent(a)); /* two sets with no waiter are one signal */
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_TIMEOUT);

    test_step("the CreateEvent spelling");
    CHECK(CloseHandle(m));
    m = CreateEvent(NULL, TRUE, TRUE, NULL);
    CHECK(m != NULL);
    CHECK_EQ(WaitForSingleObject(m, 0), WAIT_OBJECT_0);
    CHECK(CloseHandle(m));
    CHECK(CloseHandle(a));
}

struct waiter {
    HANDLE ev;
    int done;
    DWORD result;
};

static DWORD WINAPI wait_event(LPVOID arg)
{
    struct waiter *w = (struct waiter *)arg;
    w->result = WaitForSingleObject(w->ev, PACKET_WAIT_MS);
    ASTORE(&w->done, 1);
    return 0;
}

static int count_done(struct waiter *w, int n)
{
    int i, c = 0;
    for (i = 0; i < n; i++) {
        c += ALOAD(&w[i].done);
    }
    return c;
}

static void releases(void)
{
    struct waiter w[4];
    HANDLE th[4];
    HANDLE a = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE m = CreateEventA(NULL, TRUE, FALSE, NULL);
    uint64_t end;
    int i;

    test_step("auto-reset: each SetEvent releases exactly one of two waiters");
    for (i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].ev = a;
        th[i] = CreateThread(NULL, 0, wait_event, &w[i], 0, NULL);
        CHECK(th[i] != NULL);
    }
    sleep_ms(100);
    CHECK_EQ(count_done(w, 2), 0);
    CHECK(SetEvent(a));
    end = now_ms() + PACKET_WAIT_MS;
    while (count_done(w, 2) < 1) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    sleep_ms(100);
    CHECK_EQ(count_done(w, 2), 1);
    CHECK(SetEvent(a));
    CHECK_EQ(WaitForMultipleObjects(2, th, TRUE, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK_EQ(w[0].result, WAIT_OBJECT_0);
    CHECK_EQ(w[1].result, WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_TIMEOUT); /* both signals were taken */
    for (i = 0; i < 2; i++) {
        CHECK(CloseHandle(th[i]));
    }

    test_step("manual-reset: one SetEvent releases all four waiters");
    for (i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].ev = m;
        th[i] = CreateThread(NULL, 0, wait_event, &w[i], 0, NULL);
        CHECK(th[i] != NULL);
    }
    sleep_ms(100);
    CHECK_EQ(count_done(w, 4), 0);
    CHECK(SetEvent(m));
    CHECK_EQ(WaitForMultipleObjects(4, th, TRUE, PACKET_WAIT_MS), WAIT_OBJECT_0);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(w[i].result, WAIT_OBJECT_0);
        CHECK(CloseHandle(th[i]));
    }
    CHECK(CloseHandle(a));
    CHECK(CloseHandle(m));
}

struct delayed {
    HANDLE ev;
    unsigned ms;
};

static DWORD WINAPI set_later(LPVOID arg)
{
    struct delayed *d = (struct delayed *)arg;
    Sleep(d->ms);
    CHECK(SetEvent(d->ev));
    return 0;
}

static void multiple(void)
{
    HANDLE e[MAXIMUM_WAIT_OBJECTS];
    HANDLE a, b, c, t;
    struct delayed d;
    uint64_t t0;
    unsigned i;

    test_step("wait-any: the lowest signalled index; an auto-reset event is taken");
    a = CreateEventA(NULL, FALSE, FALSE, NULL);
    b = CreateEventA(NULL, FALSE, TRUE, NULL);
    c = CreateEventA(NULL, TRUE, TRUE, NULL);
    e[0] = a;
    e[1] = b;
    e[2] = c;
    CHECK_EQ(WaitForMultipleObjects(3, e, FALSE, 0), WAIT_OBJECT_0 + 1);
    CHECK_EQ(WaitForMultipleObjects(3, e, FALSE, 0), WAIT_OBJECT_0 + 2);
    CHECK_EQ(WaitForMultipleObjects(3, e, FALSE, 0), WAIT_OBJECT_0 + 2); /* manual stays */
    CHECK(ResetEvent(c));
    t0 = now_ms();
    CHECK_EQ(WaitForMultipleObjects(3, e, FALSE, 100), WAIT_TIMEOUT);
    CHECK(now_ms() - t0 >= 100);

    test_step("wait-any: the same handle twice is allowed");
    e[1] = a;
    CHECK(SetEvent(a));
    CHECK_EQ(WaitForMultipleObjects(2, e, FALSE, 0), WAIT_OBJECT_0);
    e[1] = b;

    test_step("wait-all: all or nothing; a timed-out wait-all takes no signal");
    CHECK(SetEvent(a));
    t0 = now_ms();
    CHECK_EQ(WaitForMultipleObjects(2, e, TRUE, 50), WAIT_TIMEOUT);
    CHECK(now_ms() - t0 >= 50);
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_OBJECT_0); /* still set: taken only now */
    CHECK(SetEvent(a));
    d.ev = b;
    d.ms = 50;
    t = CreateThread(NULL, 0, set_later, &d, 0, NULL);
    CHECK(t != NULL);
    CHECK_EQ(WaitForMultipleObjects(2, e, TRUE, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(a, 0), WAIT_TIMEOUT); /* both taken at once */
    CHECK_EQ(WaitForSingleObject(b, 0), WAIT_TIMEOUT);
    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(t));

    test_step("64 events: a set on the last wakes a wait-any with WAIT_OBJECT_0 + 63");
    for (i = 0; i < MAXIMUM_WAIT_OBJECTS; i++) {
        e[i] = CreateEventA(NULL, FALSE, FALSE, NULL);
        CHECK(e[i] != NULL);
    }
    d.ev = e[63];
    d.ms = 20;
    t = CreateThread(NULL, 0, set_later, &d, 0, NULL);
    CHECK_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, e, FALSE, PACKET_WAIT_MS),
             WAIT_OBJECT_0 + 63);
    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(t));
    for (i = 0; i < MAXIMUM_WAIT_OBJECTS; i++) {
        CHECK(CloseHandle(e[i]));
    }
    CHECK(CloseHandle(a));
    CHECK(CloseHandle(b));
    CHECK(CloseHandle(c));
}

struct poster {
    HANDLE port;
    unsigned ms;
};

static DWORD WINAPI post_later(LPVOID arg)
{
    struct poster *p = (struct poster *)arg;
    Sleep(p->ms);
    CHECK(PostQueuedCompletionStatus(p->port, 5, 9, NULL));
    return 0;
}

static void ports(void)
{
    HANDLE port = new_port(1);
    struct poster p;
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ovp = NULL;
    uint64_t t0;
    HANDLE t;

    test_step("a port is signalled while it holds a packet; the wait does not take it");
    CHECK_EQ(WaitForSingleObject(port, 0), WAIT_TIMEOUT);
    CHECK(PostQueuedCompletionStatus(port, 1, 2, NULL));
    CHECK_EQ(WaitForSingleObject(port, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(port, INFINITE), WAIT_OBJECT_0);
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ovp, 0));
    CHECK_EQ(key, 2);
    CHECK_EQ(WaitForSingleObject(port, 0), WAIT_TIMEOUT);

    test_step("a post from another thread wakes a thread waiting on the port at once");
    p.port = port;
    p.ms = 50;
    t = CreateThread(NULL, 0, post_later, &p, 0, NULL);
    t0 = now_ms();
    CHECK_EQ(WaitForSingleObject(port, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(now_ms() - t0 < 1000);
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ovp, 0));
    CHECK_EQ(key, 9);
    CHECK_EQ(bytes, 5);
    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(t));

    test_step("an I/O completion signals the port with no thread in GetQueuedCompletionStatus");
    {
        SOCKET c, s;
        char buf[16];
        WSABUF wb;
        DWORD flags = 0;
        OVERLAPPED ov;
        wsa_startup();
        tcp_pair(&c, &s);
        associate(HSOCK(c), port, 77);
        ov_init(&ov);
        wb.buf = buf;
        wb.len = sizeof buf;
        CHECK_WSA_STARTED(WSARecv(c, &wb, 1, NULL, &flags, &ov, NULL));
        CHECK_EQ(WaitForSingleObject(port, 50), WAIT_TIMEOUT);
        send_all(s, "hello", 5);
        CHECK_EQ(WaitForSingleObject(port, PACKET_WAIT_MS), WAIT_OBJECT_0);
        EXPECT_PACKET(port, 77, 5, &ov);
        CHECK_EQ(memcmp(buf, "hello", 5), 0);
        CHECK_EQ(closesocket(c), 0);
        CHECK_EQ(closesocket(s), 0);
        CHECK_EQ(WSACleanup(), 0);
    }

    test_step("a closed port names nothing");
    CHECK(CloseHandle(port));
    SetLastError(0);
    CHECK_EQ(WaitForSingleObject(port, 0), WAIT_FAILED);
    CHECK_ERR(ERROR_INVALID_HANDLE);
}

static DWORD WINAPI short_job(LPVOID arg)
{
    Sleep((DWORD)(uintptr_t)arg);
    return 0;
}

static void mixed(void)
{
    HANDLE port = new_port(1);
    HANDLE ev = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE t = CreateThread(NULL, 0, short_job, (LPVOID)(uintptr_t)100, 0, NULL);
    HANDLE hs[3];
    DWORD bytes;
    ULONG_PTR key;
    LPOVERLAPPED ovp;

    hs[0] = t;
    hs[1] = ev;
    hs[2] = port;
    test_step("wait-any on a thread, an event and a port: the port's packet");
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    CHECK_EQ(WaitForMultipleObjects(3, hs, FALSE, PACKET_WAIT_MS), WAIT_OBJECT_0 + 2);

    test_step("wait-all on the three: only once the thread ended and the event is set");
    CHECK_EQ(WaitForMultipleObjects(3, hs, TRUE, 0), WAIT_TIMEOUT);
    CHECK(SetEvent(ev));
    CHECK_EQ(WaitForMultipleObjects(3, hs, TRUE, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(ev, 0), WAIT_TIMEOUT); /* the event was taken */
    CHECK_EQ(WaitForSingleObject(t, 0), WAIT_OBJECT_0); /* the thread stays signalled */
    CHECK_EQ(WaitForSingleObject(port, 0), WAIT_OBJECT_0); /* the packet is still queued */
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ovp, 0));

    test_step("wait-all including a port with no packet times out");
    CHECK(SetEvent(ev));
    CHECK_EQ(WaitForMultipleObjects(3, hs, TRUE, 30), WAIT_TIMEOUT);
    CHECK_EQ(WaitForSingleObject(ev, 0), WAIT_OBJECT_0);

    test_step("the process and thread pseudo-handles never signal while the caller waits");
    CHECK_EQ(WaitForSingleObject(INVALID_HANDLE_VALUE, 10), WAIT_TIMEOUT);
    hs[0] = GetCurrentThread();
    hs[1] = ev;
    CHECK(SetEvent(ev));
    CHECK_EQ(WaitForMultipleObjects(2, hs, FALSE, 0), WAIT_OBJECT_0 + 1);

    CHECK(CloseHandle(t));
    CHECK(CloseHandle(ev));
    CHECK(CloseHandle(port));
}

static void overlapped_events(void)
{
    HANDLE port = new_port(1);
    HANDLE e1 = CreateEventA(NULL, TRUE, TRUE, NULL);
    HANDLE e2 = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE both[2];
    SOCKET c, s;
    char buf1[16], buf2[16];
    WSABUF wb1, wb2;
    DWORD flags = 0, got = 0;
    OVERLAPPED ov1, ov2;
    struct delayed d;
    HANDLE t;

    wsa_startup();
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, 5);

    test_step("hEvent: reset when the receive starts, set when it completes, no GQCS thread");
    ov_init(&ov1);
    ov1.hEvent = e1;
    wb1.buf = buf1;
    wb1.len = sizeof buf1;
    CHECK_WSA_STARTED(WSARecv(c, &wb1, 1, NULL, &flags, &ov1, NULL));
    CHECK_EQ(WaitForSingleObject(e1, 30), WAIT_TIMEOUT); /* was signalled: reset at the start */
    send_all(s, "ping", 4);
    CHECK_EQ(WaitForSingleObject(e1, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(HasOverlappedIoCompleted(&ov1));
    CHECK(GetOverlappedResult(HSOCK(c), &ov1, &got, FALSE));
    CHECK_EQ(got, 4);
    CHECK_EQ(memcmp(buf1, "ping", 4), 0);
    EXPECT_PACKET(port, 5, 4, &ov1); /* the packet is queued too */

    test_step("hEvent | 1: the event is set and no packet is queued");
    ov_init(&ov2);
    ov2.hEvent = (HANDLE)((uintptr_t)e2 | 1);
    wb2.buf = buf2;
    wb2.len = sizeof buf2;
    CHECK_WSA_STARTED(WSARecv(c, &wb2, 1, NULL, &flags, &ov2, NULL));
    send_all(s, "pong!", 5);
    CHECK_EQ(WaitForSingleObject(e2, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(GetOverlappedResult(HSOCK(c), &ov2, &got, FALSE));
    CHECK_EQ(got, 5);
    EXPECT_NO_PACKET(port, 50);

    test_step("wait-all on an operation's event and an event another thread sets");
    ov_init(&ov2);
    ov2.hEvent = e2;
    both[0] = e2;
    both[1] = e1;
    CHECK(ResetEvent(e1));
    d.ev = e1;
    d.ms = 100;
    CHECK_WSA_STARTED(WSARecv(c, &wb2, 1, NULL, &flags, &ov2, NULL));
    t = CreateThread(NULL, 0, set_later, &d, 0, NULL);
    CHECK(t != NULL);
    Sleep(20);
    send_all(s, "x", 1);
    CHECK_EQ(WaitForMultipleObjects(2, both, TRUE, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(HasOverlappedIoCompleted(&ov2));
    EXPECT_PACKET(port, 5, 1, &ov2);
    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(t));

    test_step("closing the event's handle while the operation runs: its waiter still wakes");
    {
        struct waiter w;
        HANDLE e3 = CreateEventA(NULL, TRUE, FALSE, NULL);
        memset(&w, 0, sizeof w);
        w.ev = e3;
        ov_init(&ov2);
        ov2.hEvent = e3;
        CHECK_WSA_STARTED(WSARecv(c, &wb2, 1, NULL, &flags, &ov2, NULL));
        t = CreateThread(NULL, 0, wait_event, &w, 0, NULL);
        CHECK(t != NULL);
        Sleep(50);
        CHECK(CloseHandle(e3)); /* Windows keeps the object for the waiter and the I/O */
        send_all(s, "z", 1);
        wait_flag(&w.done, 2000);
        CHECK_EQ(w.result, WAIT_OBJECT_0);
        EXPECT_PACKET(port, 5, 1, &ov2);
        CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
        CHECK(CloseHandle(t));
    }

    test_step("a wait that began before the operation started sees it complete");
    {
        struct waiter w;
        memset(&w, 0, sizeof w);
        w.ev = e2;
        t = CreateThread(NULL, 0, wait_event, &w, 0, NULL);
        CHECK(t != NULL);
        Sleep(50); /* the waiter sleeps with no operation in flight */
        ov_init(&ov2);
        ov2.hEvent = e2;
        CHECK_WSA_STARTED(WSARecv(c, &wb2, 1, NULL, &flags, &ov2, NULL));
        send_all(s, "y", 1);
        /* Polled without the library, so that only the waiter itself can reap the completion;
         * well before its own 5 s timeout. */
        wait_flag(&w.done, 2000);
        CHECK_EQ(w.result, WAIT_OBJECT_0);
        CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
        CHECK(HasOverlappedIoCompleted(&ov2));
        EXPECT_PACKET(port, 5, 1, &ov2);
        CHECK(CloseHandle(t));
    }

    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
    CHECK(CloseHandle(e1));
    CHECK(CloseHandle(e2));
    CHECK(CloseHandle(port));
}

static void bad_input(void)
{
    HANDLE port = new_port(1);
    HANDLE ev = CreateEventA(NULL, TRUE, FALSE, NULL);
    HANDLE t = CreateThread(NULL, 0, short_job, (LPVOID)(uintptr_t)0, 0, NULL);
    HANDLE closed = CreateEventA(NULL, TRUE, FALSE, NULL);
    HANDLE many[MAXIMUM_WAIT_OBJECTS + 1];
    HANDLE two[2];
    DWORD bytes;
    ULONG_PTR key;
    LPOVERLAPPED ovp;
    SOCKET s;
    unsigned i;

    wsa_startup();
    s = tcp_socket();
    CHECK(CloseHandle(closed));

    test_step("named events are not offered: ERROR_NOT_SUPPORTED");
    SetLastError(0);
    CHECK(CreateEventA(NULL, TRUE, FALSE, "Global\\stop") == NULL);
    CHECK_ERR(ERROR_NOT_SUPPORTED);
    SetLastError(0);
    CHECK(CreateEventW(NULL, TRUE, FALSE, L"stop") == NULL);
    CHECK_ERR(ERROR_NOT_SUPPORTED);

    test_step("waits on what is no waitable object: WAIT_FAILED, ERROR_INVALID_HANDLE");
    {
        HANDLE bad[] = {NULL, (HANDLE)(uintptr_t)0xbadbad00u, closed, HSOCK(s),
                        (HANDLE)(uintptr_t)1};
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            SetLastError(0);
            CHECK_EQ(WaitForSingleObject(bad[i], 0), WAIT_FAILED);
            CHECK_ERR(ERROR_INVALID_HANDLE);
            SetLastError(0);
            CHECK_EQ(WaitForSingleObjectEx(bad[i], 0, TRUE), WAIT_FAILED);
            CHECK_ERR(ERROR_INVALID_HANDLE);
            two[0] = ev;
            two[1] = bad[i];
            SetLastError(0);
            CHECK_EQ(WaitForMultipleObjects(2, two, FALSE, 0), WAIT_FAILED);
            CHECK_ERR(ERROR_INVALID_HANDLE);
            SetLastError(0);
            CHECK(!SetEvent(bad[i]));
            CHECK_ERR(ERROR_INVALID_HANDLE);
            SetLastError(0);
            CHECK(!ResetEvent(bad[i]));
            CHECK_ERR(ERROR_INVALID_HANDLE);
        }
    }

    test_step("handles of the wrong kind: ERROR_INVALID_HANDLE");
    SetLastError(0);
    CHECK(!SetEvent(t));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!SetEvent(port));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!ResetEvent(INVALID_HANDLE_VALUE));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(ev, &bytes, &key, &ovp, 0));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(t, &bytes, &key, &ovp, 0));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!PostQueuedCompletionStatus(ev, 0, 0, NULL));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(HSOCK(s), ev, 1, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(ev, port, 1, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_HANDLE);

    test_step("WaitForMultipleObjects: 0 or 65 handles, NULL, wait-all twice: ERROR_INVALID_PARAMETER");
    for (i = 0; i <= MAXIMUM_WAIT_OBJECTS; i++) {
        many[i] = ev;
    }
    SetLastError(0);
    CHECK_EQ(WaitForMultipleObjects(0, many, FALSE, 0), WAIT_FAILED);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS + 1, many, FALSE, 0), WAIT_FAILED);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(WaitForMultipleObjectsEx(1, NULL, FALSE, 0, FALSE), WAIT_FAILED);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(WaitForMultipleObjects(2, many, TRUE, 0), WAIT_FAILED);
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(t));
    CHECK(CloseHandle(ev));
    CHECK(CloseHandle(port));
    SetLastError(0);
    CHECK(!CloseHandle(ev));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
}

int main(void)
{
    test_init("events");
    manual_and_auto();
    releases();
    multiple();
    ports();
    mixed();
    overlapped_events();
    bad_input();
    return test_done();
}
