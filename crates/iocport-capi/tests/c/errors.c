/*
 * Bad input to every entry point: NULL, INVALID_HANDLE_VALUE, (HANDLE)0xbadbad00, handles of the
 * wrong kind (a port where a socket or file is expected, a socket where a port is expected),
 * closed handles, zero-length and NULL buffers, NULL out-pointers. Each call must fail with the
 * documented error (where Windows documents none, the natural Win32/Winsock one), queue no packet
 * and never crash. Also WSAStartup's own errors and Winsock calls before WSAStartup.
 */
#include "common.h"

#define CHECK_ERR2(a, b)                                                                \
    do {                                                                                \
        DWORD e2_ = GetLastError();                                                     \
        if (e2_ != (DWORD)(a) && e2_ != (DWORD)(b)) {                                   \
            test_fail_(__FILE__, __LINE__, "GetLastError() is " #a " or " #b, NULL);    \
        }                                                                               \
    } while (0)

#define CHECK_WSAERR2(a, b)                                                             \
    do {                                                                                \
        int w2_ = WSAGetLastError();                                                    \
        if (w2_ != (a) && w2_ != (b)) {                                                 \
            test_fail_(__FILE__, __LINE__, "WSAGetLastError() is " #a " or " #b, NULL); \
        }                                                                               \
    } while (0)

#define CHECK_WSAERR3(a, b, c)                                                          \
    do {                                                                                \
        int w3_ = WSAGetLastError();                                                    \
        if (w3_ != (a) && w3_ != (b) && w3_ != (c)) {                                   \
            test_fail_(__FILE__, __LINE__, "WSAGetLastError() is " #a ", " #b " or " #c, NULL); \
        }                                                                               \
    } while (0)

#define ADDR_LEN ((DWORD)(sizeof(SOCKADDR_STORAGE) + 16))

static HANDLE g_port;    /* the port every good handle is associated with */
static HANDLE g_file;    /* an open file, associated */
static char g_path[256]; /* its path */

static void before_startup(void)
{
    WSADATA wsa;
    SOCKET s;

    test_step("Winsock before WSAStartup: WSANOTINITIALISED");
    WSASetLastError(0);
    s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(s == INVALID_SOCKET);
    CHECK_WSAERR(WSANOTINITIALISED);
    WSASetLastError(0);
    s = WSASocketA(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(s == INVALID_SOCKET);
    CHECK_WSAERR(WSANOTINITIALISED);
    WSASetLastError(0);
    s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s == INVALID_SOCKET);
    CHECK_WSAERR(WSANOTINITIALISED);
    WSASetLastError(0);
    CHECK_EQ(WSACleanup(), SOCKET_ERROR);
    CHECK_WSAERR(WSANOTINITIALISED);

    test_step("WSAStartup(0): WSAVERNOTSUPPORTED; WSAStartup(2.2, NULL): WSAEFAULT");
    CHECK_EQ(WSAStartup(0, &wsa), WSAVERNOTSUPPORTED);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), NULL), WSAEFAULT);
    /* Neither counted as a start. */
    WSASetLastError(0);
    s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(s == INVALID_SOCKET);
    CHECK_WSAERR(WSANOTINITIALISED);

    test_step("WSAStartup(3.0) succeeds with version 2.2; the starts are counted");
    memset(&wsa, 0, sizeof wsa);
    CHECK_EQ(WSAStartup(MAKEWORD(3, 0), &wsa), 0);
    CHECK_EQ(wsa.wVersion, MAKEWORD(2, 2));
    CHECK_EQ(wsa.wHighVersion, MAKEWORD(2, 2));
    memset(&wsa, 0, sizeof wsa);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &wsa), 0);
    CHECK_EQ(wsa.wVersion, MAKEWORD(2, 2));
    CHECK_EQ(WSACleanup(), 0);
    s = tcp_socket();
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(WSACleanup(), 0);
    WSASetLastError(0);
    s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(s == INVALID_SOCKET);
    CHECK_WSAERR(WSANOTINITIALISED);
}

static void last_error(void)
{
    test_step("SetLastError/GetLastError; WSASetLastError/WSAGetLastError are the same value");
    SetLastError(1234);
    CHECK_EQ(GetLastError(), 1234);
    CHECK_EQ(WSAGetLastError(), 1234);
    WSASetLastError(WSAECONNRESET);
    CHECK_EQ(GetLastError(), WSAECONNRESET);
    CHECK_EQ(WSAGetLastError(), WSAECONNRESET);
    SetLastError(0);
}

static void *other_thread_error(void *arg)
{
    DWORD *seen = (DWORD *)arg;
    *seen = GetLastError();
    SetLastError(42);
    return NULL;
}

static void last_error_per_thread(void)
{
    pthread_t t;
    DWORD seen = 0xffff;
    test_step("the last error is per thread");
    SetLastError(7);
    CHECK_EQ(pthread_create(&t, NULL, other_thread_error, &seen), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(seen, 0);
    CHECK_EQ(GetLastError(), 7);
}

/* ---- Handles of every bad kind ------------------------------------------------------------ */

enum { BAD_NULL, BAD_INVALID, BAD_GARBAGE, BAD_CLOSED, BAD_WRONG_KIND, BAD_COUNT };
static const char *bad_names[] = {"NULL", "INVALID_HANDLE_VALUE", "0xbadbad00", "closed",
                                  "wrong kind"};

/* A handle where a port is expected; *cleanup is a socket to close afterwards, if any. */
static HANDLE bad_port(int k, SOCKET *cleanup)
{
    *cleanup = INVALID_SOCKET;
    switch (k) {
    case BAD_NULL:
        return NULL;
    case BAD_INVALID:
        return INVALID_HANDLE_VALUE;
    case BAD_GARBAGE:
        return (HANDLE)(uintptr_t)0xbadbad00u;
    case BAD_CLOSED: {
        HANDLE p = new_port(0);
        CHECK(CloseHandle(p));
        return p;
    }
    default: {
        /* A socket fd (associated, so the library knows it well). */
        SOCKET s = tcp_socket();
        associate(HSOCK(s), g_port, 1);
        *cleanup = s;
        return HSOCK(s);
    }
    }
}

/* A value where a socket is expected; *cleanup is a port to close afterwards, if any. */
static SOCKET bad_socket(int k, HANDLE *cleanup)
{
    *cleanup = NULL;
    switch (k) {
    case BAD_NULL:
        /* fd 0: stdin, /dev/null under the driver; not a socket. */
        return (SOCKET)0;
    case BAD_INVALID:
        return INVALID_SOCKET;
    case BAD_GARBAGE:
        return (SOCKET)0xbadbad00u;
    case BAD_CLOSED: {
        /* Closed just now: nothing else takes the number before it is used. */
        SOCKET s = tcp_socket();
        CHECK_EQ(closesocket(s), 0);
        return s;
    }
    default: {
        HANDLE p = new_port(0);
        *cleanup = p;
        return (SOCKET)(uintptr_t)p;
    }
    }
}

/* A handle where a file is expected (the wrong kind is a port). */
static HANDLE bad_file(int k, HANDLE *cleanup)
{
    *cleanup = NULL;
    switch (k) {
    case BAD_NULL:
        return NULL;
    case BAD_INVALID:
        return INVALID_HANDLE_VALUE;
    case BAD_GARBAGE:
        return (HANDLE)(uintptr_t)0xbadbad00u;
    case BAD_CLOSED: {
        char path[256];
        HANDLE f;
        temp_path(path, sizeof path, "closed");
        f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW,
                        FILE_FLAG_OVERLAPPED, NULL);
        CHECK(f != INVALID_HANDLE_VALUE);
        unlink(path);
        CHECK(CloseHandle(f));
        return f;
    }
    default: {
        HANDLE p = new_port(0);
        *cleanup = p;
        return p;
    }
    }
}

static void done_port(SOCKET cleanup)
{
    if (cleanup != INVALID_SOCKET) {
        CHECK_EQ(closesocket(cleanup), 0);
    }
}

static void done_handle(HANDLE cleanup)
{
    if (cleanup) {
        CHECK(CloseHandle(cleanup));
    }
}

static void bad_ports(void)
{
    int k;
    for (k = 0; k < BAD_COUNT; k++) {
        SOCKET cl;
        HANDLE p;
        DWORD bytes = 0x77;
        ULONG_PTR key = 0x88;
        LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)1;
        OVERLAPPED_ENTRY e[2];
        ULONG removed = 9;
        SOCKET s;

        test_step("a bad port (%s): ERROR_INVALID_HANDLE everywhere", bad_names[k]);
        p = bad_port(k, &cl);
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(p, &bytes, &key, &ov, 0));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        CHECK(ov == NULL);
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(p, &bytes, &key, &ov, 10));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatusEx(p, e, 2, &removed, 0, FALSE));
        CHECK_ERR(ERROR_INVALID_HANDLE);
        SetLastError(0);
        CHECK(!PostQueuedCompletionStatus(p, 1, 2, NULL));
        CHECK_ERR(ERROR_INVALID_HANDLE);

        /* As the existing port of an association. */
        s = tcp_socket();
        SetLastError(0);
        if (k == BAD_NULL) {
            /* NULL is "no existing port": a new port, associated. */
            HANDLE np = CreateIoCompletionPort(HSOCK(s), p, 1, 0);
            CHECK(np != NULL);
            CHECK(CloseHandle(np));
        } else {
            CHECK(CreateIoCompletionPort(HSOCK(s), p, 1, 0) == NULL);
            CHECK_ERR(ERROR_INVALID_HANDLE);
            /* Not associated by the failed call. */
            associate(HSOCK(s), g_port, 1);
        }
        CHECK_EQ(closesocket(s), 0);
        done_port(cl);
    }
}

static void bad_sockets(void)
{
    int k;
    char buf[8];
    WSABUF b;
    b.buf = buf;
    b.len = sizeof buf;
    for (k = 0; k < BAD_COUNT + 1; k++) {
        HANDLE cl = NULL;
        SOCKET s;
        OVERLAPPED ov;
        DWORD n = 0, flags = 0;
        struct sockaddr_in to;
        SOCKADDR_STORAGE from;
        INT fromlen = sizeof from;
        const char *name = k < BAD_COUNT ? bad_names[k] : "an open file";
        SOCKET good = tcp_socket();
        associate(HSOCK(good), g_port, 3);
        loopback_addr(&to, 9);

        test_step("a bad socket (%s): WSAENOTSOCK everywhere", name);
#define BAD_SOCK() (k < BAD_COUNT ? bad_socket(k, &cl) : (SOCKET)(uintptr_t)g_file)
#define NOTSOCK(call)                                                                   \
    do {                                                                                \
        s = BAD_SOCK();                                                                 \
        ov_init(&ov);                                                                   \
        WSASetLastError(0);                                                             \
        CHECK_EQ((call), SOCKET_ERROR);                                                 \
        CHECK_WSAERR(WSAENOTSOCK);                                                      \
        done_handle(cl);                                                                \
        cl = NULL;                                                                      \
    } while (0)
#define NOTSOCK_BOOL(call)                                                              \
    do {                                                                                \
        s = BAD_SOCK();                                                                 \
        ov_init(&ov);                                                                   \
        WSASetLastError(0);                                                             \
        CHECK(!(call));                                                                 \
        CHECK_WSAERR(WSAENOTSOCK);                                                      \
        done_handle(cl);                                                                \
        cl = NULL;                                                                      \
    } while (0)
        NOTSOCK(WSARecv(s, &b, 1, &n, &flags, &ov, NULL));
        NOTSOCK(WSASend(s, &b, 1, &n, 0, &ov, NULL));
        NOTSOCK(WSARecvFrom(s, &b, 1, &n, &flags, (struct sockaddr *)&from, &fromlen, &ov, NULL));
        NOTSOCK(WSASendTo(s, &b, 1, &n, 0, (struct sockaddr *)&to, sizeof to, &ov, NULL));
        {
            GUID g = WSAID_ACCEPTEX;
            void *fn = NULL;
            NOTSOCK(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, sizeof g, &fn, sizeof fn,
                             &n, NULL, NULL));
        }
        {
            char abuf[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
            NOTSOCK_BOOL(AcceptEx(s, good, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
        }
        NOTSOCK_BOOL(ConnectEx(s, (struct sockaddr *)&to, sizeof to, NULL, 0, NULL, &ov));
        NOTSOCK_BOOL(DisconnectEx(s, &ov, 0, 0));
        {
            /* WSAGetOverlappedResult checks the socket (the OVERLAPPED is a finished one). */
            DWORD fl = 0;
            s = BAD_SOCK();
            ov_init(&ov);
            WSASetLastError(0);
            CHECK(!WSAGetOverlappedResult(s, &ov, &n, FALSE, &fl));
            CHECK_WSAERR(WSAENOTSOCK);
            done_handle(cl);
            cl = NULL;
        }
        if (k != BAD_WRONG_KIND && k < BAD_COUNT) {
            NOTSOCK(closesocket(s));
        }
        {
            /* As AcceptEx's accept socket, on a good listener. */
            struct sockaddr_in la;
            SOCKET l = tcp_listener(&la);
            char abuf[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
            associate(HSOCK(l), g_port, 4);
            NOTSOCK_BOOL(AcceptEx(l, s, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
            CHECK_EQ(closesocket(l), 0);
        }
#undef NOTSOCK
#undef NOTSOCK_BOOL
#undef BAD_SOCK
        CHECK_EQ(closesocket(good), 0);
    }
    test_step("the refused closesocket(0) left fd 0 open");
    CHECK(fcntl(0, F_GETFD) != -1);

    test_step("closesocket of a port or a file: WSAENOTSOCK, and the handle survives");
    {
        HANDLE p = new_port(0);
        WSASetLastError(0);
        CHECK_EQ(closesocket((SOCKET)(uintptr_t)p), SOCKET_ERROR);
        CHECK_WSAERR(WSAENOTSOCK);
        CHECK(PostQueuedCompletionStatus(p, 0, 0, NULL));
        CHECK(CloseHandle(p));
        WSASetLastError(0);
        CHECK_EQ(closesocket((SOCKET)(uintptr_t)g_file), SOCKET_ERROR);
        CHECK_WSAERR(WSAENOTSOCK);
    }
}

static void bad_files(void)
{
    int k;
    for (k = 0; k < BAD_COUNT; k++) {
        HANDLE cl = NULL;
        HANDLE h;
        OVERLAPPED ov;
        char buf[8];

        test_step("a bad file handle (%s): ERROR_INVALID_HANDLE everywhere", bad_names[k]);
#define INVALID(call)                                                                   \
    do {                                                                                \
        h = bad_file(k, &cl);                                                           \
        ov_init(&ov);                                                                   \
        SetLastError(0);                                                                \
        CHECK(!(call));                                                                 \
        CHECK_ERR(ERROR_INVALID_HANDLE);                                                \
        done_handle(cl);                                                                \
        cl = NULL;                                                                      \
    } while (0)
        INVALID(ReadFile(h, buf, sizeof buf, NULL, &ov));
        INVALID(WriteFile(h, buf, sizeof buf, NULL, &ov));
        INVALID(CancelIo(h));
        INVALID(CancelIoEx(h, NULL));
        INVALID(CancelIoEx(h, &ov));
        INVALID(SetFileCompletionNotificationModes(h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS));
        if (k != BAD_INVALID) {
            /* INVALID_HANDLE_VALUE is the "new port" request; the others are bad files. */
            INVALID(CreateIoCompletionPort(h, g_port, 1, 0) != NULL);
            INVALID(CreateIoCompletionPort(h, NULL, 1, 0) != NULL);
        }
        if (k != BAD_INVALID && k != BAD_WRONG_KIND) {
            INVALID(CloseHandle(h));
        }
#undef INVALID
    }
    test_step("CloseHandle(INVALID_HANDLE_VALUE): TRUE (a pseudo-handle) or ERROR_INVALID_HANDLE");
    SetLastError(0);
    if (!CloseHandle(INVALID_HANDLE_VALUE)) {
        CHECK_ERR(ERROR_INVALID_HANDLE);
    }
}

static void bad_arguments_port(void)
{
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;
    OVERLAPPED_ENTRY e[4];
    ULONG removed = 7;

    test_step("GQCS with NULL out-pointers: ERROR_INVALID_PARAMETER, the packet stays queued");
    CHECK(PostQueuedCompletionStatus(g_port, 11, 12, NULL));
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(g_port, NULL, &key, &ov, 0));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(g_port, &bytes, NULL, &ov, 0));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(g_port, &bytes, &key, NULL, 0));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    EXPECT_PACKET(g_port, 12, 11, NULL);

    test_step("GQCSEx with ulCount 0, NULL entries, NULL count: ERROR_INVALID_PARAMETER");
    CHECK(PostQueuedCompletionStatus(g_port, 13, 14, NULL));
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(g_port, e, 0, &removed, 0, FALSE));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(g_port, NULL, 4, &removed, 0, FALSE));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(g_port, e, 4, NULL, 0, FALSE));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    EXPECT_PACKET(g_port, 14, 13, NULL);

    test_step("GetOverlappedResult with NULL pointers fails cleanly");
    {
        OVERLAPPED o;
        DWORD n = 0;
        ov_init(&o);
        SetLastError(0);
        CHECK(!GetOverlappedResult(g_file, NULL, &n, FALSE));
        CHECK_ERR2(ERROR_INVALID_PARAMETER, ERROR_NOACCESS);
        SetLastError(0);
        CHECK(!GetOverlappedResult(g_file, &o, NULL, FALSE));
        CHECK_ERR2(ERROR_INVALID_PARAMETER, ERROR_NOACCESS);
    }

    test_step("SetFileCompletionNotificationModes with unknown flags: ERROR_INVALID_PARAMETER");
    SetLastError(0);
    CHECK(!SetFileCompletionNotificationModes(g_file, 0x80));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
}

static void bad_arguments_files(void)
{
    HANDLE f;
    OVERLAPPED ov;
    char buf[16];
    WCHAR wempty[1] = {0};

    test_step("CreateFileA/W with NULL or empty names, or a bad disposition");
    SetLastError(0);
    f = CreateFileA(NULL, GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR2(ERROR_PATH_NOT_FOUND, ERROR_INVALID_PARAMETER);
    SetLastError(0);
    f = CreateFileW(NULL, GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR2(ERROR_PATH_NOT_FOUND, ERROR_INVALID_PARAMETER);
    SetLastError(0);
    f = CreateFileA("", GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR2(ERROR_PATH_NOT_FOUND, ERROR_FILE_NOT_FOUND);
    SetLastError(0);
    f = CreateFileW(wempty, GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR2(ERROR_PATH_NOT_FOUND, ERROR_FILE_NOT_FOUND);
    SetLastError(0);
    f = CreateFileA(g_path, GENERIC_READ, 0, NULL, 0, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    f = CreateFileA(g_path, GENERIC_READ, 0, NULL, 99, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    test_step("ReadFile/WriteFile with NULL buffers fail, queue nothing");
    ov_init(&ov);
    SetLastError(0);
    CHECK(!ReadFile(g_file, NULL, 10, NULL, &ov));
    CHECK_ERR2(ERROR_NOACCESS, ERROR_INVALID_PARAMETER);
    ov_init(&ov);
    SetLastError(0);
    CHECK(!WriteFile(g_file, NULL, 10, NULL, &ov));
    CHECK_ERR2(ERROR_NOACCESS, ERROR_INVALID_PARAMETER);
    EXPECT_NO_PACKET(g_port, 20);

    test_step("ReadFile/WriteFile on an overlapped handle without an OVERLAPPED: no packet");
    {
        /*
         * Windows documents this as a misuse ("can incorrectly report that the operation is
         * complete"); NtReadFile refuses it with STATUS_INVALID_PARAMETER on files. Either a
         * refusal or a synchronous transfer is accepted, never a packet.
         */
        DWORD n = 0xfeed;
        SetLastError(0);
        if (WriteFile(g_file, "sync", 4, &n, NULL)) {
            CHECK_EQ(n, 4);
        } else {
            CHECK_ERR(ERROR_INVALID_PARAMETER);
        }
        n = 0xfeed;
        SetLastError(0);
        if (ReadFile(g_file, buf, sizeof buf, &n, NULL)) {
            CHECK(n <= sizeof buf);
        } else {
            CHECK_ERR(ERROR_INVALID_PARAMETER);
        }
        EXPECT_NO_PACKET(g_port, 20);
    }

    test_step("zero-length ReadFile and WriteFile succeed with 0 bytes");
    ov_init(&ov);
    CHECK_STARTED(WriteFile(g_file, buf, 0, NULL, &ov));
    EXPECT_PACKET(g_port, 0xf, 0, &ov);
    ov_init(&ov);
    CHECK_STARTED(ReadFile(g_file, buf, 0, NULL, &ov));
    EXPECT_PACKET(g_port, 0xf, 0, &ov);

    test_step("a socket given to ReadFile/WriteFile works (a SOCKET is a HANDLE)");
    {
        SOCKET c, s;
        tcp_pair(&c, &s);
        associate(HSOCK(s), g_port, 0x50);
        associate(HSOCK(c), g_port, 0x51);
        ov_init(&ov);
        CHECK_STARTED(WriteFile(HSOCK(c), "abc", 3, NULL, &ov));
        EXPECT_PACKET(g_port, 0x51, 3, &ov);
        ov_init(&ov);
        CHECK_STARTED(ReadFile(HSOCK(s), buf, sizeof buf, NULL, &ov));
        EXPECT_PACKET(g_port, 0x50, 3, &ov);
        CHECK(memcmp(buf, "abc", 3) == 0);
        CHECK_EQ(closesocket(c), 0);
        CHECK_EQ(closesocket(s), 0);
    }
}

static int routine_calls;

static void completion_routine(DWORD err, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    (void)err;
    (void)bytes;
    (void)ov;
    (void)flags;
    routine_calls++;
}

static void bad_arguments_winsock(void)
{
    SOCKET c, s;
    char buf[16];
    WSABUF b, nullbuf;
    OVERLAPPED ov;
    DWORD n = 0, flags = 0;

    tcp_pair(&c, &s);
    associate(HSOCK(c), g_port, 0x60);
    associate(HSOCK(s), g_port, 0x61);
    b.buf = buf;
    b.len = sizeof buf;
    nullbuf.buf = NULL;
    nullbuf.len = 10;

    test_step("WSARecv/WSASend with NULL buffers or NULL flags: WSAEFAULT");
#define FAULT(call)                                                                     \
    do {                                                                                \
        ov_init(&ov);                                                                   \
        WSASetLastError(0);                                                             \
        CHECK_EQ((call), SOCKET_ERROR);                                                 \
        CHECK_WSAERR(WSAEFAULT);                                                        \
    } while (0)
    FAULT(WSARecv(s, NULL, 1, &n, &flags, &ov, NULL));
    FAULT(WSARecv(s, &nullbuf, 1, &n, &flags, &ov, NULL));
    FAULT(WSARecv(s, &b, 1, &n, NULL, &ov, NULL));
    FAULT(WSASend(c, NULL, 1, &n, 0, &ov, NULL));
    FAULT(WSASend(c, &nullbuf, 1, &n, 0, &ov, NULL));
    {
        SOCKADDR_STORAGE from;
        FAULT(WSARecvFrom(s, &b, 1, &n, &flags, (struct sockaddr *)&from, NULL, &ov, NULL));
    }
    EXPECT_NO_PACKET(g_port, 20);

    test_step("NULL byte counts are fine with an OVERLAPPED");
    ov_init(&ov);
    flags = 0;
    CHECK_WSA_STARTED(WSARecv(s, &b, 1, NULL, &flags, &ov, NULL));
    {
        OVERLAPPED sov;
        char msg[] = "xyz";
        WSABUF sb;
        int i;
        sb.buf = msg;
        sb.len = 3;
        ov_init(&sov);
        CHECK_WSA_STARTED(WSASend(c, &sb, 1, NULL, 0, &sov, NULL));
        for (i = 0; i < 2; i++) {
            DWORD bytes = 0;
            ULONG_PTR key = 0;
            LPOVERLAPPED got = NULL;
            CHECK(GetQueuedCompletionStatus(g_port, &bytes, &key, &got, PACKET_WAIT_MS));
            CHECK(got == &ov || got == &sov);
            CHECK_EQ(bytes, 3);
        }
    }

    test_step("a completion routine is not supported: WSAEOPNOTSUPP, nothing queued");
    ov_init(&ov);
    WSASetLastError(0);
    CHECK_EQ(WSARecv(s, &b, 1, &n, &flags, &ov, completion_routine), SOCKET_ERROR);
    CHECK_WSAERR(WSAEOPNOTSUPP);
    ov_init(&ov);
    WSASetLastError(0);
    CHECK_EQ(WSASend(c, &b, 1, &n, 0, &ov, completion_routine), SOCKET_ERROR);
    CHECK_WSAERR(WSAEOPNOTSUPP);
    EXPECT_NO_PACKET(g_port, 20);
    CHECK_EQ(routine_calls, 0);

    test_step("WSASendTo with a too short address: WSAEFAULT");
    {
        SOCKET u = new_socket(SOCK_DGRAM);
        struct sockaddr_in to;
        associate(HSOCK(u), g_port, 0x62);
        loopback_addr(&to, 9);
        FAULT(WSASendTo(u, &b, 1, &n, 0, (struct sockaddr *)&to, 4, &ov, NULL));
        CHECK_EQ(closesocket(u), 0);
    }
#undef FAULT

    test_step("WSAIoctl: unknown GUID, short buffers, NULL pointers, unknown code");
    {
        GUID g = WSAID_ACCEPTEX;
        GUID unknown = {0x12345678, 0x1234, 0x5678, {1, 2, 3, 4, 5, 6, 7, 8}};
        void *fn = NULL;
        WSASetLastError(0);
        CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &unknown, sizeof unknown, &fn,
                          sizeof fn, &n, NULL, NULL),
                 SOCKET_ERROR);
        CHECK_WSAERR2(WSAEINVAL, WSAEOPNOTSUPP);
        WSASetLastError(0);
        CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, sizeof g, &fn, 4, &n, NULL,
                          NULL),
                 SOCKET_ERROR);
        CHECK_WSAERR(WSAEFAULT);
        WSASetLastError(0);
        CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, sizeof g, NULL, sizeof fn,
                          &n, NULL, NULL),
                 SOCKET_ERROR);
        CHECK_WSAERR(WSAEFAULT);
        WSASetLastError(0);
        CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, NULL, sizeof g, &fn, sizeof fn,
                          &n, NULL, NULL),
                 SOCKET_ERROR);
        CHECK_WSAERR2(WSAEFAULT, WSAEINVAL);
        WSASetLastError(0);
        CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, 4, &fn, sizeof fn, &n, NULL,
                          NULL),
                 SOCKET_ERROR);
        CHECK_WSAERR2(WSAEFAULT, WSAEINVAL);
        /* A NULL lpcbBytesReturned: refused with WSAEFAULT or tolerated, never a crash. */
        WSASetLastError(0);
        if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, sizeof g, &fn, sizeof fn, NULL,
                     NULL, NULL) != 0) {
            CHECK_WSAERR(WSAEFAULT);
        }
        WSASetLastError(0);
        CHECK_EQ(WSAIoctl(s, 0x12345678u, &g, sizeof g, &fn, sizeof fn, &n, NULL, NULL),
                 SOCKET_ERROR);
        CHECK_WSAERR2(WSAEINVAL, WSAEOPNOTSUPP);
    }

    test_step("AcceptEx: unassociated or not-listening listener, bound accept socket, bad sizes");
    {
        struct sockaddr_in la;
        SOCKET l = tcp_listener(&la);
        SOCKET a = tcp_socket();
        char abuf[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!AcceptEx(l, a, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
        CHECK_WSAERR(WSAEINVAL);
        associate(HSOCK(l), g_port, 0x63);
        {
            SOCKET nl = tcp_socket();
            associate(HSOCK(nl), g_port, 0x64);
            bind_loopback(nl, NULL);
            ov_init(&ov);
            WSASetLastError(0);
            CHECK(!AcceptEx(nl, a, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
            CHECK_WSAERR(WSAEINVAL);
            CHECK_EQ(closesocket(nl), 0);
        }
        {
            SOCKET bound = tcp_socket();
            bind_loopback(bound, NULL);
            ov_init(&ov);
            WSASetLastError(0);
            CHECK(!AcceptEx(l, bound, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
            CHECK_WSAERR(WSAEINVAL);
            CHECK_EQ(closesocket(bound), 0);
        }
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!AcceptEx(l, a, abuf, 0, 8, ADDR_LEN, &n, &ov));
        CHECK_WSAERR2(WSAEINVAL, WSAEFAULT);
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!AcceptEx(l, a, abuf, 0, ADDR_LEN, (DWORD)sizeof(struct sockaddr_in), &n, &ov));
        CHECK_WSAERR2(WSAEINVAL, WSAEFAULT);
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!AcceptEx(l, a, NULL, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
        CHECK_WSAERR2(WSAEFAULT, WSAEINVAL);
        WSASetLastError(0);
        CHECK(!AcceptEx(l, a, abuf, 0, ADDR_LEN, ADDR_LEN, &n, NULL));
        CHECK_WSAERR3(WSAEINVAL, WSAEFAULT, WSA_INVALID_PARAMETER);
        WSASetLastError(0);
        CHECK(!AcceptEx(l, l, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
        CHECK_WSAERR(WSAEINVAL);
        EXPECT_NO_PACKET(g_port, 20);
        /* The failed calls left the listener usable. */
        ov_init(&ov);
        CHECK_STARTED(AcceptEx(l, a, abuf, 0, ADDR_LEN, ADDR_LEN, &n, &ov));
        {
            SOCKET cc = tcp_socket();
            connect_to(cc, &la);
            EXPECT_PACKET(g_port, 0x63, 0, &ov);
            CHECK_EQ(closesocket(cc), 0);
        }
        CHECK_EQ(closesocket(a), 0);
        CHECK_EQ(closesocket(l), 0);
    }

    test_step("ConnectEx: short or NULL address, no OVERLAPPED, unassociated socket");
    {
        struct sockaddr_in la;
        SOCKET l = tcp_listener(&la);
        SOCKET k = tcp_socket();
        bind_loopback(k, NULL);
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!ConnectEx(k, (struct sockaddr *)&la, sizeof la, NULL, 0, NULL, &ov));
        CHECK_WSAERR(WSAEINVAL);
        associate(HSOCK(k), g_port, 0x65);
        WSASetLastError(0);
        CHECK(!ConnectEx(k, (struct sockaddr *)&la, 4, NULL, 0, NULL, &ov));
        CHECK_WSAERR(WSAEFAULT);
        WSASetLastError(0);
        CHECK(!ConnectEx(k, NULL, sizeof la, NULL, 0, NULL, &ov));
        CHECK_WSAERR(WSAEFAULT);
        WSASetLastError(0);
        CHECK(!ConnectEx(k, (struct sockaddr *)&la, sizeof la, NULL, 0, NULL, NULL));
        CHECK_WSAERR3(WSAEINVAL, WSAEFAULT, WSA_INVALID_PARAMETER);
        WSASetLastError(0);
        CHECK(!ConnectEx(k, (struct sockaddr *)&la, sizeof la, NULL, 5, NULL, &ov));
        CHECK_WSAERR2(WSAEFAULT, WSAEINVAL);
        EXPECT_NO_PACKET(g_port, 20);
        CHECK_EQ(closesocket(k), 0);
        CHECK_EQ(closesocket(l), 0);
    }

    test_step("DisconnectEx: bad flags or reserved value: WSAEINVAL");
    ov_init(&ov);
    WSASetLastError(0);
    CHECK(!DisconnectEx(c, &ov, 0x80, 0));
    CHECK_WSAERR(WSAEINVAL);
    WSASetLastError(0);
    CHECK(!DisconnectEx(c, &ov, 0, 1));
    CHECK_WSAERR(WSAEINVAL);
    EXPECT_NO_PACKET(g_port, 20);

    test_step("WSASocketW with a bad family, type or protocol");
    WSASetLastError(0);
    CHECK(WSASocketW(12345, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED) == INVALID_SOCKET);
    CHECK_WSAERR(WSAEAFNOSUPPORT);
    WSASetLastError(0);
    CHECK(WSASocketW(AF_INET, 12345, 0, NULL, 0, WSA_FLAG_OVERLAPPED) == INVALID_SOCKET);
    CHECK_WSAERR2(WSAESOCKTNOSUPPORT, WSAEINVAL);
    WSASetLastError(0);
    CHECK(WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED) ==
          INVALID_SOCKET);
    CHECK_WSAERR2(WSAEPROTONOSUPPORT, WSAEPROTOTYPE);

    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

int main(void)
{
    test_init("errors");
    before_startup();
    wsa_startup();
    last_error();
    last_error_per_thread();

    g_port = new_port(0);
    temp_path(g_path, sizeof g_path, "file");
    g_file = CreateFileA(g_path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW,
                         FILE_FLAG_OVERLAPPED, NULL);
    CHECK(g_file != INVALID_HANDLE_VALUE);
    associate(g_file, g_port, 0xf);

    bad_ports();
    bad_sockets();
    bad_files();
    bad_arguments_port();
    bad_arguments_files();
    bad_arguments_winsock();

    EXPECT_NO_PACKET(g_port, 0);
    CHECK(CloseHandle(g_file));
    unlink(g_path);
    CHECK(CloseHandle(g_port));
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
