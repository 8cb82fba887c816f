/*
 * iocport/windows.h: the Win32 completion-port and Winsock names on Linux, served by iocport.
 *
 * A Windows IOCP server replaces its <windows.h>, <winsock2.h>, <mswsock.h> and <ws2tcpip.h>
 * includes with this one header and links with `pkg-config --cflags --libs iocport`.
 *
 * Layouts are those of 64-bit Windows on LP64 Linux: DWORD and ULONG are 32 bits, ULONG_PTR,
 * SOCKET and HANDLE pointer-sized. A SOCKET is the Linux fd, so bind, listen, getsockname and the
 * other BSD calls reach libc directly; ports are handles that never equal an fd, NULL or
 * INVALID_HANDLE_VALUE. See docs/porting.md for what maps one to one and what differs.
 *
 * Compiles warning-free as C11 and as C++17 with -Wall -Wextra.
 */
#ifndef IOCPORT_WINDOWS_H
#define IOCPORT_WINDOWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <wchar.h>
#ifdef __cplusplus
#include <type_traits>
#endif

#ifdef __cplusplus
extern "C" {
#define IOCP_STATIC_ASSERT(e, m) static_assert(e, m)
#else
#define IOCP_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif

#define IOCP_API __attribute__((visibility("default")))

/* Calling conventions: the one C ABI of the platform. */
#define WINAPI
#define WSAAPI
#define CALLBACK
#define APIENTRY
#define IN
#define OUT
#define OPTIONAL

/* ---- Scalar types (Win64 sizes) ---------------------------------------------------------- */
typedef int BOOL;
typedef int INT;
typedef int *LPINT, *PINT;
typedef unsigned int UINT;
typedef uint8_t BYTE;
typedef unsigned char UCHAR;
typedef char CHAR;
typedef uint16_t WORD;
typedef unsigned short USHORT;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef int32_t NTSTATUS;
typedef uintptr_t ULONG_PTR;
typedef uintptr_t UINT_PTR;
typedef uintptr_t DWORD_PTR;
typedef intptr_t LONG_PTR;
typedef intptr_t INT_PTR;
typedef ULONG_PTR SIZE_T;
typedef void *HANDLE;
typedef void *PVOID, *LPVOID;
typedef const void *LPCVOID;
typedef DWORD *LPDWORD, *PDWORD;
typedef ULONG *PULONG;
typedef ULONG_PTR *PULONG_PTR;
typedef HANDLE *PHANDLE, *LPHANDLE;
typedef char *LPSTR;
typedef const char *LPCSTR;
/* Wide strings are the platform's wchar_t (UTF-32 on Linux), so L"..." literals compile. */
typedef wchar_t WCHAR;
typedef WCHAR *LPWSTR;
typedef const WCHAR *LPCWSTR;
typedef UINT_PTR SOCKET;
/* Winsock's BSD names; the same types as glibc's where it defines them. */
typedef unsigned char u_char;
typedef unsigned short u_short;
typedef unsigned int u_int;
typedef unsigned long u_long;
typedef unsigned int GROUP;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define INVALID_HANDLE_VALUE ((HANDLE)(LONG_PTR)-1)
#define INVALID_SOCKET ((SOCKET)(~0))
#define SOCKET_ERROR (-1)
#define INFINITE 0xFFFFFFFFu
#define MAKEWORD(lo, hi) ((WORD)(((BYTE)((lo) & 0xff)) | ((WORD)((BYTE)((hi) & 0xff))) << 8))

/* ---- Structures ------------------------------------------------------------------------- */
typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

typedef struct _OVERLAPPED {
    ULONG_PTR Internal;     /* the operation's NTSTATUS; STATUS_PENDING while in flight */
    ULONG_PTR InternalHigh; /* the bytes transferred */
    union {
        struct {
            DWORD Offset;
            DWORD OffsetHigh;
        };
        PVOID Pointer;
    };
    HANDLE hEvent;
} OVERLAPPED, *LPOVERLAPPED;
typedef OVERLAPPED WSAOVERLAPPED, *LPWSAOVERLAPPED;

typedef struct _OVERLAPPED_ENTRY {
    ULONG_PTR lpCompletionKey;
    LPOVERLAPPED lpOverlapped;
    ULONG_PTR Internal;
    DWORD dwNumberOfBytesTransferred;
} OVERLAPPED_ENTRY, *LPOVERLAPPED_ENTRY;

typedef struct _WSABUF {
    ULONG len;
    CHAR *buf;
} WSABUF, *LPWSABUF;

#define WSADESCRIPTION_LEN 256
#define WSASYS_STATUS_LEN 128
typedef struct WSAData {
    WORD wVersion;
    WORD wHighVersion;
    unsigned short iMaxSockets;
    unsigned short iMaxUdpDg;
    char *lpVendorInfo;
    char szDescription[WSADESCRIPTION_LEN + 1];
    char szSystemStatus[WSASYS_STATUS_LEN + 1];
} WSADATA, *LPWSADATA;

typedef struct _SECURITY_ATTRIBUTES {
    DWORD nLength;
    LPVOID lpSecurityDescriptor;
    BOOL bInheritHandle;
} SECURITY_ATTRIBUTES, *LPSECURITY_ATTRIBUTES;

typedef struct _TRANSMIT_FILE_BUFFERS {
    LPVOID Head;
    DWORD HeadLength;
    LPVOID Tail;
    DWORD TailLength;
} TRANSMIT_FILE_BUFFERS, *LPTRANSMIT_FILE_BUFFERS;

/* Only NULL is accepted where these are asked for. */
typedef struct _WSAPROTOCOL_INFOA WSAPROTOCOL_INFOA, *LPWSAPROTOCOL_INFOA;
typedef struct _WSAPROTOCOL_INFOW WSAPROTOCOL_INFOW, *LPWSAPROTOCOL_INFOW;

typedef void (*LPWSAOVERLAPPED_COMPLETION_ROUTINE)(DWORD dwError, DWORD cbTransferred,
                                                   LPWSAOVERLAPPED lpOverlapped, DWORD dwFlags);

typedef struct sockaddr SOCKADDR, *PSOCKADDR, *LPSOCKADDR;
typedef struct sockaddr_in SOCKADDR_IN, *PSOCKADDR_IN, *LPSOCKADDR_IN;
typedef struct sockaddr_in6 SOCKADDR_IN6, *PSOCKADDR_IN6, *LPSOCKADDR_IN6;
typedef struct sockaddr_storage SOCKADDR_STORAGE, *PSOCKADDR_STORAGE;

IOCP_STATIC_ASSERT(sizeof(DWORD) == 4, "DWORD is 32 bits");
IOCP_STATIC_ASSERT(sizeof(ULONG_PTR) == sizeof(void *), "ULONG_PTR is pointer-sized");
IOCP_STATIC_ASSERT(sizeof(SOCKET) == sizeof(void *), "SOCKET is pointer-sized");
IOCP_STATIC_ASSERT(sizeof(OVERLAPPED) == 32, "OVERLAPPED is 32 bytes");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED, InternalHigh) == 8, "OVERLAPPED.InternalHigh at 8");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED, Offset) == 16, "OVERLAPPED.Offset at 16");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED, OffsetHigh) == 20, "OVERLAPPED.OffsetHigh at 20");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED, Pointer) == 16, "OVERLAPPED.Pointer at 16");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED, hEvent) == 24, "OVERLAPPED.hEvent at 24");
IOCP_STATIC_ASSERT(sizeof(OVERLAPPED_ENTRY) == 32, "OVERLAPPED_ENTRY is 32 bytes");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, lpOverlapped) == 8, "lpOverlapped at 8");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, Internal) == 16, "Internal at 16");
IOCP_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred) == 24,
                   "dwNumberOfBytesTransferred at 24");
IOCP_STATIC_ASSERT(sizeof(WSABUF) == 16, "WSABUF is 16 bytes");
IOCP_STATIC_ASSERT(offsetof(WSABUF, buf) == 8, "WSABUF.buf at 8");

/* ---- Status codes ----------------------------------------------------------------------- */
#define STATUS_SUCCESS ((NTSTATUS)0x00000000)
#define STATUS_ABANDONED_WAIT_0 ((NTSTATUS)0x00000080)
#define STATUS_TIMEOUT ((NTSTATUS)0x00000102)
#define STATUS_PENDING ((NTSTATUS)0x00000103)
#define STATUS_BUFFER_OVERFLOW ((NTSTATUS)0x80000005)
#define STATUS_UNSUCCESSFUL ((NTSTATUS)0xC0000001)
#define STATUS_NOT_IMPLEMENTED ((NTSTATUS)0xC0000002)
#define STATUS_INVALID_HANDLE ((NTSTATUS)0xC0000008)
#define STATUS_INVALID_PARAMETER ((NTSTATUS)0xC000000D)
#define STATUS_END_OF_FILE ((NTSTATUS)0xC0000011)
#define STATUS_NO_MEMORY ((NTSTATUS)0xC0000017)
#define STATUS_ACCESS_VIOLATION ((NTSTATUS)0xC0000005)
#define STATUS_ACCESS_DENIED ((NTSTATUS)0xC0000022)
#define STATUS_BUFFER_TOO_SMALL ((NTSTATUS)0xC0000023)
#define STATUS_OBJECT_TYPE_MISMATCH ((NTSTATUS)0xC0000024)
#define STATUS_OBJECT_NAME_NOT_FOUND ((NTSTATUS)0xC0000034)
#define STATUS_OBJECT_NAME_COLLISION ((NTSTATUS)0xC0000035)
#define STATUS_OBJECT_PATH_NOT_FOUND ((NTSTATUS)0xC000003A)
#define STATUS_SHARING_VIOLATION ((NTSTATUS)0xC0000043)
#define STATUS_DISK_FULL ((NTSTATUS)0xC000007F)
#define STATUS_MEDIA_WRITE_PROTECTED ((NTSTATUS)0xC00000A2)
#define STATUS_DEVICE_BUSY ((NTSTATUS)0xC00000AE)
#define STATUS_PIPE_DISCONNECTED ((NTSTATUS)0xC00000B0)
#define STATUS_FILE_IS_A_DIRECTORY ((NTSTATUS)0xC00000BA)
#define STATUS_NETWORK_BUSY ((NTSTATUS)0xC00000BF)
#define STATUS_DIRECTORY_NOT_EMPTY ((NTSTATUS)0xC0000101)
#define STATUS_NOT_A_DIRECTORY ((NTSTATUS)0xC0000103)
#define STATUS_TOO_MANY_OPENED_FILES ((NTSTATUS)0xC000011F)
#define STATUS_CONNECTION_DISCONNECTED ((NTSTATUS)0xC000020C)
#define STATUS_CONNECTION_ACTIVE ((NTSTATUS)0xC000023B)
#define STATUS_DEVICE_NOT_READY ((NTSTATUS)0xC00000A3)
#define STATUS_NOT_SUPPORTED ((NTSTATUS)0xC00000BB)
#define STATUS_IO_TIMEOUT ((NTSTATUS)0xC00000B5)
#define STATUS_PIPE_BROKEN ((NTSTATUS)0xC000014B)
#define STATUS_CANCELLED ((NTSTATUS)0xC0000120)
#define STATUS_LOCAL_DISCONNECT ((NTSTATUS)0xC000013B)
#define STATUS_CONNECTION_REFUSED ((NTSTATUS)0xC0000236)
#define STATUS_CONNECTION_RESET ((NTSTATUS)0xC000020D)
#define STATUS_CONNECTION_ABORTED ((NTSTATUS)0xC0000241)
#define STATUS_INVALID_CONNECTION ((NTSTATUS)0xC0000140)
#define STATUS_NETWORK_UNREACHABLE ((NTSTATUS)0xC000023C)
#define STATUS_HOST_UNREACHABLE ((NTSTATUS)0xC000023D)

#define ERROR_SUCCESS 0L
#define NO_ERROR 0L
#define ERROR_INVALID_FUNCTION 1L
#define ERROR_FILE_NOT_FOUND 2L
#define ERROR_PATH_NOT_FOUND 3L
#define ERROR_TOO_MANY_OPEN_FILES 4L
#define ERROR_ACCESS_DENIED 5L
#define ERROR_INVALID_HANDLE 6L
#define ERROR_NOT_ENOUGH_MEMORY 8L
#define ERROR_OUTOFMEMORY 14L
#define ERROR_WRITE_PROTECT 19L
#define ERROR_NOT_READY 21L
#define ERROR_GEN_FAILURE 31L
#define ERROR_SHARING_VIOLATION 32L
#define ERROR_HANDLE_EOF 38L
#define ERROR_HANDLE_DISK_FULL 39L
#define ERROR_NOT_SUPPORTED 50L
#define ERROR_NETWORK_BUSY 54L
#define ERROR_NETNAME_DELETED 64L
#define ERROR_FILE_EXISTS 80L
#define ERROR_INVALID_PARAMETER 87L
#define ERROR_BROKEN_PIPE 109L
#define ERROR_DISK_FULL 112L
#define ERROR_CALL_NOT_IMPLEMENTED 120L
#define ERROR_SEM_TIMEOUT 121L
#define ERROR_INSUFFICIENT_BUFFER 122L
#define ERROR_INVALID_NAME 123L
#define ERROR_DIR_NOT_EMPTY 145L
#define ERROR_BUSY 170L
#define ERROR_ALREADY_EXISTS 183L
#define ERROR_PIPE_NOT_CONNECTED 233L
#define ERROR_MORE_DATA 234L
#define WAIT_TIMEOUT 258L
#define ERROR_DIRECTORY 267L
#define ERROR_MR_MID_NOT_FOUND 317L
#define ERROR_ABANDONED_WAIT_0 735L
#define ERROR_OPERATION_ABORTED 995L
#define ERROR_IO_INCOMPLETE 996L
#define ERROR_IO_PENDING 997L
#define ERROR_NOACCESS 998L
#define ERROR_NOT_FOUND 1168L
#define ERROR_CONNECTION_REFUSED 1225L
#define ERROR_GRACEFUL_DISCONNECT 1226L
#define ERROR_NETWORK_UNREACHABLE 1231L
#define ERROR_HOST_UNREACHABLE 1232L
#define ERROR_PORT_UNREACHABLE 1234L
#define ERROR_CONNECTION_ABORTED 1236L
#define ERROR_CONNECTION_INVALID 1229L
#define ERROR_CONNECTION_ACTIVE 1230L
#define ERROR_INTERNAL_ERROR 1359L

#define WAIT_OBJECT_0 ((DWORD)0x00000000L)
#define WAIT_ABANDONED_0 ((DWORD)0x00000080L)
#define WAIT_IO_COMPLETION ((DWORD)0x000000C0L)
#define WAIT_FAILED 0xFFFFFFFFu

#define WSABASEERR 10000
#define WSA_IO_PENDING 997
#define WSA_IO_INCOMPLETE 996
#define WSA_INVALID_HANDLE 6
#define WSA_INVALID_PARAMETER 87
#define WSA_NOT_ENOUGH_MEMORY 8
#define WSA_OPERATION_ABORTED 995
#define WSAEINTR 10004
#define WSAEBADF 10009
#define WSAEACCES 10013
#define WSAEFAULT 10014
#define WSAEINVAL 10022
#define WSAEMFILE 10024
#define WSAEWOULDBLOCK 10035
#define WSAEINPROGRESS 10036
#define WSAEALREADY 10037
#define WSAENOTSOCK 10038
#define WSAEDESTADDRREQ 10039
#define WSAEMSGSIZE 10040
#define WSAEPROTOTYPE 10041
#define WSAENOPROTOOPT 10042
#define WSAEPROTONOSUPPORT 10043
#define WSAESOCKTNOSUPPORT 10044
#define WSAEOPNOTSUPP 10045
#define WSAEPFNOSUPPORT 10046
#define WSAEAFNOSUPPORT 10047
#define WSAEADDRINUSE 10048
#define WSAEADDRNOTAVAIL 10049
#define WSAENETDOWN 10050
#define WSAENETUNREACH 10051
#define WSAENETRESET 10052
#define WSAECONNABORTED 10053
#define WSAECONNRESET 10054
#define WSAENOBUFS 10055
#define WSAEISCONN 10056
#define WSAENOTCONN 10057
#define WSAESHUTDOWN 10058
#define WSAETIMEDOUT 10060
#define WSAECONNREFUSED 10061
#define WSAEHOSTUNREACH 10065
#define WSASYSNOTREADY 10091
#define WSAVERNOTSUPPORTED 10092
#define WSANOTINITIALISED 10093
#define WSAEDISCON 10101

/* ---- Flags and options ------------------------------------------------------------------ */
#define GENERIC_READ 0x80000000u
#define GENERIC_WRITE 0x40000000u
#define GENERIC_ALL 0x10000000u
#define FILE_SHARE_READ 0x00000001u
#define FILE_SHARE_WRITE 0x00000002u
#define FILE_SHARE_DELETE 0x00000004u
#define CREATE_NEW 1u
#define CREATE_ALWAYS 2u
#define OPEN_EXISTING 3u
#define OPEN_ALWAYS 4u
#define TRUNCATE_EXISTING 5u
#define FILE_ATTRIBUTE_READONLY 0x00000001u
#define FILE_ATTRIBUTE_NORMAL 0x00000080u
#define FILE_FLAG_WRITE_THROUGH 0x80000000u
#define FILE_FLAG_OVERLAPPED 0x40000000u
#define FILE_FLAG_NO_BUFFERING 0x20000000u
#define FILE_FLAG_RANDOM_ACCESS 0x10000000u
#define FILE_FLAG_SEQUENTIAL_SCAN 0x08000000u
#define FILE_FLAG_DELETE_ON_CLOSE 0x04000000u
#define FILE_SKIP_COMPLETION_PORT_ON_SUCCESS 0x1
#define FILE_SKIP_SET_EVENT_ON_HANDLE 0x2

#define WSA_FLAG_OVERLAPPED 0x01
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#define SD_RECEIVE 0
#define SD_SEND 1
#define SD_BOTH 2

#define SIO_GET_EXTENSION_FUNCTION_POINTER 0xC8000006u
#define SO_UPDATE_ACCEPT_CONTEXT 0x700B
#define SO_UPDATE_CONNECT_CONTEXT 0x7010

#define TF_DISCONNECT 0x01
#define TF_REUSE_SOCKET 0x02
#define TF_WRITE_BEHIND 0x04
#define TF_USE_DEFAULT_WORKER 0x00
#define TF_USE_SYSTEM_THREAD 0x10
#define TF_USE_KERNEL_APC 0x20

#define WSAID_ACCEPTEX \
    {0xb5367df1, 0xcbac, 0x11cf, {0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92}}
#define WSAID_GETACCEPTEXSOCKADDRS \
    {0xb5367df2, 0xcbac, 0x11cf, {0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92}}
#define WSAID_TRANSMITFILE \
    {0xb5367df0, 0xcbac, 0x11cf, {0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92}}
#define WSAID_CONNECTEX \
    {0x25a207b9, 0xddf3, 0x4660, {0x8e, 0xe9, 0x76, 0xe5, 0x8c, 0x74, 0x06, 0x3e}}
#define WSAID_DISCONNECTEX \
    {0x7fda2e11, 0x8630, 0x436f, {0xa0, 0x31, 0xf5, 0x36, 0xa6, 0xee, 0xc1, 0x57}}

/* Reads Internal, which the library writes once, before the packet can be dequeued. */
#define HasOverlappedIoCompleted(lpOverlapped) \
    (((volatile OVERLAPPED *)(lpOverlapped))->Internal != (ULONG_PTR)STATUS_PENDING)

/* ---- Extension function types (WSAIoctl SIO_GET_EXTENSION_FUNCTION_POINTER) ------------- */
typedef BOOL (*LPFN_ACCEPTEX)(SOCKET sListenSocket, SOCKET sAcceptSocket, PVOID lpOutputBuffer,
                              DWORD dwReceiveDataLength, DWORD dwLocalAddressLength,
                              DWORD dwRemoteAddressLength, LPDWORD lpdwBytesReceived,
                              LPOVERLAPPED lpOverlapped);
typedef void (*LPFN_GETACCEPTEXSOCKADDRS)(PVOID lpOutputBuffer, DWORD dwReceiveDataLength,
                                          DWORD dwLocalAddressLength, DWORD dwRemoteAddressLength,
                                          struct sockaddr **LocalSockaddr, LPINT LocalSockaddrLength,
                                          struct sockaddr **RemoteSockaddr,
                                          LPINT RemoteSockaddrLength);
typedef BOOL (*LPFN_CONNECTEX)(SOCKET s, const struct sockaddr *name, int namelen,
                               PVOID lpSendBuffer, DWORD dwSendDataLength, LPDWORD lpdwBytesSent,
                               LPOVERLAPPED lpOverlapped);
typedef BOOL (*LPFN_DISCONNECTEX)(SOCKET s, LPOVERLAPPED lpOverlapped, DWORD dwFlags,
                                  DWORD dwReserved);
typedef BOOL (*LPFN_TRANSMITFILE)(SOCKET hSocket, HANDLE hFile, DWORD nNumberOfBytesToWrite,
                                  DWORD nNumberOfBytesPerSend, LPOVERLAPPED lpOverlapped,
                                  LPTRANSMIT_FILE_BUFFERS lpTransmitBuffers, DWORD dwReserved);

/* ---- Completion ports ------------------------------------------------------------------- */
IOCP_API HANDLE WINAPI CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
                                              ULONG_PTR CompletionKey,
                                              DWORD NumberOfConcurrentThreads);
IOCP_API BOOL WINAPI GetQueuedCompletionStatus(HANDLE CompletionPort,
                                               LPDWORD lpNumberOfBytesTransferred,
                                               PULONG_PTR lpCompletionKey,
                                               LPOVERLAPPED *lpOverlapped, DWORD dwMilliseconds);
IOCP_API BOOL WINAPI GetQueuedCompletionStatusEx(HANDLE CompletionPort,
                                                 LPOVERLAPPED_ENTRY lpCompletionPortEntries,
                                                 ULONG ulCount, PULONG ulNumEntriesRemoved,
                                                 DWORD dwMilliseconds, BOOL fAlertable);
IOCP_API BOOL WINAPI PostQueuedCompletionStatus(HANDLE CompletionPort,
                                                DWORD dwNumberOfBytesTransferred,
                                                ULONG_PTR dwCompletionKey,
                                                LPOVERLAPPED lpOverlapped);
IOCP_API BOOL WINAPI CloseHandle(HANDLE hObject);
IOCP_API BOOL WINAPI CancelIo(HANDLE hFile);
IOCP_API BOOL WINAPI CancelIoEx(HANDLE hFile, LPOVERLAPPED lpOverlapped);
IOCP_API BOOL WINAPI GetOverlappedResult(HANDLE hFile, LPOVERLAPPED lpOverlapped,
                                         LPDWORD lpNumberOfBytesTransferred, BOOL bWait);
IOCP_API BOOL WINAPI SetFileCompletionNotificationModes(HANDLE FileHandle, UCHAR Flags);
IOCP_API DWORD WINAPI GetLastError(void);
IOCP_API void WINAPI SetLastError(DWORD dwErrCode);

/* ---- Files (POSIX paths) ---------------------------------------------------------------- */
IOCP_API HANDLE WINAPI CreateFileA(LPCSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                                   LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                   DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                                   HANDLE hTemplateFile);
IOCP_API HANDLE WINAPI CreateFileW(LPCWSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                                   LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                   DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                                   HANDLE hTemplateFile);
IOCP_API BOOL WINAPI ReadFile(HANDLE hFile, LPVOID lpBuffer, DWORD nNumberOfBytesToRead,
                              LPDWORD lpNumberOfBytesRead, LPOVERLAPPED lpOverlapped);
IOCP_API BOOL WINAPI WriteFile(HANDLE hFile, LPCVOID lpBuffer, DWORD nNumberOfBytesToWrite,
                               LPDWORD lpNumberOfBytesWritten, LPOVERLAPPED lpOverlapped);

/* ---- Winsock ---------------------------------------------------------------------------- */
IOCP_API int WSAAPI WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData);
IOCP_API int WSAAPI WSACleanup(void);
IOCP_API int WSAAPI WSAGetLastError(void);
IOCP_API void WSAAPI WSASetLastError(int iError);
IOCP_API SOCKET WSAAPI WSASocketA(int af, int type, int protocol,
                                  LPWSAPROTOCOL_INFOA lpProtocolInfo, GROUP g, DWORD dwFlags);
IOCP_API SOCKET WSAAPI WSASocketW(int af, int type, int protocol,
                                  LPWSAPROTOCOL_INFOW lpProtocolInfo, GROUP g, DWORD dwFlags);
IOCP_API int WSAAPI closesocket(SOCKET s);
IOCP_API int WSAAPI WSARecv(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                            LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags,
                            LPWSAOVERLAPPED lpOverlapped,
                            LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
IOCP_API int WSAAPI WSASend(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                            LPDWORD lpNumberOfBytesSent, DWORD dwFlags,
                            LPWSAOVERLAPPED lpOverlapped,
                            LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
IOCP_API int WSAAPI WSARecvFrom(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                                LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags,
                                struct sockaddr *lpFrom, LPINT lpFromlen,
                                LPWSAOVERLAPPED lpOverlapped,
                                LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
IOCP_API int WSAAPI WSASendTo(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                              LPDWORD lpNumberOfBytesSent, DWORD dwFlags,
                              const struct sockaddr *lpTo, int iTolen,
                              LPWSAOVERLAPPED lpOverlapped,
                              LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
IOCP_API BOOL WSAAPI WSAGetOverlappedResult(SOCKET s, LPWSAOVERLAPPED lpOverlapped,
                                            LPDWORD lpcbTransfer, BOOL fWait, LPDWORD lpdwFlags);
IOCP_API int WSAAPI WSAIoctl(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer,
                             DWORD cbInBuffer, LPVOID lpvOutBuffer, DWORD cbOutBuffer,
                             LPDWORD lpcbBytesReturned, LPWSAOVERLAPPED lpOverlapped,
                             LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
IOCP_API BOOL WSAAPI AcceptEx(SOCKET sListenSocket, SOCKET sAcceptSocket, PVOID lpOutputBuffer,
                              DWORD dwReceiveDataLength, DWORD dwLocalAddressLength,
                              DWORD dwRemoteAddressLength, LPDWORD lpdwBytesReceived,
                              LPOVERLAPPED lpOverlapped);
IOCP_API void WSAAPI GetAcceptExSockaddrs(PVOID lpOutputBuffer, DWORD dwReceiveDataLength,
                                          DWORD dwLocalAddressLength,
                                          DWORD dwRemoteAddressLength,
                                          struct sockaddr **LocalSockaddr,
                                          LPINT LocalSockaddrLength,
                                          struct sockaddr **RemoteSockaddr,
                                          LPINT RemoteSockaddrLength);
IOCP_API BOOL WSAAPI ConnectEx(SOCKET s, const struct sockaddr *name, int namelen,
                               PVOID lpSendBuffer, DWORD dwSendDataLength,
                               LPDWORD lpdwBytesSent, LPOVERLAPPED lpOverlapped);
IOCP_API BOOL WSAAPI DisconnectEx(SOCKET s, LPOVERLAPPED lpOverlapped, DWORD dwFlags,
                                  DWORD dwReserved);
/* dwReserved carries the TF_* flags (the SDK's name for it; older documentation: dwFlags). */
IOCP_API BOOL WSAAPI TransmitFile(SOCKET hSocket, HANDLE hFile, DWORD nNumberOfBytesToWrite,
                                  DWORD nNumberOfBytesPerSend, LPOVERLAPPED lpOverlapped,
                                  LPTRANSMIT_FILE_BUFFERS lpTransmitBuffers, DWORD dwReserved);

/*
 * The BSD socket calls with Winsock's behaviour: SOCKET arguments, int lengths, failures as
 * SOCKET_ERROR with WSAGetLastError() set (libc's would leave it untouched), no fd 0-2 for new
 * sockets, SO_UPDATE_ACCEPT_CONTEXT and SO_UPDATE_CONNECT_CONTEXT accepted. Length pointers may
 * point to an int or a socklen_t (both 4 bytes).
 *
 * In C, macros route the Winsock spellings (socket(...), bind(...), ...) to them. In C++ they are
 * overloads taking a SOCKET, chosen over libc's for Winsock-style calls (a SOCKET, a char *
 * buffer, an int length) while calls with an int fd still reach libc; std::bind and member
 * functions of these names are untouched. socket() is a macro in both (it cannot be
 * overloaded). Define IOCPORT_NO_SOCKET_MACROS to keep libc's everywhere.
 */
IOCP_API SOCKET WSAAPI iocp_socket(int af, int type, int protocol);
IOCP_API int WSAAPI iocp_setsockopt(SOCKET s, int level, int optname, const void *optval,
                                    int optlen);
IOCP_API int WSAAPI iocp_getsockopt(SOCKET s, int level, int optname, void *optval,
                                    void *optlen);
IOCP_API int WSAAPI iocp_bind(SOCKET s, const struct sockaddr *name, int namelen);
IOCP_API int WSAAPI iocp_listen(SOCKET s, int backlog);
IOCP_API int WSAAPI iocp_connect(SOCKET s, const struct sockaddr *name, int namelen);
IOCP_API SOCKET WSAAPI iocp_accept(SOCKET s, struct sockaddr *addr, void *addrlen);
IOCP_API int WSAAPI iocp_getsockname(SOCKET s, struct sockaddr *name, void *namelen);
IOCP_API int WSAAPI iocp_getpeername(SOCKET s, struct sockaddr *name, void *namelen);
IOCP_API int WSAAPI iocp_shutdown(SOCKET s, int how);
IOCP_API int WSAAPI iocp_send(SOCKET s, const void *buf, int len, int flags);
IOCP_API int WSAAPI iocp_recv(SOCKET s, void *buf, int len, int flags);
IOCP_API int WSAAPI iocp_sendto(SOCKET s, const void *buf, int len, int flags,
                                const struct sockaddr *to, int tolen);
IOCP_API int WSAAPI iocp_recvfrom(SOCKET s, void *buf, int len, int flags, struct sockaddr *from,
                                  void *fromlen);
/* FIONBIO and FIONREAD, with Windows' values (Linux's are accepted too). */
IOCP_API int WSAAPI ioctlsocket(SOCKET s, long cmd, unsigned long *argp);
#ifndef FIONBIO
#define FIONBIO ((long)(int)0x8004667E)
#endif
#ifndef FIONREAD
#define FIONREAD ((long)0x4004667F)
#endif

#ifndef IOCPORT_NO_SOCKET_MACROS
#define socket(af, type, protocol) iocp_socket(af, type, protocol)
#ifndef __cplusplus
#define setsockopt(s, level, name, val, len) iocp_setsockopt(s, level, name, val, len)
#define getsockopt(s, level, name, val, len) iocp_getsockopt(s, level, name, val, len)
#define bind(s, name, len) iocp_bind(s, name, len)
#define listen(s, backlog) iocp_listen(s, backlog)
#define connect(s, name, len) iocp_connect(s, name, len)
#define accept(s, addr, len) iocp_accept(s, addr, len)
#define getsockname(s, name, len) iocp_getsockname(s, name, len)
#define getpeername(s, name, len) iocp_getpeername(s, name, len)
#define shutdown(s, how) iocp_shutdown(s, how)
#define send(s, buf, len, flags) iocp_send(s, buf, len, flags)
#define recv(s, buf, len, flags) iocp_recv(s, buf, len, flags)
#define sendto(s, buf, len, flags, to, tolen) iocp_sendto(s, buf, len, flags, to, tolen)
#define recvfrom(s, buf, len, flags, from, fromlen) iocp_recvfrom(s, buf, len, flags, from, fromlen)
#endif
#endif

#ifdef __cplusplus
}

#ifndef IOCPORT_NO_SOCKET_MACROS
/* Templates that match a SOCKET exactly (and any buffer, length or length-pointer type), so a
 * Winsock-style call picks them over libc's while a call with an int fd still picks libc's. */
namespace iocport_detail {
template <class S>
using if_socket = typename std::enable_if<std::is_same<S, SOCKET>::value, int>::type;
}
template <class S, class V, class L, iocport_detail::if_socket<S> = 0>
inline int setsockopt(S s, int level, int name, const V *val, L len)
{
    return iocp_setsockopt(s, level, name, val, (int)len);
}
/* For NULL arguments, which no template can deduce a type from. */
template <class S, iocport_detail::if_socket<S> = 0>
inline int setsockopt(S s, int level, int name, const char *val, int len)
{
    return iocp_setsockopt(s, level, name, val, len);
}
template <class S, class V, class P, iocport_detail::if_socket<S> = 0>
inline int getsockopt(S s, int level, int name, V *val, P *len)
{
    return iocp_getsockopt(s, level, name, val, len);
}
template <class S, class A, class L, iocport_detail::if_socket<S> = 0>
inline int bind(S s, const A *name, L len)
{
    return iocp_bind(s, (const struct sockaddr *)name, (int)len);
}
template <class S, iocport_detail::if_socket<S> = 0>
inline int listen(S s, int backlog)
{
    return iocp_listen(s, backlog);
}
template <class S, class A, class L, iocport_detail::if_socket<S> = 0>
inline int connect(S s, const A *name, L len)
{
    return iocp_connect(s, (const struct sockaddr *)name, (int)len);
}
template <class S, class A, class P, iocport_detail::if_socket<S> = 0>
inline SOCKET accept(S s, A *addr, P *len)
{
    return iocp_accept(s, (struct sockaddr *)addr, len);
}
template <class S, iocport_detail::if_socket<S> = 0>
inline SOCKET accept(S s, struct sockaddr *addr, int *len)
{
    return iocp_accept(s, addr, len);
}
template <class S, class A, class P, iocport_detail::if_socket<S> = 0>
inline int getsockname(S s, A *name, P *len)
{
    return iocp_getsockname(s, (struct sockaddr *)name, len);
}
template <class S, class A, class P, iocport_detail::if_socket<S> = 0>
inline int getpeername(S s, A *name, P *len)
{
    return iocp_getpeername(s, (struct sockaddr *)name, len);
}
template <class S, iocport_detail::if_socket<S> = 0>
inline int shutdown(S s, int how)
{
    return iocp_shutdown(s, how);
}
template <class S, class B, class L, iocport_detail::if_socket<S> = 0>
inline int send(S s, const B *buf, L len, int flags)
{
    return iocp_send(s, buf, (int)len, flags);
}
template <class S, class B, class L, iocport_detail::if_socket<S> = 0>
inline int recv(S s, B *buf, L len, int flags)
{
    return iocp_recv(s, buf, (int)len, flags);
}
template <class S, class B, class L, class A, class T, iocport_detail::if_socket<S> = 0>
inline int sendto(S s, const B *buf, L len, int flags, const A *to, T tolen)
{
    return iocp_sendto(s, buf, (int)len, flags, (const struct sockaddr *)to, (int)tolen);
}
template <class S, class B, class L, class A, class P, iocport_detail::if_socket<S> = 0>
inline int recvfrom(S s, B *buf, L len, int flags, A *from, P *fromlen)
{
    return iocp_recvfrom(s, buf, (int)len, flags, (struct sockaddr *)from, fromlen);
}
#endif
#endif

/*
 * The Win32 essentials that IOCP servers also call: threads, waits and events (threads.h);
 * critical sections, slim reader/writer locks, condition variables and the Interlocked family
 * (locks.h); system information, time, memory, heaps, the console control handler,
 * FormatMessage and the ws2tcpip names (base.h, last: it defines min and max).
 */
#include <iocport/threads.h>
#include <iocport/locks.h>
#include <iocport/base.h>
#endif /* IOCPORT_WINDOWS_H */
