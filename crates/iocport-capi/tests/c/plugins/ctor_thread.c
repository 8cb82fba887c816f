/*
 * A shared library that starts a thread from its constructor, as a Windows DLL may from
 * DllMain(DLL_PROCESS_ATTACH): loaded by tests/c/dlopen.c with dlopen, which runs the
 * constructor while it holds the dynamic loader's lock. CreateThread must return at once there
 * (the new thread runs once dlopen has finished), as it does under Windows' loader lock.
 */
#include <iocport/windows.h>

static HANDLE g_thread = NULL;
static DWORD g_tid = 0;
static volatile LONG g_ran = 0;

static DWORD WINAPI body(LPVOID arg)
{
    (void)arg;
    InterlockedExchange(&g_ran, 1);
    return 33;
}

__attribute__((constructor)) static void start_at_load(void)
{
    g_thread = CreateThread(NULL, 0, body, NULL, 0, &g_tid);
}

/* The thread the constructor started, its id, and whether it ran. */
__attribute__((visibility("default"))) HANDLE plugin_thread(DWORD *tid, LONG *ran);
HANDLE plugin_thread(DWORD *tid, LONG *ran)
{
    *tid = g_tid;
    *ran = InterlockedCompareExchange(&g_ran, 0, 0);
    return g_thread;
}
