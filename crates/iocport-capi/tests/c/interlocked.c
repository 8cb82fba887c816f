/*
 * The Interlocked family (header-only, iocport/locks.h) with Windows' results: the value each
 * returns (Increment, Decrement and Add the new value; Exchange, CompareExchange, ExchangeAdd,
 * And, Or and Xor the old one), what each leaves in memory, wrap-around at the limits, the exact
 * return types; the 64-bit and pointer forms; on volatile and plain variables; from several
 * threads at once (exact counts, one winner, one last decrement); and the full barrier (neither
 * MemoryBarrier nor an Interlocked write lets a later read pass an earlier write).
 */
#include "common.h"

#ifdef __cplusplus
#define SAME_TYPE(expr, T) (std::is_same<decltype(expr), T>::value)
#else
#define SAME_TYPE(expr, T) _Generic((expr), T: 1, default: 0)
#endif

static void types(void)
{
    LONG v = 0;
    LONG64 w = 0;
    PVOID p = NULL;

    test_step("signatures: LONG, LONG64 and PVOID results, as Windows declares them");
    CHECK_EQ(sizeof(LONG), 4);
    CHECK_EQ(sizeof(LONG64), 8);
    CHECK(SAME_TYPE(InterlockedIncrement(&v), LONG));
    CHECK(SAME_TYPE(InterlockedDecrement(&v), LONG));
    CHECK(SAME_TYPE(InterlockedExchange(&v, 0), LONG));
    CHECK(SAME_TYPE(InterlockedCompareExchange(&v, 0, 0), LONG));
    CHECK(SAME_TYPE(InterlockedExchangeAdd(&v, 0), LONG));
    CHECK(SAME_TYPE(InterlockedAdd(&v, 0), LONG));
    CHECK(SAME_TYPE(InterlockedAnd(&v, 0), LONG));
    CHECK(SAME_TYPE(InterlockedOr(&v, 0), LONG));
    CHECK(SAME_TYPE(InterlockedXor(&v, 0), LONG));
    CHECK(SAME_TYPE(InterlockedIncrement64(&w), LONG64));
    CHECK(SAME_TYPE(InterlockedDecrement64(&w), LONG64));
    CHECK(SAME_TYPE(InterlockedExchange64(&w, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedCompareExchange64(&w, 0, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedExchangeAdd64(&w, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedAdd64(&w, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedAnd64(&w, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedOr64(&w, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedXor64(&w, 0), LONG64));
    CHECK(SAME_TYPE(InterlockedExchangePointer(&p, NULL), PVOID));
    CHECK(SAME_TYPE(InterlockedCompareExchangePointer(&p, NULL, NULL), PVOID));
    CHECK_EQ(v, 0); /* the calls above are unevaluated */
}

static void values32(void)
{
    LONG v = 5;
    volatile LONG vv = 1;

    test_step("32-bit: each result and what is left in memory");
    CHECK_EQ(InterlockedIncrement(&v), 6);
    CHECK_EQ(v, 6);
    CHECK_EQ(InterlockedDecrement(&v), 5);
    CHECK_EQ(v, 5);
    CHECK_EQ(InterlockedExchange(&v, 42), 5);
    CHECK_EQ(v, 42);
    CHECK_EQ(InterlockedCompareExchange(&v, 7, 42), 42); /* matches: stored */
    CHECK_EQ(v, 7);
    CHECK_EQ(InterlockedCompareExchange(&v, 9, 42), 7); /* does not: untouched */
    CHECK_EQ(v, 7);
    CHECK_EQ(InterlockedExchangeAdd(&v, 10), 7);
    CHECK_EQ(v, 17);
    CHECK_EQ(InterlockedExchangeAdd(&v, -20), 17);
    CHECK_EQ(v, -3);
    CHECK_EQ(InterlockedAdd(&v, 3), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(InterlockedDecrement(&v), -1);
    CHECK_EQ(InterlockedIncrement(&v), 0);
    v = 0x0F0F;
    CHECK_EQ(InterlockedAnd(&v, 0x00FF), 0x0F0F);
    CHECK_EQ(v, 0x000F);
    CHECK_EQ(InterlockedOr(&v, 0x0F00), 0x000F);
    CHECK_EQ(v, 0x0F0F);
    CHECK_EQ(InterlockedXor(&v, 0xFFFF), 0x0F0F);
    CHECK_EQ(v, 0xF0F0);
    v = -1;
    CHECK_EQ(InterlockedAnd(&v, INT32_MAX), -1);
    CHECK_EQ(v, INT32_MAX);
    CHECK_EQ(InterlockedOr(&v, INT32_MIN), INT32_MAX);
    CHECK_EQ(v, -1);
    CHECK_EQ(InterlockedXor(&v, -1), -1);
    CHECK_EQ(v, 0);

    test_step("32-bit wrap-around at LONG's limits");
    v = INT32_MAX;
    CHECK_EQ(InterlockedIncrement(&v), INT32_MIN);
    CHECK(v < 0);
    CHECK_EQ(InterlockedDecrement(&v), INT32_MAX);
    CHECK_EQ(InterlockedExchangeAdd(&v, 1), INT32_MAX);
    CHECK_EQ(v, INT32_MIN);
    CHECK_EQ(InterlockedAdd(&v, -1), INT32_MAX);
    CHECK_EQ(InterlockedAdd(&v, INT32_MAX), -2);
    CHECK_EQ(InterlockedCompareExchange(&v, INT32_MIN, -2), -2);
    CHECK_EQ(v, INT32_MIN);

    test_step("on a volatile LONG, as Windows code declares its counters");
    CHECK_EQ(InterlockedIncrement(&vv), 2);
    CHECK_EQ(InterlockedExchange(&vv, 10), 2);
    CHECK_EQ(InterlockedCompareExchange(&vv, 11, 10), 10);
    CHECK_EQ(vv, 11);
}

static void values64(void)
{
    LONG64 w = 5;
    volatile LONG64 vw = 0;
    const LONG64 big = (LONG64)1 << 40;

    test_step("64-bit: each result and what is left in memory");
    CHECK_EQ(InterlockedIncrement64(&w), 6);
    CHECK_EQ(InterlockedDecrement64(&w), 5);
    CHECK_EQ(InterlockedExchange64(&w, big), 5);
    CHECK_EQ(w, big);
    CHECK_EQ(InterlockedCompareExchange64(&w, 7, big), big);
    CHECK_EQ(w, 7);
    CHECK_EQ(InterlockedCompareExchange64(&w, 9, big), 7);
    CHECK_EQ(w, 7);
    CHECK_EQ(InterlockedExchangeAdd64(&w, big), 7);
    CHECK_EQ(w, big + 7);
    CHECK_EQ(InterlockedAdd64(&w, -big), 7);
    CHECK_EQ(w, 7);
    w = (LONG64)0x0F0F0F0F0F0F0F0FLL;
    CHECK_EQ(InterlockedAnd64(&w, 0xFF), (LONG64)0x0F0F0F0F0F0F0F0FLL);
    CHECK_EQ(w, 0x0F);
    CHECK_EQ(InterlockedOr64(&w, big), 0x0F);
    CHECK_EQ(w, big | 0x0F);
    CHECK_EQ(InterlockedXor64(&w, big), big | 0x0F);
    CHECK_EQ(w, 0x0F);

    test_step("64-bit wrap-around at LONG64's limits");
    w = INT64_MAX;
    CHECK_EQ(InterlockedIncrement64(&w), INT64_MIN);
    CHECK(w < 0);
    CHECK_EQ(InterlockedDecrement64(&w), INT64_MAX);
    CHECK_EQ(InterlockedExchangeAdd64(&w, 1), INT64_MAX);
    CHECK_EQ(w, INT64_MIN);
    CHECK_EQ(InterlockedAdd64(&w, -1), INT64_MAX);
    CHECK_EQ(InterlockedIncrement64(&vw), 1);
    CHECK_EQ(InterlockedDecrement64(&vw), 0);
    CHECK_EQ(InterlockedDecrement64(&vw), -1);
}

static void pointers(void)
{
    int a = 0, b = 0;
    PVOID p = NULL;
    PVOID volatile vp = &a;

    test_step("pointers: InterlockedExchangePointer and InterlockedCompareExchangePointer");
    CHECK_EQ(InterlockedExchangePointer(&p, &a), NULL);
    CHECK_EQ(p, &a);
    CHECK_EQ(InterlockedCompareExchangePointer(&p, &b, &a), &a); /* matches */
    CHECK_EQ(p, &b);
    CHECK_EQ(InterlockedCompareExchangePointer(&p, NULL, &a), &b); /* does not */
    CHECK_EQ(p, &b);
    CHECK_EQ(InterlockedExchangePointer(&p, NULL), &b);
    CHECK_EQ(p, NULL);
    CHECK_EQ(InterlockedCompareExchangePointer(&vp, NULL, &a), &a);
    CHECK_EQ(vp, NULL);

    test_step("MemoryBarrier() and YieldProcessor() are statements, as Windows' macros");
    MemoryBarrier();
    YieldProcessor();
}

/* ---- From several threads ---------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 100000

struct shared {
    LONG count;
    LONG64 sum;
    LONG spin; /* a lock made of InterlockedCompareExchange */
    long plain; /* guarded by spin */
    LONG refs;
    LONG zero_seen;
    LONG bits;
    PVOID winner;
    LONG winners;
};

struct worker {
    struct shared *s;
    int id;
};

static void *worker_main(void *arg)
{
    struct worker *w = (struct worker *)arg;
    struct shared *s = w->s;
    int i;

    for (i = 1; i <= ROUNDS; i++) {
        InterlockedIncrement(&s->count);
        InterlockedExchangeAdd64(&s->sum, i);
        if (i % 16 == 0) {
            while (InterlockedCompareExchange(&s->spin, 1, 0) != 0) {
                YieldProcessor();
                sched_yield();
            }
            s->plain++;
            InterlockedExchange(&s->spin, 0);
        }
    }
    /* Each thread sets its own bit: the old values it sees never hold its bit yet. */
    CHECK_EQ(InterlockedOr(&s->bits, 1 << w->id) & (1 << w->id), 0);
    /* The first to install itself wins, once. */
    if (InterlockedCompareExchangePointer(&s->winner, w, NULL) == NULL) {
        InterlockedIncrement(&s->winners);
    }
    /* The last one out sees 0, exactly once. */
    if (InterlockedDecrement(&s->refs) == 0) {
        InterlockedIncrement(&s->zero_seen);
    }
    return NULL;
}

static void threads(void)
{
    static struct shared s;
    struct worker w[THREADS];
    pthread_t t[THREADS];
    int i;

    test_step("%d threads x %d: exact counts and sums, a CAS lock, one winner, one last "
              "decrement", THREADS, ROUNDS);
    memset(&s, 0, sizeof s);
    s.refs = THREADS;
    for (i = 0; i < THREADS; i++) {
        w[i].s = &s;
        w[i].id = i;
        CHECK_EQ(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    CHECK_EQ(s.count, THREADS * ROUNDS);
    CHECK_EQ(s.sum, (LONG64)THREADS * ROUNDS * (ROUNDS + 1) / 2);
    CHECK_EQ(s.plain, (long)THREADS * (ROUNDS / 16));
    CHECK_EQ(s.spin, 0);
    CHECK_EQ(s.bits, (1 << THREADS) - 1);
    CHECK_EQ(s.winners, 1);
    CHECK(s.winner != NULL);
    CHECK_EQ(s.refs, 0);
    CHECK_EQ(s.zero_seen, 1);
}

/*
 * Store buffering: each thread writes its variable, then (after a full barrier) reads the
 * other's. Without the barrier x86 lets both reads pass the writes now and then and see 0 and 0;
 * with MemoryBarrier, or with the write made by an Interlocked call, that never happens. The two
 * threads meet at a barrier before each round and then wait a varying few pauses, so that their
 * writes and reads overlap.
 */
#define SB_ROUNDS 50000

struct sb {
    int use_interlocked;
    LONG x, y;
    int r1, r2;
    int arrived; /* barrier: 2 per round */
};

/* Both threads arrive before either goes on (bounded). */
static void sb_meet(struct sb *s, int round)
{
    uint64_t end = now_ms() + PACKET_WAIT_MS;
    unsigned spins = 0;
    AADD(&s->arrived, 1);
    while (ALOAD(&s->arrived) < 2 * round) {
        if (++spins % 4096 == 0) {
            if (now_ms() >= end) {
                test_fail_(__FILE__, __LINE__, "store-buffering round hung", NULL);
                break;
            }
            sched_yield();
        }
        YieldProcessor();
    }
}

/* One side of a round: write mine, barrier, read theirs. */
static int sb_side(struct sb *s, LONG *mine, LONG *theirs, unsigned delay)
{
    while (delay--) {
        YieldProcessor();
    }
    if (s->use_interlocked) {
        InterlockedExchange(mine, 1);
    } else {
        __atomic_store_n(mine, 1, __ATOMIC_RELAXED);
        MemoryBarrier();
    }
    return (int)__atomic_load_n(theirs, __ATOMIC_RELAXED);
}

static void *sb_second(void *arg)
{
    struct sb *s = (struct sb *)arg;
    int round;
    for (round = 1; round <= SB_ROUNDS; round++) {
        sb_meet(s, 2 * round - 1);
        s->r2 = sb_side(s, &s->y, &s->x, (unsigned)round % 7);
        sb_meet(s, 2 * round);
    }
    return NULL;
}

static void store_buffering(int use_interlocked)
{
    static struct sb s;
    pthread_t t;
    int round, both_zero = 0;

    memset(&s, 0, sizeof s);
    s.use_interlocked = use_interlocked;
    CHECK_EQ(pthread_create(&t, NULL, sb_second, &s), 0);
    for (round = 1; round <= SB_ROUNDS; round++) {
        __atomic_store_n(&s.x, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s.y, 0, __ATOMIC_RELAXED);
        sb_meet(&s, 2 * round - 1);
        s.r1 = sb_side(&s, &s.x, &s.y, (unsigned)round % 5);
        sb_meet(&s, 2 * round);
        if (s.r1 == 0 && s.r2 == 0) {
            both_zero++;
        }
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(both_zero, 0);
}

static void full_barriers(void)
{
    test_step("store buffering, %d rounds: MemoryBarrier keeps each read after its write",
              SB_ROUNDS);
    store_buffering(0);
    test_step("the same with the writes made by InterlockedExchange");
    store_buffering(1);
}

int main(void)
{
    test_init("interlocked");
    types();
    values32();
    values64();
    pointers();
    threads();
    full_barriers();
    return test_done();
}
