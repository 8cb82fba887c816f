/*
 * iocport/threads.h: part of iocport/windows.h; include that header, not this one.
 *
 * Threads (CreateThread, _beginthreadex, ExitThread, GetExitCodeThread, ResumeThread), sleeping,
 * events (CreateEvent, SetEvent, ResetEvent) and the waits (WaitForSingleObject,
 * WaitForMultipleObjects) on thread, event and completion-port handles, with Windows' results.
 * A port is signalled while it holds a packet. There are no APCs on Linux: the alertable forms
 * (SleepEx, WaitFor...Ex) are never cut short and never return WAIT_IO_COMPLETION.
 */
#ifndef IOCPORT_THREADS_H
#define IOCPORT_THREADS_H
#ifndef IOCPORT_WINDOWS_H
#error "include <iocport/windows.h>, not <iocport/threads.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define STILL_ACTIVE 259u
#define CREATE_SUSPENDED 0x00000004u
#define STACK_SIZE_PARAM_IS_A_RESERVATION 0x00010000u
#define MAXIMUM_WAIT_OBJECTS 64u

typedef DWORD(WINAPI *PTHREAD_START_ROUTINE)(LPVOID lpThreadParameter);
typedef PTHREAD_START_ROUTINE LPTHREAD_START_ROUTINE;

/* ---- Threads ---------------------------------------------------------------------------- */
/*
 * A thread's handle is signalled when the thread ends (its routine returns, or it calls
 * ExitThread); CloseHandle releases the handle, never the thread. CREATE_SUSPENDED is supported:
 * the thread starts at ResumeThread. Thread ids are Linux's thread ids (gettid), never 0.
 */
IOCP_API HANDLE WINAPI CreateThread(LPSECURITY_ATTRIBUTES lpThreadAttributes, SIZE_T dwStackSize,
                                    LPTHREAD_START_ROUTINE lpStartAddress, LPVOID lpParameter,
                                    DWORD dwCreationFlags, LPDWORD lpThreadId);
/* The C runtime's form: the handle as uintptr_t, or 0 with errno (EINVAL, EAGAIN). */
IOCP_API uintptr_t _beginthreadex(void *security, unsigned stack_size,
                                  unsigned(WINAPI *start_address)(void *), void *arglist,
                                  unsigned initflag, unsigned *thrdaddr);
/* End the calling thread; its stack unwinds as with pthread_exit (C++ destructors run). */
IOCP_API __attribute__((noreturn)) void WINAPI ExitThread(DWORD dwExitCode);
IOCP_API __attribute__((noreturn)) void _endthreadex(unsigned retval);
IOCP_API DWORD WINAPI GetCurrentThreadId(void);
/* A pseudo-handle, (HANDLE)-2, meaning the calling thread; closing it does nothing. */
IOCP_API HANDLE WINAPI GetCurrentThread(void);
IOCP_API DWORD WINAPI GetThreadId(HANDLE Thread);
/* STILL_ACTIVE while the thread runs. */
IOCP_API BOOL WINAPI GetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode);
IOCP_API DWORD WINAPI ResumeThread(HANDLE hThread);
/* Sleep(0) yields to another ready thread. */
IOCP_API void WINAPI Sleep(DWORD dwMilliseconds);
IOCP_API DWORD WINAPI SleepEx(DWORD dwMilliseconds, BOOL bAlertable);
/* Always TRUE: Linux does not say whether another thread ran. */
IOCP_API BOOL WINAPI SwitchToThread(void);

/* ---- Events ----------------------------------------------------------------------------- */
/* lpName must be NULL (ERROR_NOT_SUPPORTED otherwise): events are not shared between processes. */
IOCP_API HANDLE WINAPI CreateEventA(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
                                    BOOL bInitialState, LPCSTR lpName);
IOCP_API HANDLE WINAPI CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
                                    BOOL bInitialState, LPCWSTR lpName);
IOCP_API BOOL WINAPI SetEvent(HANDLE hEvent);
IOCP_API BOOL WINAPI ResetEvent(HANDLE hEvent);
#ifdef UNICODE
#define CreateEvent CreateEventW
#else
#define CreateEvent CreateEventA
#endif

/* ---- Waits ------------------------------------------------------------------------------ */
/*
 * On thread, event and completion-port handles (sockets and files are not waitable here:
 * WAIT_FAILED with ERROR_INVALID_HANDLE). A port is signalled while it holds a packet; the wait
 * does not take it. WaitForMultipleObjects returns WAIT_OBJECT_0 + the lowest index signalled
 * (wait-any) or WAIT_OBJECT_0 once all are (wait-all, taking every auto-reset event at once).
 */
IOCP_API DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
IOCP_API DWORD WINAPI WaitForSingleObjectEx(HANDLE hHandle, DWORD dwMilliseconds,
                                            BOOL bAlertable);
IOCP_API DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles,
                                             BOOL bWaitAll, DWORD dwMilliseconds);
IOCP_API DWORD WINAPI WaitForMultipleObjectsEx(DWORD nCount, const HANDLE *lpHandles,
                                               BOOL bWaitAll, DWORD dwMilliseconds,
                                               BOOL bAlertable);

#ifdef __cplusplus
}
#endif
#endif /* IOCPORT_THREADS_H */
