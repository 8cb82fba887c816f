/*
 * Thread scheduling on a port: waiting threads are released last in, first out; and the
 * concurrency value: with 1, while the thread that took a packet has not called GQCS again, a
 * second waiting thread gets no packet; once the first calls GQCS again, packets flow.
 *
 * A thread that holds a packet spins (it never blocks), so the test means the same on Windows,
 * where a thread that blocks elsewhere stops counting against the concurrency value.
 */
#include "common.h"

struct waiter {
    HANDLE port;
    const char *name;
    int entering; /* set just before the call to GQCS */
    int done;
    BOOL ok;
    ULONG_PTR key;
};

static void *wait_once(void *arg)
{
    struct waiter *w = (struct waiter *)arg;
    DWORD bytes = 0;
    LPOVERLAPPED ov = NULL;
    ASTORE(&w->entering, 1);
    w->ok = GetQueuedCompletionStatus(w->port, &bytes, &w->key, &ov, PACKET_WAIT_MS);
    ASTORE(&w->done, 1);
    return NULL;
}

static void lifo(void)
{
    HANDLE port = new_port(2);
    struct waiter a, b;
    pthread_t ta, tb;

    test_step("LIFO: A waits, then B waits; one packet goes to B");
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.port = port;
    a.name = "A";
    b.port = port;
    b.name = "B";
    CHECK_EQ(pthread_create(&ta, NULL, wait_once, &a), 0);
    wait_flag(&a.entering, PACKET_WAIT_MS);
    sleep_ms(150);
    CHECK_EQ(pthread_create(&tb, NULL, wait_once, &b), 0);
    wait_flag(&b.entering, PACKET_WAIT_MS);
    sleep_ms(150);
    CHECK(!ALOAD(&a.done));
    CHECK(!ALOAD(&b.done));

    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    wait_flag(&b.done, PACKET_WAIT_MS);
    CHECK(b.ok);
    CHECK_EQ(b.key, 1);
    sleep_ms(50);
    CHECK(!ALOAD(&a.done));

    test_step("the next packet goes to A");
    CHECK(PostQueuedCompletionStatus(port, 0, 2, NULL));
    wait_flag(&a.done, PACKET_WAIT_MS);
    CHECK(a.ok);
    CHECK_EQ(a.key, 2);
    CHECK_EQ(pthread_join(ta, NULL), 0);
    CHECK_EQ(pthread_join(tb, NULL), 0);
    CHECK(CloseHandle(port));
}

/* ---- The concurrency value --------------------------------------------------------------- */

struct worker {
    HANDLE port;
    int id;
    int hold_first;   /* spin after taking key 1 until release is set */
    int *release;
    int *stop;
    int holding;      /* set while spinning with key 1 */
    int got[8];       /* keys taken (1..7) */
};

static void *work(void *arg)
{
    struct worker *w = (struct worker *)arg;
    while (!ALOAD(w->stop)) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        if (GetQueuedCompletionStatus(w->port, &bytes, &key, &ov, 20)) {
            CHECK(key >= 1 && key <= 7);
            AADD(&w->got[key], 1);
            if (key == 1 && w->hold_first) {
                ASTORE(&w->holding, 1);
                /* Busy: never blocks, so the port counts this thread as running. */
                while (!ALOAD(w->release)) {
                    sched_yield();
                }
                ASTORE(&w->holding, 0);
            }
        } else {
            CHECK_ERR(WAIT_TIMEOUT);
        }
    }
    return NULL;
}

static int taken(struct worker *w, int key)
{
    return ALOAD(&w->got[key]);
}

static void concurrency_one(void)
{
    HANDLE port = new_port(1);
    struct worker w1, w2;
    pthread_t t1, t2;
    int release = 0, stop = 0;

    test_step("concurrency 1: thread 1 takes packet 1 and keeps running");
    memset(&w1, 0, sizeof w1);
    memset(&w2, 0, sizeof w2);
    w1.port = w2.port = port;
    w1.id = 1;
    w2.id = 2;
    w1.hold_first = 1;
    w1.release = w2.release = &release;
    w1.stop = w2.stop = &stop;
    CHECK_EQ(pthread_create(&t1, NULL, work, &w1), 0);
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    wait_flag(&w1.holding, PACKET_WAIT_MS);

    test_step("a second waiting thread gets no second packet for 250 ms");
    CHECK_EQ(pthread_create(&t2, NULL, work, &w2), 0);
    sleep_ms(50);
    CHECK(PostQueuedCompletionStatus(port, 0, 2, NULL));
    sleep_ms(250);
    CHECK_EQ(taken(&w2, 2), 0);
    CHECK_EQ(taken(&w1, 2), 0);
    CHECK_EQ(taken(&w2, 1), 0);

    test_step("thread 1 calls GQCS again: packet 2 flows");
    ASTORE(&release, 1);
    {
        uint64_t end = now_ms() + PACKET_WAIT_MS;
        while (taken(&w1, 2) + taken(&w2, 2) == 0) {
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
    }
    CHECK_EQ(taken(&w1, 2) + taken(&w2, 2), 1);

    test_step("with nobody holding a packet, more packets flow");
    CHECK(PostQueuedCompletionStatus(port, 0, 3, NULL));
    CHECK(PostQueuedCompletionStatus(port, 0, 4, NULL));
    {
        uint64_t end = now_ms() + PACKET_WAIT_MS;
        while (taken(&w1, 3) + taken(&w2, 3) + taken(&w1, 4) + taken(&w2, 4) < 2) {
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
    }
    ASTORE(&stop, 1);
    CHECK_EQ(pthread_join(t1, NULL), 0);
    CHECK_EQ(pthread_join(t2, NULL), 0);
    CHECK_EQ(taken(&w1, 1), 1);
    CHECK_EQ(taken(&w1, 2) + taken(&w2, 2), 1);
    CHECK_EQ(taken(&w1, 3) + taken(&w2, 3), 1);
    CHECK_EQ(taken(&w1, 4) + taken(&w2, 4), 1);
    EXPECT_NO_PACKET(port, 0);
    CHECK(CloseHandle(port));
}

static void concurrency_two(void)
{
    HANDLE port = new_port(2);
    struct worker w[3];
    pthread_t t[3];
    int release = 0, stop = 0;
    int i;

    test_step("concurrency 2: two threads may hold packets at once, not three");
    memset(w, 0, sizeof w);
    for (i = 0; i < 3; i++) {
        w[i].port = port;
        w[i].id = i + 1;
        w[i].hold_first = 1;
        w[i].release = &release;
        w[i].stop = &stop;
        CHECK_EQ(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    sleep_ms(50);
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    {
        uint64_t end = now_ms() + PACKET_WAIT_MS;
        while (ALOAD(&w[0].holding) + ALOAD(&w[1].holding) + ALOAD(&w[2].holding) < 2) {
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
    }
    sleep_ms(250);
    CHECK_EQ(ALOAD(&w[0].holding) + ALOAD(&w[1].holding) + ALOAD(&w[2].holding), 2);
    CHECK_EQ(taken(&w[0], 1) + taken(&w[1], 1) + taken(&w[2], 1), 2);
    ASTORE(&release, 1);
    {
        uint64_t end = now_ms() + PACKET_WAIT_MS;
        while (taken(&w[0], 1) + taken(&w[1], 1) + taken(&w[2], 1) < 3) {
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
    }
    ASTORE(&stop, 1);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    CHECK(CloseHandle(port));
}

int main(void)
{
    test_init("concurrency");
    lifo();
    concurrency_one();
    concurrency_two();
    return test_done();
}
