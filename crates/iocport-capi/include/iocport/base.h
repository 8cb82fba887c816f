/*
 * iocport/base.h: part of iocport/windows.h; include that header, not this one.
 *
 * The helpers Windows IOCP servers call besides the port, with Windows' semantics and Win64
 * layouts: the remaining common typedefs and macros (SHORT, BOOLEAN, LARGE_INTEGER, TCHAR,
 * LOWORD, MAKELANGID, ARRAYSIZE, min and max, ...), system information and time (GetSystemInfo,
 * GetTickCount64, QueryPerformanceCounter), memory (ZeroMemory and kin, the process heap,
 * GlobalAlloc and LocalAlloc), the console control handler, FormatMessage, and the ws2tcpip
 * names (inet_pton, getaddrinfo, ...) plus WSAAccept.
 *
 * Included last by windows.h, since it defines min and max (unless NOMINMAX is defined). In C
 * they are macros, as windows.h has them. In C++ they are function templates in the global
 * namespace instead: libstdc++'s headers write std::max(...) and numeric_limits<T>::max()
 * unparenthesised (MSVC's library guards every use), so macros would break any C++ program that
 * includes <algorithm>, <limits> or <chrono> after windows.h; the templates give min(a, b) and
 * max(a, b) the macros' results (the common type of the arguments) while std::min, std::max and
 * numeric_limits are untouched.
 *
 * TCHAR and the neutral names (FormatMessage, TEXT) follow UNICODE, as on Windows: char and the A
 * functions by default, WCHAR (wchar_t, UTF-32 on Linux) and the W functions with UNICODE.
 */
#ifndef IOCPORT_BASE_H
#define IOCPORT_BASE_H
#ifndef IOCPORT_WINDOWS_H
#error "include <iocport/windows.h>, not <iocport/base.h>"
#endif

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- More scalar types (Win64 sizes) ------------------------------------------------------ */
#ifndef VOID
#define VOID void
#endif
typedef short SHORT, *PSHORT;
typedef BYTE BOOLEAN, *PBOOLEAN;
typedef BOOL *PBOOL, *LPBOOL;
typedef BYTE *PBYTE, *LPBYTE;
typedef WORD *PWORD, *LPWORD;
typedef LONG *PLONG, *LPLONG;
typedef UINT *PUINT;
typedef USHORT *PUSHORT;
typedef UCHAR *PUCHAR;
typedef CHAR *PCHAR;
typedef char *PSTR;
typedef const char *PCSTR;
typedef WCHAR *PWSTR, *PWCHAR;
typedef const WCHAR *PCWSTR;
typedef int8_t INT8, *PINT8;
typedef uint8_t UINT8, *PUINT8;
typedef int16_t INT16, *PINT16;
typedef uint16_t UINT16, *PUINT16;
typedef int32_t INT32, *PINT32;
typedef uint32_t UINT32, *PUINT32;
typedef int32_t LONG32, *PLONG32;
typedef uint32_t ULONG32, *PULONG32;
typedef uint32_t DWORD32, *PDWORD32;
typedef int64_t INT64, *PINT64;
typedef uint64_t UINT64, *PUINT64;
typedef int64_t LONG64, *PLONG64;
typedef uint64_t ULONG64, *PULONG64;
typedef uint64_t DWORD64, *PDWORD64;
typedef uint64_t DWORDLONG, *PDWORDLONG;
typedef LONGLONG *PLONGLONG;
typedef ULONGLONG *PULONGLONG;
typedef SIZE_T *PSIZE_T;
typedef LONG_PTR SSIZE_T, *PSSIZE_T;
typedef INT_PTR *PINT_PTR;
typedef UINT_PTR *PUINT_PTR;
typedef LONG_PTR *PLONG_PTR;
typedef DWORD_PTR *PDWORD_PTR;
typedef WORD LANGID;
typedef HANDLE HLOCAL;
typedef HANDLE HGLOBAL;
typedef HANDLE HMODULE;
typedef HANDLE HINSTANCE;

/* TCHAR: char (the A functions) by default, WCHAR with UNICODE. */
#ifdef UNICODE
typedef WCHAR TCHAR, *PTCHAR;
typedef WCHAR TBYTE, *PTBYTE;
typedef LPWSTR LPTSTR, PTSTR;
typedef LPCWSTR LPCTSTR, PCTSTR;
#define __TEXT(quote) L##quote
#else
typedef char TCHAR, *PTCHAR;
typedef unsigned char TBYTE, *PTBYTE;
typedef LPSTR LPTSTR, PTSTR;
typedef LPCSTR LPCTSTR, PCTSTR;
#define __TEXT(quote) quote
#endif
#define TEXT(quote) __TEXT(quote)
/* <tchar.h>'s spellings, which Windows programs use beside windows.h. */
#ifndef _TCHAR_DEFINED
#define _TCHAR_DEFINED
typedef TCHAR _TCHAR;
#endif
#ifndef _T
#define _T(x) __TEXT(x)
#endif
#ifndef _TEXT
#define _TEXT(x) __TEXT(x)
#endif

/* 64-bit integers as two halves (QuadPart, or LowPart and HighPart, also under u). */
typedef union _LARGE_INTEGER {
    struct {
        DWORD LowPart;
        LONG HighPart;
    };
    struct {
        DWORD LowPart;
        LONG HighPart;
    } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

typedef union _ULARGE_INTEGER {
    struct {
        DWORD LowPart;
        DWORD HighPart;
    };
    struct {
        DWORD LowPart;
        DWORD HighPart;
    } u;
    ULONGLONG QuadPart;
} ULARGE_INTEGER, *PULARGE_INTEGER;

IOCP_STATIC_ASSERT(sizeof(SHORT) == 2 && sizeof(BOOLEAN) == 1, "SHORT and BOOLEAN sizes");
IOCP_STATIC_ASSERT(sizeof(LONG64) == 8 && sizeof(DWORD64) == 8, "64-bit integers");
IOCP_STATIC_ASSERT(sizeof(LARGE_INTEGER) == 8, "LARGE_INTEGER is 8 bytes");
IOCP_STATIC_ASSERT(offsetof(LARGE_INTEGER, HighPart) == 4, "LARGE_INTEGER.HighPart at 4");
IOCP_STATIC_ASSERT(sizeof(ULARGE_INTEGER) == 8, "ULARGE_INTEGER is 8 bytes");

/* ---- Macros ------------------------------------------------------------------------------ */
#define LOWORD(l) ((WORD)(((DWORD_PTR)(l)) & 0xffff))
#define HIWORD(l) ((WORD)((((DWORD_PTR)(l)) >> 16) & 0xffff))
#define LOBYTE(w) ((BYTE)(((DWORD_PTR)(w)) & 0xff))
#define HIBYTE(w) ((BYTE)((((DWORD_PTR)(w)) >> 8) & 0xff))
#define MAKELONG(lo, hi)                                \
    ((LONG)(((WORD)(((DWORD_PTR)(lo)) & 0xffff)) |      \
            ((DWORD)((WORD)(((DWORD_PTR)(hi)) & 0xffff))) << 16))
#define MAKEWPARAM(lo, hi) ((ULONG_PTR)(DWORD)MAKELONG(lo, hi))
#define MAKELPARAM(lo, hi) ((LONG_PTR)(DWORD)MAKELONG(lo, hi))
#define MAKELRESULT(lo, hi) ((LONG_PTR)(DWORD)MAKELONG(lo, hi))

/* Language ids (FormatMessage's dwLanguageId). */
#define MAKELANGID(p, s) ((WORD)((((WORD)(s)) << 10) | (WORD)(p)))
#define PRIMARYLANGID(lgid) ((WORD)(lgid) & 0x3ff)
#define SUBLANGID(lgid) ((WORD)(lgid) >> 10)
#define LANG_NEUTRAL 0x00
#define LANG_INVARIANT 0x7f
#define LANG_ENGLISH 0x09
#define LANG_FRENCH 0x0c
#define LANG_GERMAN 0x07
#define LANG_JAPANESE 0x11
#define LANG_KOREAN 0x12
#define LANG_CHINESE 0x04
#define LANG_SPANISH 0x0a
#define LANG_RUSSIAN 0x19
#define SUBLANG_NEUTRAL 0x00
#define SUBLANG_DEFAULT 0x01
#define SUBLANG_SYS_DEFAULT 0x02
#define SUBLANG_ENGLISH_US 0x01
#define SUBLANG_ENGLISH_UK 0x02
#define LANG_SYSTEM_DEFAULT MAKELANGID(LANG_NEUTRAL, SUBLANG_SYS_DEFAULT)
#define LANG_USER_DEFAULT MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT)

/* (void) rather than Windows' bare (P), which GCC reports as a statement with no effect. */
#define UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_LOCAL_VARIABLE(V) ((void)(V))
#define UNREFERENCED_LOCAL_VARIABLE(V) ((void)(V))

#define ARRAYSIZE(A) (sizeof(A) / sizeof((A)[0]))
#define _ARRAYSIZE(A) ARRAYSIZE(A)
#ifndef _countof
#define _countof(A) ARRAYSIZE(A)
#endif

/* ---- Memory (macros and inlines, as Windows has them) ------------------------------------- */
#define RtlZeroMemory(Destination, Length) memset((Destination), 0, (Length))
#define RtlFillMemory(Destination, Length, Fill) memset((Destination), (Fill), (Length))
#define RtlCopyMemory(Destination, Source, Length) memcpy((Destination), (Source), (Length))
#define RtlMoveMemory(Destination, Source, Length) memmove((Destination), (Source), (Length))
#define RtlEqualMemory(Destination, Source, Length) (!memcmp((Destination), (Source), (Length)))
#define ZeroMemory RtlZeroMemory
#define FillMemory RtlFillMemory
#define CopyMemory RtlCopyMemory
#define MoveMemory RtlMoveMemory
#define EqualMemory RtlEqualMemory

/* Zeroes through a volatile pointer, so the compiler cannot drop the stores as dead (the memory
 * is about to be freed or go out of scope), as Windows' inline does. */
static inline PVOID RtlSecureZeroMemory(PVOID ptr, SIZE_T cnt)
{
    volatile char *p = (volatile char *)ptr;
    while (cnt) {
        *p = 0;
        p++;
        cnt--;
    }
    return ptr;
}
#define SecureZeroMemory RtlSecureZeroMemory

/* ---- System information and time --------------------------------------------------------- */
#define PROCESSOR_ARCHITECTURE_INTEL 0
#define PROCESSOR_ARCHITECTURE_ARM 5
#define PROCESSOR_ARCHITECTURE_IA64 6
#define PROCESSOR_ARCHITECTURE_AMD64 9
#define PROCESSOR_ARCHITECTURE_ARM64 12
#define PROCESSOR_ARCHITECTURE_UNKNOWN 0xffff
#define PROCESSOR_INTEL_386 386
#define PROCESSOR_INTEL_486 486
#define PROCESSOR_INTEL_PENTIUM 586
#define PROCESSOR_AMD_X8664 8664

typedef struct _SYSTEM_INFO {
    union {
        DWORD dwOemId;
        struct {
            WORD wProcessorArchitecture;
            WORD wReserved;
        };
    };
    DWORD dwPageSize;
    LPVOID lpMinimumApplicationAddress;
    LPVOID lpMaximumApplicationAddress;
    DWORD_PTR dwActiveProcessorMask;
    DWORD dwNumberOfProcessors;
    DWORD dwProcessorType;
    DWORD dwAllocationGranularity;
    WORD wProcessorLevel;
    WORD wProcessorRevision;
} SYSTEM_INFO, *LPSYSTEM_INFO;

IOCP_STATIC_ASSERT(sizeof(SYSTEM_INFO) == 48, "SYSTEM_INFO is 48 bytes");
IOCP_STATIC_ASSERT(offsetof(SYSTEM_INFO, dwPageSize) == 4, "SYSTEM_INFO.dwPageSize at 4");
IOCP_STATIC_ASSERT(offsetof(SYSTEM_INFO, lpMinimumApplicationAddress) == 8,
                   "SYSTEM_INFO.lpMinimumApplicationAddress at 8");
IOCP_STATIC_ASSERT(offsetof(SYSTEM_INFO, dwActiveProcessorMask) == 24,
                   "SYSTEM_INFO.dwActiveProcessorMask at 24");
IOCP_STATIC_ASSERT(offsetof(SYSTEM_INFO, dwNumberOfProcessors) == 32,
                   "SYSTEM_INFO.dwNumberOfProcessors at 32");
IOCP_STATIC_ASSERT(offsetof(SYSTEM_INFO, dwAllocationGranularity) == 40,
                   "SYSTEM_INFO.dwAllocationGranularity at 40");
IOCP_STATIC_ASSERT(offsetof(SYSTEM_INFO, wProcessorRevision) == 46,
                   "SYSTEM_INFO.wProcessorRevision at 46");

/*
 * dwNumberOfProcessors is the number of CPUs this process may run on (its affinity mask, which
 * containers and taskset narrow), dwActiveProcessorMask the first 64 of them; dwPageSize is the
 * kernel's page size; dwAllocationGranularity 65536, as Windows; the application address range
 * is Linux's (mmap_min_addr up to the top of the user address space).
 */
IOCP_API void WINAPI GetSystemInfo(LPSYSTEM_INFO lpSystemInfo);
IOCP_API void WINAPI GetNativeSystemInfo(LPSYSTEM_INFO lpSystemInfo);
/* Milliseconds since the system started (CLOCK_BOOTTIME: suspended time counts, as Windows').
 * GetTickCount wraps after 2^32 ms (49.7 days); GetTickCount64 does not. */
IOCP_API DWORD WINAPI GetTickCount(void);
IOCP_API ULONGLONG WINAPI GetTickCount64(void);
/* A 10 MHz monotonic counter (CLOCK_MONOTONIC in units of 100 ns), as modern Windows has it.
 * Both fail only for a NULL pointer (FALSE, ERROR_NOACCESS). */
IOCP_API BOOL WINAPI QueryPerformanceCounter(LARGE_INTEGER *lpPerformanceCount);
IOCP_API BOOL WINAPI QueryPerformanceFrequency(LARGE_INTEGER *lpFrequency);
IOCP_API DWORD WINAPI GetCurrentProcessId(void);

/* ---- Heaps ------------------------------------------------------------------------------ */
#define HEAP_NO_SERIALIZE 0x00000001u
#define HEAP_GENERATE_EXCEPTIONS 0x00000004u
#define HEAP_ZERO_MEMORY 0x00000008u
#define HEAP_REALLOC_IN_PLACE_ONLY 0x00000010u

/*
 * The process heap only (no HeapCreate): its handle is a fixed value that is never NULL, an fd or
 * any other handle; any other heap handle fails with ERROR_INVALID_HANDLE. Blocks are aligned to
 * 16 bytes and HeapSize gives the size asked for. A failed allocation returns NULL with
 * ERROR_NOT_ENOUGH_MEMORY; with HEAP_GENERATE_EXCEPTIONS, where Windows would raise
 * STATUS_NO_MEMORY, the process aborts instead (there is no SEH to catch it). HEAP_NO_SERIALIZE is
 * accepted: the heap is always thread-safe. Freeing a pointer that is not a live block of this
 * heap is, as on Windows, undefined; the library detects the common cases (a block freed twice,
 * a pointer it never gave) with ERROR_INVALID_PARAMETER where it can.
 */
IOCP_API HANDLE WINAPI GetProcessHeap(void);
IOCP_API LPVOID WINAPI HeapAlloc(HANDLE hHeap, DWORD dwFlags, SIZE_T dwBytes);
IOCP_API LPVOID WINAPI HeapReAlloc(HANDLE hHeap, DWORD dwFlags, LPVOID lpMem, SIZE_T dwBytes);
IOCP_API BOOL WINAPI HeapFree(HANDLE hHeap, DWORD dwFlags, LPVOID lpMem);
IOCP_API SIZE_T WINAPI HeapSize(HANDLE hHeap, DWORD dwFlags, LPCVOID lpMem);

#define GMEM_FIXED 0x0000u
#define GMEM_MOVEABLE 0x0002u
#define GMEM_NOCOMPACT 0x0010u
#define GMEM_NODISCARD 0x0020u
#define GMEM_ZEROINIT 0x0040u
#define GMEM_MODIFY 0x0080u
#define GMEM_DISCARDABLE 0x0100u
#define GMEM_NOT_BANKED 0x1000u
#define GMEM_SHARE 0x2000u
#define GMEM_DDESHARE 0x2000u
#define GMEM_NOTIFY 0x4000u
#define GMEM_LOWER GMEM_NOT_BANKED
#define GMEM_INVALID_HANDLE 0x8000u
#define GMEM_LOCKCOUNT 0x00ffu
#define GHND (GMEM_MOVEABLE | GMEM_ZEROINIT)
#define GPTR (GMEM_FIXED | GMEM_ZEROINIT)
#define LMEM_FIXED 0x0000u
#define LMEM_MOVEABLE 0x0002u
#define LMEM_NOCOMPACT 0x0010u
#define LMEM_NODISCARD 0x0020u
#define LMEM_ZEROINIT 0x0040u
#define LMEM_MODIFY 0x0080u
#define LMEM_DISCARDABLE 0x0F00u
#define LMEM_INVALID_HANDLE 0x8000u
#define LMEM_LOCKCOUNT 0x00ffu
#define LHND (LMEM_MOVEABLE | LMEM_ZEROINIT)
#define LPTR (LMEM_FIXED | LMEM_ZEROINIT)
#define NONZEROLHND LMEM_MOVEABLE
#define NONZEROLPTR LMEM_FIXED

/*
 * Blocks of the same heap (LocalFree frees FormatMessage's buffers; HeapFree takes a fixed
 * block). GMEM_MOVEABLE is supported: memory never moves here, so the handle is the block's
 * address, and GlobalLock/GlobalUnlock keep Windows' lock count (GlobalUnlock of an unlocked
 * block fails with ERROR_NOT_LOCKED). Flags outside the documented set fail with
 * ERROR_INVALID_PARAMETER. GlobalFree and LocalFree return NULL on success and the handle on
 * failure; NULL is accepted and ignored.
 */
IOCP_API HGLOBAL WINAPI GlobalAlloc(UINT uFlags, SIZE_T dwBytes);
IOCP_API HGLOBAL WINAPI GlobalFree(HGLOBAL hMem);
IOCP_API LPVOID WINAPI GlobalLock(HGLOBAL hMem);
IOCP_API BOOL WINAPI GlobalUnlock(HGLOBAL hMem);
IOCP_API SIZE_T WINAPI GlobalSize(HGLOBAL hMem);
IOCP_API HLOCAL WINAPI LocalAlloc(UINT uFlags, SIZE_T uBytes);
IOCP_API HLOCAL WINAPI LocalFree(HLOCAL hMem);
IOCP_API LPVOID WINAPI LocalLock(HLOCAL hMem);
IOCP_API BOOL WINAPI LocalUnlock(HLOCAL hMem);
IOCP_API SIZE_T WINAPI LocalSize(HLOCAL hMem);

/* ---- Console control handler ------------------------------------------------------------ */
#define CTRL_C_EVENT 0
#define CTRL_BREAK_EVENT 1
#define CTRL_CLOSE_EVENT 2
#define CTRL_LOGOFF_EVENT 5
#define CTRL_SHUTDOWN_EVENT 6

typedef BOOL(WINAPI *PHANDLER_ROUTINE)(DWORD CtrlType);

/*
 * SIGINT delivers CTRL_C_EVENT and SIGTERM CTRL_BREAK_EVENT to the handlers, each event on a
 * thread of the library (never in signal context), the most recently added handler first, until
 * one returns TRUE. If none does, the default action ends the process by the signal itself (its
 * default disposition restored and the signal raised again), as the signal would have.
 * SetConsoleCtrlHandler(NULL, TRUE) ignores Ctrl-C (SIGINT is then ignored, and stays ignored in
 * the programs this one starts, as on Windows); (NULL, FALSE) restores it. A process that starts
 * with SIGINT ignored (a background job of a shell) has Ctrl-C ignored, as a Windows process
 * inherits the flag. Removing a handler that is not registered fails with
 * ERROR_INVALID_PARAMETER.
 *
 * SIGINT and SIGTERM are left as they are until the first call; from then on the library owns
 * their handlers. A child made by fork starts with their default handling and none of the
 * parent's handlers.
 */
IOCP_API BOOL WINAPI SetConsoleCtrlHandler(PHANDLER_ROUTINE HandlerRoutine, BOOL Add);

/* ---- FormatMessage ---------------------------------------------------------------------- */
#define FORMAT_MESSAGE_ALLOCATE_BUFFER 0x00000100u
#define FORMAT_MESSAGE_IGNORE_INSERTS 0x00000200u
#define FORMAT_MESSAGE_FROM_STRING 0x00000400u
#define FORMAT_MESSAGE_FROM_HMODULE 0x00000800u
#define FORMAT_MESSAGE_FROM_SYSTEM 0x00001000u
#define FORMAT_MESSAGE_ARGUMENT_ARRAY 0x00002000u
#define FORMAT_MESSAGE_MAX_WIDTH_MASK 0x000000FFu

/*
 * FROM_SYSTEM has Windows' English text ("The handle is invalid.\r\n") for every Win32 and
 * Winsock error this library sets, and for the other common ones (also in their
 * HRESULT_FROM_WIN32 form, 0x8007xxxx); an unknown id fails with ERROR_MR_MID_NOT_FOUND, a
 * language other than LANG_NEUTRAL (any of its default sublanguages) or LANG_ENGLISH with
 * ERROR_RESOURCE_LANG_NOT_FOUND. FROM_STRING formats the caller's string. There are no module
 * message tables: FROM_HMODULE finds nothing (ERROR_RESOURCE_TYPE_NOT_FOUND) unless FROM_SYSTEM
 * is also given. Inserts (%1 ... %99) are copied as they are with IGNORE_INSERTS; otherwise
 * they take strings from an ARGUMENT_ARRAY (the !s! form only), and a va_list (any Arguments
 * without ARGUMENT_ARRAY) or another format fails with ERROR_INVALID_PARAMETER. A width in the
 * MAX_WIDTH_MASK bits turns the text's own line breaks into spaces (MAX_WIDTH_MASK itself gives
 * "The handle is invalid. ", as Windows) and a width below 255 wraps lines at spaces. Sizes are
 * in characters (char for A, wchar_t for W); a buffer too small fails with
 * ERROR_INSUFFICIENT_BUFFER; ALLOCATE_BUFFER stores a LocalAlloc'd buffer (free it with
 * LocalFree) at *(LPTSTR *)lpBuffer.
 */
IOCP_API DWORD WINAPI FormatMessageA(DWORD dwFlags, LPCVOID lpSource, DWORD dwMessageId,
                                     DWORD dwLanguageId, LPSTR lpBuffer, DWORD nSize,
                                     va_list *Arguments);
IOCP_API DWORD WINAPI FormatMessageW(DWORD dwFlags, LPCVOID lpSource, DWORD dwMessageId,
                                     DWORD dwLanguageId, LPWSTR lpBuffer, DWORD nSize,
                                     va_list *Arguments);
#ifdef UNICODE
#define FormatMessage FormatMessageW
#else
#define FormatMessage FormatMessageA
#endif

/* The further Win32 errors that FormatMessage knows (the others are in windows.h). */
#ifndef ERROR_ARENA_TRASHED
#define ERROR_ARENA_TRASHED 7L
#endif
#ifndef ERROR_INVALID_BLOCK
#define ERROR_INVALID_BLOCK 9L
#endif
#ifndef ERROR_INVALID_ACCESS
#define ERROR_INVALID_ACCESS 12L
#endif
#ifndef ERROR_INVALID_DATA
#define ERROR_INVALID_DATA 13L
#endif
#ifndef ERROR_NOT_LOCKED
#define ERROR_NOT_LOCKED 158L
#endif
#ifndef ERROR_NO_MORE_ITEMS
#define ERROR_NO_MORE_ITEMS 259L
#endif
#ifndef ERROR_NOT_OWNER
#define ERROR_NOT_OWNER 288L
#endif
#ifndef ERROR_TOO_MANY_POSTS
#define ERROR_TOO_MANY_POSTS 298L
#endif
#ifndef ERROR_INVALID_ADDRESS
#define ERROR_INVALID_ADDRESS 487L
#endif
#ifndef ERROR_INVALID_FLAGS
#define ERROR_INVALID_FLAGS 1004L
#endif
#ifndef ERROR_CANCELLED
#define ERROR_CANCELLED 1223L
#endif
#ifndef ERROR_NO_SYSTEM_RESOURCES
#define ERROR_NO_SYSTEM_RESOURCES 1450L
#endif
#ifndef ERROR_TIMEOUT
#define ERROR_TIMEOUT 1460L
#endif
#ifndef ERROR_RESOURCE_DATA_NOT_FOUND
#define ERROR_RESOURCE_DATA_NOT_FOUND 1812L
#endif
#ifndef ERROR_RESOURCE_TYPE_NOT_FOUND
#define ERROR_RESOURCE_TYPE_NOT_FOUND 1813L
#endif
#ifndef ERROR_RESOURCE_NAME_NOT_FOUND
#define ERROR_RESOURCE_NAME_NOT_FOUND 1814L
#endif
#ifndef ERROR_RESOURCE_LANG_NOT_FOUND
#define ERROR_RESOURCE_LANG_NOT_FOUND 1815L
#endif

/* ---- ws2tcpip.h ------------------------------------------------------------------------- */
/*
 * inet_pton, inet_ntop, getaddrinfo, freeaddrinfo, getnameinfo and gai_strerror are libc's
 * (<arpa/inet.h> and <netdb.h>, included by windows.h), with the same arguments as Winsock's.
 * Their failures are libc's: getaddrinfo returns the EAI_* codes (compare with the EAI_ names,
 * which is what Windows programs do) and none of them sets WSAGetLastError(). INET_ADDRSTRLEN
 * and INET6_ADDRSTRLEN are glibc's (16 and 46: what inet_ntop writes at most here; Windows says
 * 22 and 65).
 */
typedef USHORT ADDRESS_FAMILY;
typedef struct in_addr IN_ADDR, *PIN_ADDR, *LPIN_ADDR;
typedef struct in6_addr IN6_ADDR, *PIN6_ADDR, *LPIN6_ADDR;
typedef struct linger LINGER, *PLINGER, *LPLINGER;
typedef struct timeval TIMEVAL, *PTIMEVAL, *LPTIMEVAL;
typedef struct hostent HOSTENT, *PHOSTENT, *LPHOSTENT;
typedef struct addrinfo ADDRINFOA, *PADDRINFOA, *LPADDRINFOA;
typedef ADDRINFOA ADDRINFO, *LPADDRINFO;
#define GetAddrInfoA getaddrinfo
#define FreeAddrInfoA freeaddrinfo
#define GetNameInfoA getnameinfo
#define InetPtonA inet_pton
#define InetNtopA inet_ntop
#ifndef UNICODE
#define InetPton InetPtonA
#define InetNtop InetNtopA
#define GetAddrInfo GetAddrInfoA
#define FreeAddrInfo FreeAddrInfoA
#define GetNameInfo GetNameInfoA
#endif

/* WSAAccept's condition function (only NULL is accepted). */
#define CF_ACCEPT 0x0000
#define CF_REJECT 0x0001
#define CF_DEFER 0x0002
typedef struct _QualityOfService QOS, *LPQOS;
typedef int(CALLBACK *LPCONDITIONPROC)(LPWSABUF lpCallerId, LPWSABUF lpCallerData, LPQOS lpSQOS,
                                       LPQOS lpGQOS, LPWSABUF lpCalleeId, LPWSABUF lpCalleeData,
                                       GROUP *g, DWORD_PTR dwCallbackData);
/*
 * With lpfnCondition NULL, accept (Winsock errors, never fd 0-2, blocking unless the program
 * made the listener non-blocking). A condition function is refused with WSAEOPNOTSUPP, and the
 * connection stays queued for a later accept.
 */
IOCP_API SOCKET WSAAPI WSAAccept(SOCKET s, struct sockaddr *addr, LPINT addrlen,
                                 LPCONDITIONPROC lpfnCondition, DWORD_PTR dwCallbackData);

#ifdef __cplusplus
}
#endif

/* ---- min and max (last: nothing in this header may use them) ------------------------------ */
#ifndef NOMINMAX
#ifdef __cplusplus
#ifndef IOCPORT_MINMAX_DEFINED
#define IOCPORT_MINMAX_DEFINED
/* max(a, b) and min(a, b) with the macros' results: the common type of a and b. */
template <class A, class B>
constexpr typename std::common_type<A, B>::type max(const A &a, const B &b)
{
    return (a > b) ? a : b;
}
template <class A, class B>
constexpr typename std::common_type<A, B>::type min(const A &a, const B &b)
{
    return (a < b) ? a : b;
}
#endif
#else
#ifndef max
#define max(a, b) (((a) > (b)) ? (a) : (b))
#endif
#ifndef min
#define min(a, b) (((a) < (b)) ? (a) : (b))
#endif
#endif
#endif

#endif /* IOCPORT_BASE_H */
