/*
 * SetConsoleCtrlHandler: SIGINT and SIGTERM raised or sent to this process reach the handlers as
 * CTRL_C_EVENT and CTRL_BREAK_EVENT on a thread of the library (not the raiser's), the most
 * recently added first, until one returns TRUE; removal, removal of what is not registered, the
 * NULL handler (ignore Ctrl-C and back); and, in forked children, the default action (death by
 * the signal when no handler returns TRUE), a TRUE that keeps the child alive, and a child's
 * fresh start after fork.
 */
#include "common.h"

#include <sys/wait.h>

#define MAX_CALLS 64

/* What the handlers saw: who was called, in order, with which event, on which thread. */
static int g_calls[MAX_CALLS];
static DWORD g_events[MAX_CALLS];
static pthread_t g_threads[MAX_CALLS];
static int g_count;
/* What each handler returns. */
static BOOL g_ret[4];

static void record(int who, DWORD event)
{
    int i = AADD(&g_count, 1) - 1;
    if (i < MAX_CALLS) {
        g_calls[i] = who;
        g_events[i] = event;
        g_threads[i] = pthread_self();
    }
}

static BOOL WINAPI handler0(DWORD event)
{
    record(0, event);
    return ALOAD(&g_ret[0]);
}

static BOOL WINAPI handler1(DWORD event)
{
    record(1, event);
    return ALOAD(&g_ret[1]);
}

static BOOL WINAPI handler2(DWORD event)
{
    record(2, event);
    return ALOAD(&g_ret[2]);
}

static BOOL WINAPI handler3(DWORD event)
{
    record(3, event);
    return ALOAD(&g_ret[3]);
}

static void reset(BOOL r0, BOOL r1, BOOL r2, BOOL r3)
{
    ASTORE(&g_count, 0);
    ASTORE(&g_ret[0], r0);
    ASTORE(&g_ret[1], r1);
    ASTORE(&g_ret[2], r2);
    ASTORE(&g_ret[3], r3);
}

/* Waits until `n` handler calls were recorded, then a little more for any that should not come. */
static void wait_calls(int n)
{
    uint64_t end = now_ms() + PACKET_WAIT_MS;
    while (ALOAD(&g_count) < n) {
        BREAK_IF_LATE(end);
        sleep_ms(1);
    }
    sleep_ms(50);
    CHECK_EQ(ALOAD(&g_count), n);
}

static void delivery(void)
{
    test_step("SIGINT reaches the handler as CTRL_C_EVENT, on a thread other than the raiser");
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK(SetConsoleCtrlHandler(handler0, TRUE));
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(1);
    CHECK_EQ(g_calls[0], 0);
    CHECK_EQ(g_events[0], CTRL_C_EVENT);
    CHECK(!pthread_equal(g_threads[0], pthread_self()));

    test_step("SIGTERM (kill of this process) reaches it as CTRL_BREAK_EVENT");
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK_EQ(kill(getpid(), SIGTERM), 0);
    wait_calls(1);
    CHECK_EQ(g_events[0], CTRL_BREAK_EVENT);
    CHECK(!pthread_equal(g_threads[0], pthread_self()));

    test_step("a signal raised on another thread is delivered too");
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK_EQ(kill(getpid(), SIGINT), 0);
    wait_calls(1);
    CHECK_EQ(g_events[0], CTRL_C_EVENT);
}

static void order(void)
{
    test_step("most recently added first, until one returns TRUE");
    CHECK(SetConsoleCtrlHandler(handler1, TRUE));
    CHECK(SetConsoleCtrlHandler(handler2, TRUE));
    CHECK(SetConsoleCtrlHandler(handler3, TRUE));
    /* 3 says FALSE, 2 says TRUE: 1 and 0 are not called. */
    reset(TRUE, TRUE, TRUE, FALSE);
    CHECK_EQ(raise(SIGTERM), 0);
    wait_calls(2);
    CHECK_EQ(g_calls[0], 3);
    CHECK_EQ(g_calls[1], 2);
    CHECK_EQ(g_events[0], CTRL_BREAK_EVENT);
    CHECK_EQ(g_events[1], CTRL_BREAK_EVENT);

    /* 3, 2, 1 say FALSE: 0 is last. */
    reset(TRUE, FALSE, FALSE, FALSE);
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(4);
    CHECK_EQ(g_calls[0], 3);
    CHECK_EQ(g_calls[1], 2);
    CHECK_EQ(g_calls[2], 1);
    CHECK_EQ(g_calls[3], 0);

    test_step("removal: the handler is no longer called; the others still are");
    CHECK(SetConsoleCtrlHandler(handler2, FALSE));
    reset(TRUE, FALSE, TRUE, FALSE);
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(3);
    CHECK_EQ(g_calls[0], 3);
    CHECK_EQ(g_calls[1], 1);
    CHECK_EQ(g_calls[2], 0);

    test_step("removing a handler not registered: ERROR_INVALID_PARAMETER");
    SetLastError(0);
    CHECK(!SetConsoleCtrlHandler(handler2, FALSE));
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    test_step("a handler added twice is called twice and removed once per call");
    CHECK(SetConsoleCtrlHandler(handler1, TRUE));
    reset(TRUE, FALSE, TRUE, FALSE);
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(4); /* 1 (the second), 3, 1, 0 */
    CHECK_EQ(g_calls[0], 1);
    CHECK_EQ(g_calls[1], 3);
    CHECK_EQ(g_calls[2], 1);
    CHECK_EQ(g_calls[3], 0);
    CHECK(SetConsoleCtrlHandler(handler1, FALSE));
    CHECK(SetConsoleCtrlHandler(handler1, FALSE));
    SetLastError(0);
    CHECK(!SetConsoleCtrlHandler(handler1, FALSE));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    CHECK(SetConsoleCtrlHandler(handler3, FALSE));
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(1);
    CHECK_EQ(g_calls[0], 0);
}

static void null_handler(void)
{
    test_step("SetConsoleCtrlHandler(NULL, TRUE) ignores Ctrl-C; Ctrl-Break still comes");
    CHECK(SetConsoleCtrlHandler(NULL, TRUE));
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK_EQ(raise(SIGINT), 0);
    CHECK_EQ(raise(SIGINT), 0);
    sleep_ms(100);
    CHECK_EQ(ALOAD(&g_count), 0);
    CHECK_EQ(raise(SIGTERM), 0);
    wait_calls(1);
    CHECK_EQ(g_events[0], CTRL_BREAK_EVENT);
    /* Twice is the same as once. */
    CHECK(SetConsoleCtrlHandler(NULL, TRUE));

    test_step("SetConsoleCtrlHandler(NULL, FALSE) restores it");
    CHECK(SetConsoleCtrlHandler(NULL, FALSE));
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(1);
    CHECK_EQ(g_events[0], CTRL_C_EVENT);
    CHECK(SetConsoleCtrlHandler(NULL, FALSE));
}

/* A pipe the children report on: one byte per handler call. */
static int g_report = -1;

static BOOL WINAPI child_handler(DWORD event)
{
    char c = (char)('0' + event);
    ssize_t r = write(g_report, &c, 1);
    (void)r;
    return ALOAD(&g_ret[0]);
}

/* Runs `body` in a child; returns its wait status and what it reported. */
static int in_child(void (*body)(int), int arg, char *report, size_t n)
{
    int fds[2];
    int status = 0;
    pid_t child;
    ssize_t got;
    CHECK_EQ(pipe(fds), 0);
    child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        close(fds[0]);
        g_report = fds[1];
        alarm(10);
        body(arg);
        _exit(0);
    }
    close(fds[1]);
    CHECK_EQ(waitpid(child, &status, 0), child);
    memset(report, 0, n);
    got = read(fds[0], report, n - 1);
    (void)got;
    close(fds[0]);
    return status;
}

/* Registers child_handler (returning `ret`), raises `sig`, waits for the outcome. */
static void handled_child(int arg)
{
    int sig = arg & 0xff;
    ASTORE(&g_ret[0], (BOOL)(arg >> 8));
    if (!SetConsoleCtrlHandler(child_handler, TRUE)) {
        _exit(20);
    }
    raise(sig);
    sleep_ms(500);
    _exit(0);
}

/* Raises `sig` without calling SetConsoleCtrlHandler (the parent did, before the fork). */
static void bare_child(int sig)
{
    raise(sig);
    sleep_ms(500);
    _exit(0);
}

/* Starts with SIGINT ignored (as a shell's background job does), then handles Ctrl-C. */
static void ignoring_child(int unused)
{
    (void)unused;
    signal(SIGINT, SIG_IGN);
    ASTORE(&g_ret[0], TRUE);
    if (!SetConsoleCtrlHandler(child_handler, TRUE)) {
        _exit(20);
    }
    raise(SIGINT); /* ignored: the inherited flag */
    raise(SIGTERM);
    sleep_ms(300);
    if (!SetConsoleCtrlHandler(NULL, FALSE)) {
        _exit(21);
    }
    raise(SIGINT);
    sleep_ms(300);
    _exit(0);
}

/* A handler that ends its thread: only that thread ends (the process lives on). */
static BOOL WINAPI exiting_handler(DWORD event)
{
    char c = (char)('0' + event);
    ssize_t r = write(g_report, &c, 1);
    (void)r;
    ExitThread(0);
    return TRUE;
}

static void exiting_child(int unused)
{
    (void)unused;
    if (!SetConsoleCtrlHandler(exiting_handler, TRUE)) {
        _exit(20);
    }
    raise(SIGINT);
    sleep_ms(300);
    _exit(0);
}

static void default_action(void)
{
    char report[16];
    int status;

    test_step("no handler returns TRUE: the child dies by SIGINT, after the handler ran");
    status = in_child(handled_child, SIGINT | (FALSE << 8), report, sizeof report);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGINT);
    CHECK_EQ(strcmp(report, "0"), 0);

    test_step("... and by SIGTERM for CTRL_BREAK_EVENT");
    status = in_child(handled_child, SIGTERM | (FALSE << 8), report, sizeof report);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGTERM);
    CHECK_EQ(strcmp(report, "1"), 0);

    test_step("a handler returning TRUE keeps the child alive");
    status = in_child(handled_child, SIGINT | (TRUE << 8), report, sizeof report);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(strcmp(report, "0"), 0);

    test_step("ExitThread in a handler ends the handler's thread, not the process");
    status = in_child(exiting_child, 0, report, sizeof report);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(strcmp(report, "0"), 0);

    test_step("a process that starts with SIGINT ignored has Ctrl-C ignored until (NULL, FALSE)");
    status = in_child(ignoring_child, 0, report, sizeof report);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(strcmp(report, "10"), 0); /* CTRL_BREAK_EVENT, then CTRL_C_EVENT */

    test_step("after fork, a child has the default handling and none of the parent's handlers");
    CHECK(SetConsoleCtrlHandler(handler0, TRUE));
    reset(TRUE, TRUE, TRUE, TRUE);
    status = in_child(bare_child, SIGINT, report, sizeof report);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGINT);
    status = in_child(bare_child, SIGTERM, report, sizeof report);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGTERM);
    /* The parent's own handlers saw nothing of the children's signals. */
    sleep_ms(100);
    CHECK_EQ(ALOAD(&g_count), 0);
    CHECK(SetConsoleCtrlHandler(handler0, FALSE));
}

static void still_delivered_after_forks(void)
{
    test_step("the parent's delivery still works after its children came and went");
    reset(TRUE, TRUE, TRUE, TRUE);
    CHECK_EQ(raise(SIGINT), 0);
    wait_calls(1);
    CHECK_EQ(g_calls[0], 0);
}

int main(void)
{
    test_init("console");
    /* The test's precondition: Ctrl-C not ignored (a runner may start it with SIGINT ignored,
     * which the library would take as Windows' inherited "ignore Ctrl-C" flag). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    delivery();
    order();
    null_handler();
    default_action();
    still_delivered_after_forks();
    return test_done();
}
