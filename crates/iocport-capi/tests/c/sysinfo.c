/*
 * The helpers of base.h: typedef sizes and layouts, the macros (LOWORD ... MAKELANGID, ARRAYSIZE,
 * min and max), GetSystemInfo, the tick counts and the performance counter, GetCurrentProcessId,
 * the memory macros, the process heap and GlobalAlloc/LocalAlloc, each with its bad input.
 * (NOMINMAX is tested in ws2tcpip.c, which defines it.)
 */
#include "common.h"

#include <sys/wait.h>
#ifdef __cplusplus
/* libstdc++'s headers after windows.h: they write std::max(...) and numeric_limits<T>::max(),
 * which min and max macros would break. */
#include <algorithm>
#include <chrono>
#include <limits>
#endif

#define HEAP_BAD_COUNT 4

static void types_and_layouts(void)
{
    LARGE_INTEGER li;
    ULARGE_INTEGER uli;
    TCHAR text[] = TEXT("abc");

    test_step("typedef sizes (Win64 on LP64)");
    CHECK_EQ(sizeof(SHORT), 2);
    CHECK_EQ(sizeof(BOOLEAN), 1);
    CHECK_EQ(sizeof(BYTE), 1);
    CHECK_EQ(sizeof(WORD), 2);
    CHECK_EQ(sizeof(DWORD), 4);
    CHECK_EQ(sizeof(LONG), 4);
    CHECK_EQ(sizeof(ULONG), 4);
    CHECK_EQ(sizeof(LONG64), 8);
    CHECK_EQ(sizeof(ULONG64), 8);
    CHECK_EQ(sizeof(DWORD64), 8);
    CHECK_EQ(sizeof(LONGLONG), 8);
    CHECK_EQ(sizeof(SIZE_T), 8);
    CHECK_EQ(sizeof(SSIZE_T), 8);
    CHECK_EQ(sizeof(DWORD_PTR), sizeof(void *));
    CHECK_EQ(sizeof(*(PBYTE)0), 1);
    CHECK_EQ(sizeof(*(LPBYTE)0), 1);
    CHECK_EQ(sizeof(*(LPWORD)0), 2);
    CHECK_EQ(sizeof(*(LPLONG)0), 4);
    CHECK_EQ(sizeof(*(PLONG64)0), 8);
    CHECK_EQ(sizeof(HLOCAL), sizeof(void *));
    CHECK_EQ(sizeof(HGLOBAL), sizeof(void *));
    CHECK_EQ(sizeof(HMODULE), sizeof(void *));
    CHECK_EQ(sizeof(TCHAR), 1);
    CHECK_EQ(sizeof(*(LPCTSTR)0), 1);
    CHECK_EQ(strcmp(text, "abc"), 0);
    CHECK_EQ(strcmp(_T("x"), "x"), 0);
    CHECK_EQ((LONG64)-1 < 0, 1);
    CHECK_EQ((ULONG64)-1 > 0, 1);

    test_step("LARGE_INTEGER: QuadPart is LowPart and HighPart (also under u)");
    CHECK_EQ(sizeof(LARGE_INTEGER), 8);
    CHECK_EQ(sizeof(ULARGE_INTEGER), 8);
    li.QuadPart = 0x1122334455667788LL;
    CHECK_EQ(li.LowPart, 0x55667788u);
    CHECK_EQ(li.HighPart, 0x11223344);
    CHECK_EQ(li.u.LowPart, 0x55667788u);
    CHECK_EQ(li.u.HighPart, 0x11223344);
    li.QuadPart = -2;
    CHECK_EQ(li.LowPart, 0xFFFFFFFEu);
    CHECK_EQ(li.HighPart, -1);
    li.LowPart = 5;
    li.HighPart = 1;
    CHECK_EQ(li.QuadPart, 0x100000005LL);
    uli.QuadPart = 0xFFFFFFFF00000001ULL;
    CHECK_EQ(uli.LowPart, 1);
    CHECK_EQ(uli.HighPart, 0xFFFFFFFFu);

    test_step("SYSTEM_INFO: 48 bytes, Win64 offsets");
    CHECK_EQ(sizeof(SYSTEM_INFO), 48);
    CHECK_EQ(offsetof(SYSTEM_INFO, wProcessorArchitecture), 0);
    CHECK_EQ(offsetof(SYSTEM_INFO, dwOemId), 0);
    CHECK_EQ(offsetof(SYSTEM_INFO, wReserved), 2);
    CHECK_EQ(offsetof(SYSTEM_INFO, dwPageSize), 4);
    CHECK_EQ(offsetof(SYSTEM_INFO, lpMinimumApplicationAddress), 8);
    CHECK_EQ(offsetof(SYSTEM_INFO, lpMaximumApplicationAddress), 16);
    CHECK_EQ(offsetof(SYSTEM_INFO, dwActiveProcessorMask), 24);
    CHECK_EQ(offsetof(SYSTEM_INFO, dwNumberOfProcessors), 32);
    CHECK_EQ(offsetof(SYSTEM_INFO, dwProcessorType), 36);
    CHECK_EQ(offsetof(SYSTEM_INFO, dwAllocationGranularity), 40);
    CHECK_EQ(offsetof(SYSTEM_INFO, wProcessorLevel), 44);
    CHECK_EQ(offsetof(SYSTEM_INFO, wProcessorRevision), 46);
}

static int unused_parameter(int used, int unused)
{
    UNREFERENCED_PARAMETER(unused);
    return used;
}

static void macros(void)
{
    int seven[7];
    char three[3];
    (void)seven;
    (void)three;

    test_step("LOWORD, HIWORD, LOBYTE, HIBYTE, MAKELONG, MAKEWORD");
    CHECK_EQ(LOWORD(0x12345678), 0x5678);
    CHECK_EQ(HIWORD(0x12345678), 0x1234);
    CHECK_EQ(HIWORD(0xFFFF0000u), 0xFFFF);
    CHECK_EQ(LOBYTE(0x1234), 0x34);
    CHECK_EQ(HIBYTE(0x1234), 0x12);
    CHECK_EQ((DWORD)MAKELONG(0x5678, 0x1234), 0x12345678u);
    CHECK_EQ((DWORD)MAKELONG(0xFFFF, 0xFFFF), 0xFFFFFFFFu);
    CHECK_EQ(MAKEWORD(0x34, 0x12), 0x1234);
    CHECK_EQ(sizeof(LOWORD(0)), sizeof(WORD));
    CHECK_EQ(sizeof(LOBYTE(0)), sizeof(BYTE));

    test_step("MAKELANGID, PRIMARYLANGID, SUBLANGID and the language ids");
    CHECK_EQ(MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), 0x400);
    CHECK_EQ(MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US), 0x409);
    CHECK_EQ(LANG_USER_DEFAULT, 0x400);
    CHECK_EQ(LANG_SYSTEM_DEFAULT, 0x800);
    CHECK_EQ(PRIMARYLANGID(0x409), LANG_ENGLISH);
    CHECK_EQ(SUBLANGID(0x409), SUBLANG_ENGLISH_US);
    CHECK_EQ(PRIMARYLANGID(MAKELANGID(LANG_FRENCH, SUBLANG_DEFAULT)), LANG_FRENCH);

    test_step("ARRAYSIZE, _countof, UNREFERENCED_PARAMETER");
    CHECK_EQ(ARRAYSIZE(seven), 7);
    CHECK_EQ(_countof(three), 3);
    CHECK_EQ(unused_parameter(4, 5), 4);

    test_step("min and max (macros in C, templates in C++), without NOMINMAX");
    CHECK_EQ(max(3, 5), 5);
    CHECK_EQ(min(3, 5), 3);
    CHECK_EQ(max(-1, -7), -1);
    CHECK_EQ(min(-1, -7), -7);
    CHECK_EQ(max(2u, 9u), 9u);
    CHECK(max(1, 2.5) == 2.5);
    CHECK(min(1, 2.5) == 1.0);
    CHECK_EQ(sizeof(max((char)1, 2LL)), sizeof(long long));
#ifdef __cplusplus
    /* std::min, std::max and numeric_limits still work beside them. */
    CHECK_EQ(std::max(4, 6), 6);
    CHECK_EQ((std::min)(4, 6), 4);
    CHECK_EQ(std::numeric_limits<int>::max(), 0x7fffffff);
    CHECK_EQ(std::numeric_limits<unsigned>::min(), 0u);
    CHECK(std::chrono::steady_clock::duration::max().count() > 0);
    {
        using namespace std;
        CHECK_EQ(max(8, 2), 8); /* std::max, the more specialised, with no ambiguity */
        CHECK_EQ(min(8L, 2), 2L);
    }
#endif
}

static void system_info(void)
{
    SYSTEM_INFO si, native;
    cpu_set_t set;
    int cpus;
    long page = sysconf(_SC_PAGESIZE);

    test_step("GetSystemInfo: the affinity's CPUs, the page size, 64K granularity");
    memset(&si, 0xA5, sizeof si);
    GetSystemInfo(&si);
    CPU_ZERO(&set);
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    cpus = CPU_COUNT(&set);
    CHECK_EQ(si.dwNumberOfProcessors, cpus);
    CHECK(si.dwNumberOfProcessors >= 1);
    if (cpus <= 64) {
        CHECK_EQ(__builtin_popcountll((unsigned long long)si.dwActiveProcessorMask), cpus);
    }
    CHECK_EQ(si.dwPageSize, page);
    CHECK_EQ(si.dwAllocationGranularity, 65536);
    CHECK(si.lpMinimumApplicationAddress != NULL);
    CHECK((uintptr_t)si.lpMinimumApplicationAddress < (uintptr_t)si.lpMaximumApplicationAddress);
    /* This program's own memory lies in the range. */
    CHECK((uintptr_t)&si > (uintptr_t)si.lpMinimumApplicationAddress);
    CHECK((uintptr_t)&si < (uintptr_t)si.lpMaximumApplicationAddress);
    CHECK_EQ(si.wReserved, 0);
#if defined(__x86_64__)
    CHECK_EQ(si.wProcessorArchitecture, PROCESSOR_ARCHITECTURE_AMD64);
    CHECK_EQ(si.dwProcessorType, PROCESSOR_AMD_X8664);
    CHECK(si.wProcessorLevel >= 6);
#elif defined(__aarch64__)
    CHECK_EQ(si.wProcessorArchitecture, PROCESSOR_ARCHITECTURE_ARM64);
#endif
    CHECK_EQ(si.dwOemId & 0xffff, si.wProcessorArchitecture);

    test_step("GetNativeSystemInfo gives the same; NULL is ignored");
    memset(&native, 0x5A, sizeof native);
    GetNativeSystemInfo(&native);
    CHECK_EQ(memcmp(&si, &native, sizeof si), 0);
    GetSystemInfo(NULL);
    GetNativeSystemInfo(NULL);

    test_step("GetCurrentProcessId is getpid");
    CHECK_EQ(GetCurrentProcessId(), (DWORD)getpid());
}

static uint64_t boottime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void ticks_and_counter(void)
{
    ULONGLONG t0, t1;
    DWORD d0;
    LARGE_INTEGER f, q0, q1, prev, now;
    struct timespec ts;
    int i;

    test_step("GetTickCount64: ms since boot, monotonic; GetTickCount its low 32 bits");
    t0 = GetTickCount64();
    d0 = GetTickCount();
    CHECK((DWORD)(d0 - (DWORD)t0) <= 5u);
    CHECK(t0 + 50 >= boottime_ms() && boottime_ms() + 50 >= t0);
    sleep_ms(100);
    t1 = GetTickCount64();
    CHECK(t1 - t0 >= 95);
    CHECK(t1 - t0 < 5000);
    CHECK((DWORD)(GetTickCount() - d0) >= 95u);

    test_step("QueryPerformanceFrequency is 10 MHz; QueryPerformanceCounter counts 100 ns");
    f.QuadPart = 0;
    CHECK(QueryPerformanceFrequency(&f));
    CHECK_EQ(f.QuadPart, 10000000);
    CHECK(QueryPerformanceCounter(&q0));
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now.QuadPart = (LONGLONG)ts.tv_sec * 10000000 + ts.tv_nsec / 100;
    CHECK(now.QuadPart - q0.QuadPart >= 0);
    CHECK(now.QuadPart - q0.QuadPart < 10000000);
    sleep_ms(100);
    CHECK(QueryPerformanceCounter(&q1));
    CHECK(q1.QuadPart - q0.QuadPart >= 950000);
    CHECK(q1.QuadPart - q0.QuadPart < 50000000);
    /* Elapsed milliseconds the way programs compute them. */
    CHECK((q1.QuadPart - q0.QuadPart) * 1000 / f.QuadPart >= 95);
    prev = q1;
    for (i = 0; i < 10000; i++) {
        CHECK(QueryPerformanceCounter(&now));
        CHECK(now.QuadPart >= prev.QuadPart);
        prev = now;
    }

    test_step("NULL: FALSE with ERROR_NOACCESS");
    SetLastError(0);
    CHECK(!QueryPerformanceCounter(NULL));
    CHECK_ERR(ERROR_NOACCESS);
    SetLastError(0);
    CHECK(!QueryPerformanceFrequency(NULL));
    CHECK_ERR(ERROR_NOACCESS);
}

static void memory_macros(void)
{
    char a[64], b[64];
    PVOID r;
    int i;

    test_step("ZeroMemory, FillMemory, CopyMemory, MoveMemory (overlapping), EqualMemory");
    memset(a, 1, sizeof a);
    ZeroMemory(a, 32);
    for (i = 0; i < 64; i++) {
        CHECK_EQ(a[i], i < 32 ? 0 : 1);
    }
    FillMemory(a, sizeof a, 0xAB);
    for (i = 0; i < 64; i++) {
        CHECK_EQ((unsigned char)a[i], 0xAB);
    }
    for (i = 0; i < 64; i++) {
        b[i] = (char)i;
    }
    CopyMemory(a, b, sizeof a);
    CHECK(EqualMemory(a, b, sizeof a));
    MoveMemory(a + 1, a, 32);
    CHECK_EQ(a[0], 0);
    for (i = 0; i < 32; i++) {
        CHECK_EQ(a[i + 1], i);
    }
    CHECK(!EqualMemory(a, b, sizeof a));
    RtlZeroMemory(b, 8);
    CHECK_EQ(b[7], 0);

    test_step("SecureZeroMemory zeroes and returns its pointer");
    memset(a, 0x77, sizeof a);
    r = SecureZeroMemory(a, 48);
    CHECK_EQ(r, a);
    for (i = 0; i < 64; i++) {
        CHECK_EQ((unsigned char)a[i], i < 48 ? 0 : 0x77);
    }
    CHECK_EQ(SecureZeroMemory(a, 0), a);
}

/* Heap handles that are not the process heap. */
static HANDLE bad_heap(int k, HANDLE port)
{
    switch (k) {
    case 0:
        return NULL;
    case 1:
        return INVALID_HANDLE_VALUE;
    case 2:
        return (HANDLE)(uintptr_t)0xbadbad00u;
    default:
        return port; /* a handle of another kind */
    }
}

static void *alloc_churn(void *arg)
{
    HANDLE heap = GetProcessHeap();
    int i;
    (void)arg;
    for (i = 0; i < 20000; i++) {
        SIZE_T n = (SIZE_T)(i % 300);
        unsigned char *p = (unsigned char *)HeapAlloc(heap, HEAP_ZERO_MEMORY, n);
        if (!p || ((uintptr_t)p & 15) != 0 || HeapSize(heap, 0, p) != n || (n && p[n - 1] != 0)) {
            return (void *)1;
        }
        memset(p, 0xFF, n);
        if (!HeapFree(heap, 0, p)) {
            return (void *)1;
        }
    }
    return NULL;
}

static void heaps(void)
{
    HANDLE heap = GetProcessHeap();
    HANDLE port = new_port(0);
    static const SIZE_T sizes[] = {0, 1, 15, 16, 17, 100, 4096, 100000, 300000};
    unsigned char *p, *q;
    char *outer;
    SIZE_T i, j;
    int k;
    pthread_t threads[4];

    test_step("GetProcessHeap: fixed, non-NULL, neither an fd nor a table handle");
    CHECK(heap != NULL);
    CHECK(heap != INVALID_HANDLE_VALUE);
    CHECK_EQ(GetProcessHeap(), heap);
    CHECK((uintptr_t)heap > 0x7fffffffu);
    CHECK(((uintptr_t)heap & 3) != 0);
    CHECK(heap != port);
    SetLastError(0);
    CHECK(!CloseHandle(heap)); /* not a kernel object, as on Windows */
    CHECK_ERR(ERROR_INVALID_HANDLE);
    CHECK_EQ(GetProcessHeap(), heap);

    test_step("HeapAlloc: 16-byte aligned, HeapSize the size asked, HEAP_ZERO_MEMORY zeroes");
    for (i = 0; i < ARRAYSIZE(sizes); i++) {
        p = (unsigned char *)HeapAlloc(heap, HEAP_ZERO_MEMORY, sizes[i]);
        CHECK(p != NULL);
        CHECK_EQ((uintptr_t)p & 15, 0);
        CHECK_EQ(HeapSize(heap, 0, p), sizes[i]);
        for (j = 0; j < sizes[i]; j++) {
            if (p[j] != 0) {
                CHECK(!"HEAP_ZERO_MEMORY left a byte");
                break;
            }
        }
        memset(p, 0xCD, sizes[i]);
        CHECK(HeapFree(heap, 0, p));
    }
    p = (unsigned char *)HeapAlloc(heap, HEAP_NO_SERIALIZE, 24);
    CHECK(p != NULL);
    CHECK(HeapFree(heap, HEAP_NO_SERIALIZE, p));

    test_step("HeapReAlloc keeps the contents; HEAP_ZERO_MEMORY zeroes the grown tail");
    p = (unsigned char *)HeapAlloc(heap, 0, 10);
    memset(p, 0x5A, 10);
    q = (unsigned char *)HeapReAlloc(heap, HEAP_ZERO_MEMORY, p, 5000);
    CHECK(q != NULL);
    CHECK_EQ((uintptr_t)q & 15, 0);
    CHECK_EQ(HeapSize(heap, 0, q), 5000);
    for (j = 0; j < 5000; j++) {
        if (q[j] != (j < 10 ? 0x5A : 0)) {
            CHECK(!"HeapReAlloc: wrong byte");
            break;
        }
    }
    p = (unsigned char *)HeapReAlloc(heap, 0, q, 3);
    CHECK(p != NULL);
    CHECK_EQ(HeapSize(heap, 0, p), 3);
    CHECK_EQ(p[2], 0x5A);

    test_step("HEAP_REALLOC_IN_PLACE_ONLY: shrinking stays; growing past the block fails");
    q = (unsigned char *)HeapReAlloc(heap, HEAP_REALLOC_IN_PLACE_ONLY, p, 1);
    CHECK_EQ(q, p);
    CHECK_EQ(HeapSize(heap, 0, p), 1);
    SetLastError(0);
    q = (unsigned char *)HeapReAlloc(heap, HEAP_REALLOC_IN_PLACE_ONLY, p, 1000000);
    CHECK(q == NULL);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);
    CHECK_EQ(HeapSize(heap, 0, p), 1); /* untouched */
    CHECK_EQ(p[0], 0x5A);
    CHECK(HeapFree(heap, 0, p));

    test_step("HeapFree(NULL) is TRUE; memory too large: NULL with ERROR_NOT_ENOUGH_MEMORY");
    CHECK(HeapFree(heap, 0, NULL));
    SetLastError(0);
    CHECK(HeapAlloc(heap, 0, (SIZE_T)1 << 62) == NULL);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);
    SetLastError(0);
    CHECK(HeapAlloc(heap, HEAP_ZERO_MEMORY, (SIZE_T)-1) == NULL);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);
    p = (unsigned char *)HeapAlloc(heap, 0, 8);
    SetLastError(0);
    CHECK(HeapReAlloc(heap, 0, p, (SIZE_T)-1 - 4) == NULL);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);
    CHECK_EQ(HeapSize(heap, 0, p), 8);

    test_step("bad heap handles: ERROR_INVALID_HANDLE from every heap function");
    for (k = 0; k < HEAP_BAD_COUNT; k++) {
        HANDLE bad = bad_heap(k, port);
        SetLastError(0);
        CHECK(HeapAlloc(bad, 0, 8) == NULL);
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK(HeapReAlloc(bad, 0, p, 16) == NULL);
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK(!HeapFree(bad, 0, p));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK_EQ(HeapSize(bad, 0, p), (SIZE_T)-1);
        CHECK_ERR(ERROR_INVALID_HANDLE);
    }
    CHECK_EQ(HeapSize(heap, 0, p), 8); /* none of them freed it */

    test_step("pointers the heap never gave, and a block freed twice: ERROR_INVALID_PARAMETER");
    outer = (char *)malloc(256);
    memset(outer, 0, 256);
    SetLastError(0);
    CHECK(!HeapFree(heap, 0, outer + 64));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(HeapSize(heap, 0, outer + 64), (SIZE_T)-1);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(HeapReAlloc(heap, 0, outer + 64, 8) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!HeapFree(heap, 0, outer + 65)); /* misaligned */
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(HeapReAlloc(heap, 0, NULL, 8) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(HeapSize(heap, 0, NULL), (SIZE_T)-1);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    free(outer);
    CHECK(HeapFree(heap, 0, p));
    /* A small block: its memory stays mapped after the free. */
    SetLastError(0);
    CHECK(!HeapFree(heap, 0, p));
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    test_step("four threads allocate and free at once");
    for (k = 0; k < 4; k++) {
        CHECK_EQ(pthread_create(&threads[k], NULL, alloc_churn, NULL), 0);
    }
    for (k = 0; k < 4; k++) {
        void *ret = (void *)1;
        CHECK_EQ(pthread_join(threads[k], &ret), 0);
        CHECK(ret == NULL);
    }

    CHECK(CloseHandle(port));
}

static void heap_exceptions(void)
{
    pid_t child;
    int status = 0;

    test_step("HEAP_GENERATE_EXCEPTIONS: a failure ends the process (SIGABRT), as an "
              "unhandled STATUS_NO_MEMORY would");
    child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        alarm(10);
        if (devnull >= 0) {
            dup2(devnull, 2); /* the library's message */
        }
        HeapAlloc(GetProcessHeap(), HEAP_GENERATE_EXCEPTIONS, (SIZE_T)1 << 62);
        _exit(0);
    }
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    /* A success with the flag is an ordinary success. */
    {
        void *p = HeapAlloc(GetProcessHeap(), HEAP_GENERATE_EXCEPTIONS, 32);
        CHECK(p != NULL);
        CHECK(HeapFree(GetProcessHeap(), 0, p));
    }
}

static void global_and_local(void)
{
    HGLOBAL g;
    HLOCAL l;
    unsigned char *p;
    char *outer;
    int i;

    test_step("GlobalAlloc(GPTR): zeroed, aligned, sized; GlobalFree returns NULL");
    g = GlobalAlloc(GPTR, 100);
    CHECK(g != NULL);
    CHECK_EQ((uintptr_t)g & 15, 0);
    CHECK_EQ(GlobalSize(g), 100);
    for (i = 0; i < 100; i++) {
        CHECK_EQ(((unsigned char *)g)[i], 0);
    }
    CHECK_EQ(GlobalLock(g), g); /* a fixed block's handle is its address */
    CHECK(GlobalUnlock(g));     /* TRUE for a fixed block, as Windows */
    CHECK(GlobalFree(g) == NULL);
    CHECK(GlobalFree(NULL) == NULL);
    g = GlobalAlloc(GMEM_FIXED, 0);
    CHECK(g != NULL);
    CHECK_EQ(GlobalSize(g), 0);
    CHECK(GlobalFree(g) == NULL);

    test_step("GMEM_MOVEABLE (GHND): GlobalLock gives the memory, the lock count is kept");
    g = GlobalAlloc(GHND, 40);
    CHECK(g != NULL);
    p = (unsigned char *)GlobalLock(g);
    CHECK(p != NULL);
    for (i = 0; i < 40; i++) {
        CHECK_EQ(p[i], 0);
    }
    memset(p, 7, 40);
    CHECK(GlobalLock(g) == p);
    CHECK(GlobalUnlock(g)); /* still locked once */
    SetLastError(1234);
    CHECK(!GlobalUnlock(g)); /* now unlocked: FALSE with NO_ERROR */
    CHECK_ERR(NO_ERROR);
    SetLastError(0);
    CHECK(!GlobalUnlock(g)); /* not locked */
    CHECK_ERR(ERROR_NOT_LOCKED);
    CHECK_EQ(GlobalSize(g), 40);
    p = (unsigned char *)GlobalLock(g);
    CHECK_EQ(p[39], 7);
    CHECK(GlobalFree(g) == NULL); /* locked or not, as Windows */

    test_step("LocalAlloc(LPTR), LHND, LocalLock/LocalUnlock, LocalSize, LocalFree");
    l = LocalAlloc(LPTR, 33);
    CHECK(l != NULL);
    CHECK_EQ(LocalSize(l), 33);
    CHECK_EQ(((unsigned char *)l)[32], 0);
    CHECK_EQ(LocalLock(l), l);
    SetLastError(0);
    CHECK(!LocalUnlock(l)); /* a fixed block: FALSE with ERROR_NOT_LOCKED, as Windows */
    CHECK_ERR(ERROR_NOT_LOCKED);
    CHECK(LocalFree(l) == NULL);
    CHECK(LocalFree(NULL) == NULL);
    l = LocalAlloc(LHND, 8);
    CHECK(LocalLock(l) != NULL);
    CHECK(!LocalUnlock(l));
    CHECK(LocalFree(l) == NULL);

    test_step("Global and Local blocks are heap blocks: HeapFree and HeapSize take them");
    g = GlobalAlloc(GMEM_FIXED, 12);
    CHECK_EQ(HeapSize(GetProcessHeap(), 0, g), 12);
    CHECK(HeapFree(GetProcessHeap(), 0, g));
    p = (unsigned char *)HeapAlloc(GetProcessHeap(), 0, 5);
    CHECK(LocalFree(p) == NULL);

    test_step("bad flags: ERROR_INVALID_PARAMETER; too much: ERROR_NOT_ENOUGH_MEMORY");
    SetLastError(0);
    CHECK(GlobalAlloc(GMEM_INVALID_HANDLE, 8) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(GlobalAlloc(GMEM_MODIFY, 8) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(LocalAlloc(GMEM_SHARE, 8) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(GlobalAlloc(GMEM_FIXED, (SIZE_T)1 << 62) == NULL);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);
    SetLastError(0);
    CHECK(LocalAlloc(LMEM_FIXED, (SIZE_T)-1) == NULL);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);
    /* Obsolete flags are accepted. */
    g = GlobalAlloc(GMEM_FIXED | GMEM_NODISCARD | GMEM_DDESHARE, 4);
    CHECK(g != NULL);
    CHECK(GlobalFree(g) == NULL);

    test_step("handles that are not blocks: ERROR_INVALID_HANDLE (Free returns the handle)");
    outer = (char *)malloc(128);
    memset(outer, 0, 128);
    SetLastError(0);
    CHECK(GlobalFree(outer + 32) == outer + 32);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(LocalFree(outer + 32) == outer + 32);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(GlobalLock(outer + 32) == NULL);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(LocalLock(NULL) == NULL);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!GlobalUnlock(outer + 32));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!LocalUnlock(NULL));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK_EQ(GlobalSize(outer + 32), 0);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK_EQ(LocalSize(NULL), 0);
    CHECK_ERR(ERROR_INVALID_HANDLE);
    free(outer);
}

int main(void)
{
    test_init("sysinfo");
    types_and_layouts();
    macros();
    system_info();
    ticks_and_counter();
    memory_macros();
    heaps();
    heap_exceptions();
    global_and_local();
    return test_done();
}
