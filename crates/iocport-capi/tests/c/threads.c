/*
 * Threads as Windows makes them: CreateThread and _beginthreadex (parameter, thread id, stack
 * size, CREATE_SUSPENDED with ResumeThread), the handle signalled when the thread ends,
 * GetExitCodeThread (STILL_ACTIVE, then the code), ExitThread and _endthreadex (in C++ the stack
 * unwinds: destructors run), GetCurrentThreadId/GetCurrentThread/GetThreadId, Sleep, SleepEx,
 * SwitchToThread, and bad input to each. Also NT's rule for workers: a thread that blocks in Sleep
 * or a wait after taking a packet no longer counts against the port's concurrency value, so
 * another waiting worker gets the next packet.
 */
#include "common.h"

#include <sys/wait.h>

struct job {
    int input;
    int ran;
    DWORD tid_inside;
    HANDLE release; /* an event the thread waits for, or NULL */
};

static DWORD WINAPI doubler(LPVOID arg)
{
    struct job *j = (struct job *)arg;
    j->tid_inside = GetCurrentThreadId();
    if (j->release) {
        CHECK_EQ(WaitForSingleObject(j->release, PACKET_WAIT_MS), WAIT_OBJECT_0);
    }
    ASTORE(&j->ran, 1);
    return (DWORD)(j->input * 2);
}

static void create_wait_exit_code(void)
{
    struct job j;
    DWORD tid = 0, code = 12345;
    HANDLE h;

    test_step("CreateThread: parameter, id, handle signalled at the end, exit code");
    memset(&j, 0, sizeof j);
    j.input = 21;
    h = CreateThread(NULL, 0, doubler, &j, 0, &tid);
    CHECK(h != NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    CHECK((uint64_t)(uintptr_t)h >= ((uint64_t)1 << 32)); /* never an fd */
    CHECK(tid != 0);
    CHECK(tid != GetCurrentThreadId());
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(ALOAD(&j.ran));
    CHECK_EQ(j.tid_inside, tid);
    CHECK_EQ(GetThreadId(h), tid);
    CHECK(GetExitCodeThread(h, &code));
    CHECK_EQ(code, 42);
    /* Signalled for good: a second wait returns at once. */
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_OBJECT_0);
    CHECK(CloseHandle(h));

    test_step("a closed thread handle names nothing");
    SetLastError(0);
    CHECK(!GetExitCodeThread(h, &code));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_FAILED);
    CHECK_ERR(ERROR_INVALID_HANDLE);
}

static void still_active(void)
{
    struct job j;
    DWORD code = 0;
    uint64_t t0;
    HANDLE h;

    test_step("STILL_ACTIVE while running; a timed wait times out; closing the handle early");
    memset(&j, 0, sizeof j);
    j.input = 5;
    j.release = CreateEventA(NULL, TRUE, FALSE, NULL);
    CHECK(j.release != NULL);
    h = CreateThread(NULL, 0, doubler, &j, 0, NULL);
    CHECK(h != NULL);
    CHECK(GetExitCodeThread(h, &code));
    CHECK_EQ(code, STILL_ACTIVE);
    t0 = now_ms();
    CHECK_EQ(WaitForSingleObject(h, 100), WAIT_TIMEOUT);
    CHECK(now_ms() - t0 >= 100);
    CHECK(!ALOAD(&j.ran));
    {
        /* A second handle-less look: the thread runs on after its handle is closed. */
        HANDLE dup = h;
        CHECK(SetEvent(j.release));
        CHECK_EQ(WaitForSingleObject(dup, PACKET_WAIT_MS), WAIT_OBJECT_0);
        CHECK(GetExitCodeThread(dup, &code));
        CHECK_EQ(code, 10);
        CHECK(CloseHandle(dup));
    }

    test_step("a thread whose handle is closed at once still runs to its end");
    memset(&j.ran, 0, sizeof j.ran);
    CHECK(ResetEvent(j.release));
    h = CreateThread(NULL, 0, doubler, &j, 0, NULL);
    CHECK(h != NULL);
    CHECK(CloseHandle(h));
    CHECK(SetEvent(j.release));
    wait_flag(&j.ran, PACKET_WAIT_MS);
    CHECK(CloseHandle(j.release));
}

#ifdef __cplusplus
static int destructed = 0;
struct Witness {
    ~Witness() { ASTORE(&destructed, 1); }
};
#endif

static int after_exit = 0;

static void deep_exit(DWORD code)
{
#ifdef __cplusplus
    Witness w;
    (void)w;
#endif
    ExitThread(code);
}

static DWORD WINAPI exiter(LPVOID arg)
{
    deep_exit((DWORD)(uintptr_t)arg);
    ASTORE(&after_exit, 1);
    return 1;
}

static unsigned WINAPI crt_exiter(void *arg)
{
    _endthreadex((unsigned)(uintptr_t)arg);
    ASTORE(&after_exit, 1);
    return 1;
}

static unsigned WINAPI crt_returner(void *arg)
{
    return (unsigned)(uintptr_t)arg + 1;
}

static void exit_thread(void)
{
    DWORD code = 0;
    unsigned tid = 0;
    uintptr_t h;
    HANDLE t;

    test_step("ExitThread(77) from a nested call ends the thread with 77%s",
#ifdef __cplusplus
              " and runs the destructors of the frames it leaves"
#else
              ""
#endif
    );
    t = CreateThread(NULL, 0, exiter, (LPVOID)(uintptr_t)77, 0, NULL);
    CHECK(t != NULL);
    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(GetExitCodeThread(t, &code));
    CHECK_EQ(code, 77);
    CHECK(!ALOAD(&after_exit));
#ifdef __cplusplus
    CHECK(ALOAD(&destructed));
#endif
    CHECK(CloseHandle(t));

    test_step("_beginthreadex: id out, return value as exit code; _endthreadex");
    h = _beginthreadex(NULL, 0, crt_returner, (void *)(uintptr_t)8, 0, &tid);
    CHECK(h != 0);
    CHECK(tid != 0);
    CHECK_EQ(WaitForSingleObject((HANDLE)h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(GetExitCodeThread((HANDLE)h, &code));
    CHECK_EQ(code, 9);
    CHECK(CloseHandle((HANDLE)h));
    h = _beginthreadex(NULL, 0, crt_exiter, (void *)(uintptr_t)3, 0, NULL);
    CHECK(h != 0);
    CHECK_EQ(WaitForSingleObject((HANDLE)h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(GetExitCodeThread((HANDLE)h, &code));
    CHECK_EQ(code, 3);
    CHECK(!ALOAD(&after_exit));
    CHECK(CloseHandle((HANDLE)h));

    test_step("_beginthreadex without a routine: 0 and errno EINVAL");
    errno = 0;
    CHECK_EQ(_beginthreadex(NULL, 0, NULL, NULL, 0, NULL), 0);
    CHECK_EQ(errno, EINVAL);
}

static void suspended(void)
{
    struct job j;
    DWORD tid = 0, code = 0;
    HANDLE h;

    test_step("CREATE_SUSPENDED: the id is known, nothing runs until ResumeThread");
    memset(&j, 0, sizeof j);
    j.input = 4;
    h = CreateThread(NULL, 0, doubler, &j, CREATE_SUSPENDED, &tid);
    CHECK(h != NULL);
    CHECK(tid != 0);
    CHECK_EQ(GetThreadId(h), tid);
    sleep_ms(100);
    CHECK(!ALOAD(&j.ran));
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
    CHECK_EQ(ResumeThread(h), 1);
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(ALOAD(&j.ran));
    CHECK(GetExitCodeThread(h, &code));
    CHECK_EQ(code, 8);
    CHECK_EQ(ResumeThread(h), 0); /* not suspended */
    CHECK(CloseHandle(h));
}

static volatile char sink_;

static void use_stack(int depth)
{
    volatile char chunk[1024];
    chunk[0] = (char)depth;
    chunk[sizeof chunk - 1] = (char)depth;
    if (depth > 0) {
        use_stack(depth - 1);
    }
    sink_ = chunk[0];
}

static DWORD WINAPI stack_user(LPVOID arg)
{
    use_stack((int)(uintptr_t)arg);
    return 0;
}

static int counter_ = 0;

static DWORD WINAPI bump(LPVOID arg)
{
    int i, n = (int)(uintptr_t)arg;
    for (i = 0; i < n; i++) {
        AADD(&counter_, 1);
    }
    return (DWORD)n;
}

static void many_and_stacks(void)
{
    HANDLE hs[MAXIMUM_WAIT_OBJECTS];
    DWORD ids[MAXIMUM_WAIT_OBJECTS];
    DWORD code = 0;
    HANDLE h;
    unsigned i, k;

    test_step("a 64 KiB stack holds 48 KiB of frames; a tiny request gets the minimum");
    h = CreateThread(NULL, 64 * 1024, stack_user, (LPVOID)(uintptr_t)40, 0, NULL);
    CHECK(h != NULL);
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(h));
    h = CreateThread(NULL, 1, stack_user, (LPVOID)(uintptr_t)4,
                     STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    CHECK(h != NULL);
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(h));

    test_step("64 threads, joined with one wait-all; ids distinct");
    for (i = 0; i < MAXIMUM_WAIT_OBJECTS; i++) {
        hs[i] = CreateThread(NULL, 0, bump, (LPVOID)(uintptr_t)1000, 0, &ids[i]);
        CHECK(hs[i] != NULL);
        for (k = 0; k < i; k++) {
            CHECK_NE(ids[k], ids[i]);
        }
    }
    CHECK_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, hs, TRUE, PACKET_WAIT_MS),
             WAIT_OBJECT_0);
    CHECK_EQ(ALOAD(&counter_), 64 * 1000);
    for (i = 0; i < MAXIMUM_WAIT_OBJECTS; i++) {
        CHECK(GetExitCodeThread(hs[i], &code));
        CHECK_EQ(code, 1000);
        CHECK(CloseHandle(hs[i]));
    }
}

static void current_and_sleep(void)
{
    DWORD code = 0;
    uint64_t t0;

    test_step("GetCurrentThread: a pseudo-handle for the caller");
    CHECK(GetCurrentThreadId() != 0);
    CHECK_EQ(GetCurrentThreadId(), GetCurrentThreadId());
    CHECK_EQ(GetCurrentThread(), (HANDLE)(LONG_PTR)-2);
    CHECK_EQ(GetThreadId(GetCurrentThread()), GetCurrentThreadId());
    CHECK(GetExitCodeThread(GetCurrentThread(), &code));
    CHECK_EQ(code, STILL_ACTIVE);
    CHECK_EQ(ResumeThread(GetCurrentThread()), 0);
    /* Waiting for one's own end times out. */
    CHECK_EQ(WaitForSingleObject(GetCurrentThread(), 10), WAIT_TIMEOUT);
    CHECK(CloseHandle(GetCurrentThread()));

    test_step("Sleep, SleepEx (alertable: still 0), SwitchToThread");
    t0 = now_ms();
    Sleep(100);
    CHECK(now_ms() - t0 >= 100);
    Sleep(0);
    t0 = now_ms();
    CHECK_EQ(SleepEx(30, TRUE), 0);
    CHECK(now_ms() - t0 >= 30);
    CHECK_EQ(SleepEx(0, FALSE), 0);
    CHECK(SwitchToThread());
}

struct worker {
    HANDLE port;
    HANDLE gate; /* what the first packet's taker blocks on (NULL: Sleep) */
    int got;     /* packets taken */
    int entering;
};

static DWORD WINAPI port_worker(LPVOID arg)
{
    struct worker *w = (struct worker *)arg;
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;
    ASTORE(&w->entering, 1);
    if (!GetQueuedCompletionStatus(w->port, &bytes, &key, &ov, PACKET_WAIT_MS)) {
        return 1;
    }
    AADD(&w->got, 1);
    if (key == 1) {
        /* The first packet: block, as a worker doing synchronous work would. */
        if (w->gate != NULL) {
            CHECK_EQ(WaitForSingleObject(w->gate, PACKET_WAIT_MS), WAIT_OBJECT_0);
        } else {
            Sleep(400);
        }
    }
    return 0;
}

static void blocked_worker(HANDLE gate, const char *how)
{
    HANDLE port = new_port(1);
    struct worker w;
    HANDLE t[2];
    uint64_t end;

    test_step("concurrency 1: a worker blocked in %s lets the other worker take a packet", how);
    memset(&w, 0, sizeof w);
    w.port = port;
    w.gate = gate;
    t[0] = CreateThread(NULL, 0, port_worker, &w, 0, NULL);
    t[1] = CreateThread(NULL, 0, port_worker, &w, 0, NULL);
    CHECK(t[0] != NULL && t[1] != NULL);
    Sleep(100); /* both wait in GQCS */
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    end = now_ms() + PACKET_WAIT_MS;
    while (ALOAD(&w.got) < 1) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    sleep_ms(50); /* the taker is blocked now */
    CHECK(PostQueuedCompletionStatus(port, 0, 2, NULL));
    /* With the blocked worker still counted, the second packet would wait for it (400 ms, or
     * until the gate opens, which it does only after this check). */
    end = now_ms() + 300;
    while (ALOAD(&w.got) < 2) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    if (gate != NULL) {
        CHECK(SetEvent(gate));
    }
    CHECK_EQ(WaitForMultipleObjects(2, t, TRUE, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(t[0]));
    CHECK(CloseHandle(t[1]));
    CHECK(CloseHandle(port));
}

static void blocked_workers(void)
{
    HANDLE gate = CreateEventA(NULL, TRUE, FALSE, NULL);
    blocked_worker(NULL, "Sleep");
    blocked_worker(gate, "WaitForSingleObject");
    CHECK(CloseHandle(gate));
}

/* ---- Teardown: pthread key destructors, fork ---------------------------------------------- */

static pthread_key_t g_key;
static CRITICAL_SECTION g_cs;
static int g_main_inside = 0;
static int g_dtor_done = 0;
static int g_dtor_saw_main_inside = -1;
static DWORD g_dtor_wait = 12345;

/* Runs in the thread's teardown, after its routine returned: blocks there on purpose. */
static void key_dtor(void *p)
{
    (void)p;
    EnterCriticalSection(&g_cs); /* main holds it for a while */
    ASTORE(&g_dtor_saw_main_inside, ALOAD(&g_main_inside));
    LeaveCriticalSection(&g_cs);
    Sleep(50);
    g_dtor_wait = WaitForSingleObject(GetCurrentThread(), 0);
    ASTORE(&g_dtor_done, 1);
}

static DWORD WINAPI keyed(LPVOID arg)
{
    (void)arg;
    CHECK_EQ(pthread_setspecific(g_key, (void *)1), 0);
    return 5;
}

static volatile char g_sink;

static DWORD WINAPI big_frame(LPVOID arg)
{
    volatile char frame[200 * 1024];
    (void)arg;
    frame[0] = 1;
    frame[sizeof frame - 1] = 2;
    g_sink = frame[0];
    return 0;
}

static void teardown(void)
{
    DWORD code = 0;
    HANDLE h;
    pid_t child;
    int status = 0;

    test_step("a thread's handle is signalled only after its pthread key destructors ran");
    test_step("... which may block in EnterCriticalSection, Sleep and waits");
    CHECK_EQ(pthread_key_create(&g_key, key_dtor), 0);
    InitializeCriticalSection(&g_cs);
    EnterCriticalSection(&g_cs);
    ASTORE(&g_main_inside, 1);
    h = CreateThread(NULL, 0, keyed, NULL, 0, NULL);
    CHECK(h != NULL);
    Sleep(150);
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_TIMEOUT); /* its destructor waits for g_cs */
    ASTORE(&g_main_inside, 0);
    LeaveCriticalSection(&g_cs);
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK_EQ(ALOAD(&g_dtor_done), 1);
    CHECK_EQ(ALOAD(&g_dtor_saw_main_inside), 0); /* it really waited for the section */
    CHECK_EQ(g_dtor_wait, WAIT_TIMEOUT);
    CHECK(GetExitCodeThread(h, &code));
    CHECK_EQ(code, 5);
    CHECK(CloseHandle(h));
    DeleteCriticalSection(&g_cs);
    CHECK_EQ(pthread_key_delete(g_key), 0);

    test_step("dwStackSize without STACK_SIZE_PARAM_IS_A_RESERVATION is a commit: 64 KiB "
              "still runs a 200 KiB frame");
    h = CreateThread(NULL, 64 * 1024, big_frame, NULL, 0, NULL);
    CHECK(h != NULL);
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(CloseHandle(h));

    test_step("in a fork child, GetCurrentThreadId is the child's thread id");
    (void)GetCurrentThreadId(); /* cached in the parent */
    fflush(stdout);
    child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        _exit(GetCurrentThreadId() == (DWORD)getpid() ? 0 : 1);
    }
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* Starts a receive on the socket *arg and ends at once: the operation outlives its thread. */
static DWORD WINAPI start_recv_and_exit(LPVOID arg)
{
    static char buf[16];
    static WSABUF wb;
    static OVERLAPPED ov;
    DWORD flags = 0;
    ov_init(&ov);
    wb.buf = buf;
    wb.len = sizeof buf;
    CHECK_WSA_STARTED(WSARecv(*(SOCKET *)arg, &wb, 1, NULL, &flags, &ov, NULL));
    return 0;
}

static void outliving_operation(void)
{
    HANDLE port = new_port(1);
    SOCKET c, s;
    HANDLE t;
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;

    test_step("an operation started by a thread that has ended still completes");
    wsa_startup();
    tcp_pair(&c, &s);
    associate(HSOCK(c), port, 8);
    t = CreateThread(NULL, 0, start_recv_and_exit, &c, 0, NULL);
    CHECK(t != NULL);
    CHECK_EQ(WaitForSingleObject(t, PACKET_WAIT_MS), WAIT_OBJECT_0); /* it is gone */
    Sleep(20);
    send_all(s, "after", 5);
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
    CHECK_EQ(key, 8);
    CHECK_EQ(bytes, 5);
    CHECK(ov != NULL);
    CHECK(CloseHandle(t));
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
    CHECK(CloseHandle(port));
}

static void bad_input(void)
{
    HANDLE port = new_port(1);
    HANDLE ev = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE bad[] = {NULL, INVALID_HANDLE_VALUE, (HANDLE)(uintptr_t)0xbadbad00u, port, ev,
                    (HANDLE)(uintptr_t)1};
    DWORD code = 0;
    unsigned i;

    test_step("CreateThread without a routine, or with unknown flags: ERROR_INVALID_PARAMETER");
    SetLastError(0);
    CHECK(CreateThread(NULL, 0, NULL, NULL, 0, NULL) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(CreateThread(NULL, 0, doubler, NULL, 0x8, NULL) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    test_step("thread calls on handles that are no threads: ERROR_INVALID_HANDLE");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        SetLastError(0);
        CHECK(!GetExitCodeThread(bad[i], &code));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK_EQ(ResumeThread(bad[i]), (DWORD)-1);
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK_EQ(GetThreadId(bad[i]), 0);
        CHECK_ERR(ERROR_INVALID_HANDLE);
    }

    test_step("GetExitCodeThread with a NULL out-pointer: ERROR_INVALID_PARAMETER");
    SetLastError(0);
    CHECK(!GetExitCodeThread(GetCurrentThread(), NULL));
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    CHECK(CloseHandle(ev));
    CHECK(CloseHandle(port));
}

int main(void)
{
    test_init("threads");
    create_wait_exit_code();
    still_active();
    exit_thread();
    suspended();
    many_and_stacks();
    current_and_sleep();
    blocked_workers();
    teardown();
    outliving_operation();
    bad_input();
    return test_done();
}
