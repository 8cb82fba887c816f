/*
 * echo_server.c: a TCP echo server on an I/O completion port, written for Windows.
 *
 * This is the classic Winsock IOCP server: AcceptEx posted ahead on the listening socket, worker
 * threads calling GetQueuedCompletionStatus, WSARecv and WSASend on every connection, one
 * per-socket context as the completion key and one per-I/O context around each OVERLAPPED. On
 * Windows the file starts with
 *
 *     #include <winsock2.h>
 *     #include <mswsock.h>
 *     #include <ws2tcpip.h>
 *     #include <windows.h>
 *     #pragma comment(lib, "ws2_32.lib")
 *
 * and on Linux the one include below replaces them; nothing else changes. Build and run:
 *
 *     cc echo_server.c $(pkg-config --cflags --libs iocport) -o echo_server
 *     ./echo_server 0
 *
 * Usage: echo_server PORT [THREADS [ACCEPTS]]
 *   PORT     the port to listen on at 127.0.0.1; 0 picks a free one
 *   THREADS  worker threads calling GetQueuedCompletionStatus (default: two per processor,
 *            from GetSystemInfo)
 *   ACCEPTS  AcceptEx operations kept posted on the listening socket (default 64)
 *
 * It prints `listening on 127.0.0.1:PORT` once it accepts connections, serves until Ctrl-C
 * (SetConsoleCtrlHandler), a line or the end of its standard input, then stops its workers
 * (CreateThread, joined with WaitForMultipleObjects), closes every socket and exits with 0.
 */
#include <iocport/windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IO_BUFFER_SIZE 4096
#define THREADS_PER_PROCESSOR 2
#define DEFAULT_ACCEPTS 64
#define MAX_THREADS 256
/* What AcceptEx needs per address: the largest sockaddr plus 16 bytes. */
#define ACCEPT_ADDRESS_LENGTH ((DWORD)(sizeof(SOCKADDR_STORAGE) + 16))
/* How long the shutdown waits for the cancelled operations of closed sockets to complete. */
#define DRAIN_TIMEOUT_MS 5000

typedef enum { OP_ACCEPT = 1, OP_RECV, OP_SEND } OPERATION;

/* One operation in flight. The OVERLAPPED comes first, so the LPOVERLAPPED a completion hands back
 * is the address of its IO_CONTEXT. */
typedef struct {
    OVERLAPPED ov;
    int op;              /* an OPERATION */
    SOCKET s;            /* OP_ACCEPT: the socket the connection is accepted into */
    BOOL posted;         /* OP_ACCEPT: an AcceptEx is in flight */
    WSABUF wsabuf;       /* what WSARecv fills or WSASend sends */
    DWORD length;        /* OP_SEND: the bytes received, to echo */
    DWORD sent;          /* OP_SEND: how many of them are sent */
    char buf[IO_BUFFER_SIZE];
} IO_CONTEXT;

/* One connection: the completion key of its socket. It has one operation in flight at a time (a
 * receive, or the send of what that receive got), so one IO_CONTEXT serves it. */
typedef struct SOCKET_CONTEXT {
    SOCKET s;
    SOCKADDR_STORAGE peer;
    IO_CONTEXT io;
    struct SOCKET_CONTEXT *prev, *next; /* the server's list of open connections */
} SOCKET_CONTEXT;

typedef struct {
    HANDLE port;
    SOCKET listener;
    LPFN_ACCEPTEX lpfnAcceptEx;
    LPFN_GETACCEPTEXSOCKADDRS lpfnGetAcceptExSockaddrs;
    IO_CONTEXT *accepts;
    int accept_count;
    CRITICAL_SECTION lock;    /* guards connections */
    SOCKET_CONTEXT *connections;
    volatile LONG accepted;   /* connections accepted, counted by the workers */
} SERVER;

/* Set by Ctrl-C, Ctrl-Break or the standard input's reader: the server stops. */
static HANDLE g_stop_event = NULL;

/* The completion key of the listening socket; a key of 0 tells a worker to exit. */
#define KEY_LISTENER ((ULONG_PTR)1)
#define KEY_EXIT ((ULONG_PTR)0)

/* Prints "FUNCTION failed: CODE (the system's text for it)". */
static void print_error(const char *function, DWORD error)
{
    char text[256];
    DWORD length = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                                  error, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), text,
                                  sizeof(text), NULL);
    /* The text ends with "\r\n". */
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r')) {
        text[--length] = '\0';
    }
    fprintf(stderr, "echo_server: %s failed: %lu (%s)\n", function, (unsigned long)error,
            length > 0 ? text : "no text");
}

static void print_wsa_error(const char *function)
{
    print_error(function, (DWORD)WSAGetLastError());
}

static void print_last_error(const char *function)
{
    print_error(function, GetLastError());
}

/* Errors that only say the peer went away, or that the socket was closed under the operation. */
static BOOL is_disconnect(int error)
{
    return error == WSAECONNRESET || error == WSAECONNABORTED || error == WSAENETRESET ||
           error == WSAESHUTDOWN || error == WSAENOTCONN || error == WSA_OPERATION_ABORTED ||
           error == WSAEDISCON;
}

static void format_address(const SOCKADDR_STORAGE *address, char *text, size_t size)
{
    const SOCKADDR_IN *in = (const SOCKADDR_IN *)address;
    if (address->ss_family == AF_INET && inet_ntop(AF_INET, &in->sin_addr, text, size) != NULL) {
        size_t used = strlen(text);
        snprintf(text + used, size - used, ":%u", (unsigned)ntohs(in->sin_port));
    } else {
        snprintf(text, size, "(address family %d)", (int)address->ss_family);
    }
}

/* ---- Accepting ---------------------------------------------------------------------------- */

/* Posts an AcceptEx on the listening socket into a new socket. */
static BOOL post_accept(SERVER *server, IO_CONTEXT *io)
{
    DWORD received = 0;

    io->s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (io->s == INVALID_SOCKET) {
        print_wsa_error("WSASocketW");
        return FALSE;
    }
    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_ACCEPT;
    io->posted = TRUE;
    /* No data is waited for (dwReceiveDataLength 0): the accept completes on connection. */
    if (!server->lpfnAcceptEx(server->listener, io->s, io->buf, 0, ACCEPT_ADDRESS_LENGTH,
                              ACCEPT_ADDRESS_LENGTH, &received, &io->ov)) {
        if (WSAGetLastError() != WSA_IO_PENDING) {
            print_wsa_error("AcceptEx");
            io->posted = FALSE;
            closesocket(io->s);
            io->s = INVALID_SOCKET;
            return FALSE;
        }
    }
    /* Pending or done at once: either way the completion comes through the port. */
    return TRUE;
}

/* ---- Connections -------------------------------------------------------------------------- */

static void add_connection(SERVER *server, SOCKET_CONTEXT *conn)
{
    EnterCriticalSection(&server->lock);
    conn->prev = NULL;
    conn->next = server->connections;
    if (server->connections != NULL) {
        server->connections->prev = conn;
    }
    server->connections = conn;
    LeaveCriticalSection(&server->lock);
}

static void close_connection(SERVER *server, SOCKET_CONTEXT *conn)
{
    EnterCriticalSection(&server->lock);
    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        server->connections = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    LeaveCriticalSection(&server->lock);
    if (closesocket(conn->s) == SOCKET_ERROR) {
        print_wsa_error("closesocket");
    }
    HeapFree(GetProcessHeap(), 0, conn);
}

/* Reports an operation that failed at once (not WSA_IO_PENDING); a disconnect is not reported. */
static void report_failure(const SOCKET_CONTEXT *conn, const char *function)
{
    int error = WSAGetLastError();
    if (!is_disconnect(error)) {
        char peer[64];
        format_address(&conn->peer, peer, sizeof(peer));
        char what[128];
        snprintf(what, sizeof(what), "%s (%s)", function, peer);
        print_error(what, (DWORD)error);
    }
}

/* Posts a receive of up to IO_BUFFER_SIZE bytes. */
static BOOL post_recv(SOCKET_CONTEXT *conn)
{
    IO_CONTEXT *io = &conn->io;
    DWORD flags = 0;

    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_RECV;
    io->wsabuf.buf = io->buf;
    io->wsabuf.len = sizeof(io->buf);
    /* With an OVERLAPPED the byte count is left NULL: the completion carries it. */
    if (WSARecv(conn->s, &io->wsabuf, 1, NULL, &flags, &io->ov, NULL) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING) {
        report_failure(conn, "WSARecv");
        return FALSE;
    }
    return TRUE;
}

/* Posts a send of the bytes received that are not sent yet. */
static BOOL post_send(SOCKET_CONTEXT *conn)
{
    IO_CONTEXT *io = &conn->io;

    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_SEND;
    io->wsabuf.buf = io->buf + io->sent;
    io->wsabuf.len = io->length - io->sent;
    if (WSASend(conn->s, &io->wsabuf, 1, NULL, 0, &io->ov, NULL) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING) {
        report_failure(conn, "WSASend");
        return FALSE;
    }
    return TRUE;
}

/* An AcceptEx completed: the new connection joins the port and starts receiving, and the
 * listening socket gets another AcceptEx in its place. */
static void on_accept(SERVER *server, IO_CONTEXT *io, BOOL ok)
{
    SOCKET s = io->s;
    SOCKET_CONTEXT *conn = NULL;
    SOCKADDR *local = NULL, *remote = NULL;
    int local_length = 0, remote_length = 0;

    io->s = INVALID_SOCKET;
    io->posted = FALSE;
    if (!ok) {
        /* The Winsock error of the accept; a client that gave up first is not this server's. */
        DWORD transferred = 0, flags = 0;
        if (!WSAGetOverlappedResult(server->listener, &io->ov, &transferred, FALSE, &flags) &&
            !is_disconnect(WSAGetLastError())) {
            print_wsa_error("AcceptEx (completion)");
        }
        closesocket(s);
    } else if (setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&server->listener,
                          sizeof(server->listener)) == SOCKET_ERROR) {
        print_wsa_error("setsockopt(SO_UPDATE_ACCEPT_CONTEXT)");
        closesocket(s);
    } else if ((conn = (SOCKET_CONTEXT *)HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY,
                                                   sizeof(*conn))) == NULL) {
        fprintf(stderr, "echo_server: out of memory for a connection\n");
        closesocket(s);
    } else {
        conn->s = s;
        InterlockedIncrement(&server->accepted);
        server->lpfnGetAcceptExSockaddrs(io->buf, 0, ACCEPT_ADDRESS_LENGTH, ACCEPT_ADDRESS_LENGTH,
                                         &local, &local_length, &remote, &remote_length);
        if (remote != NULL && remote_length > 0 &&
            (size_t)remote_length <= sizeof(conn->peer)) {
            CopyMemory(&conn->peer, remote, (size_t)remote_length);
        }
        add_connection(server, conn);
        if (CreateIoCompletionPort((HANDLE)s, server->port, (ULONG_PTR)conn, 0) == NULL) {
            print_last_error("CreateIoCompletionPort (connection)");
            close_connection(server, conn);
        } else if (!post_recv(conn)) {
            close_connection(server, conn);
        }
    }
    if (!post_accept(server, io)) {
        fprintf(stderr, "echo_server: one AcceptEx fewer is posted\n");
    }
}

/* A WSARecv or WSASend of `conn` completed with `bytes` transferred. */
static void on_transfer(SERVER *server, SOCKET_CONTEXT *conn, BOOL ok, DWORD bytes)
{
    IO_CONTEXT *io = &conn->io;
    BOOL posted = FALSE;

    if (!ok) {
        /* The Winsock error of the operation (GetQueuedCompletionStatus gave the system one). */
        DWORD transferred = 0, flags = 0;
        if (!WSAGetOverlappedResult(conn->s, &io->ov, &transferred, FALSE, &flags)) {
            report_failure(conn, io->op == OP_RECV ? "WSARecv (completion)"
                                                   : "WSASend (completion)");
        }
    } else if (io->op == OP_RECV) {
        if (bytes > 0) {
            io->length = bytes;
            io->sent = 0;
            posted = post_send(conn);
        }
        /* 0 bytes: the client closed its side. */
    } else {
        io->sent += bytes;
        if (bytes == 0) {
            fprintf(stderr, "echo_server: WSASend completed with 0 bytes\n");
        } else if (io->sent < io->length) {
            posted = post_send(conn); /* a partial send: the rest */
        } else {
            posted = post_recv(conn);
        }
    }
    if (!posted) {
        close_connection(server, conn);
    }
}

static DWORD WINAPI worker(LPVOID arg)
{
    SERVER *server = (SERVER *)arg;

    for (;;) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(server->port, &bytes, &key, &ov, INFINITE);

        if (ov == NULL) {
            if (!ok) {
                /* No packet was dequeued: the port itself failed. */
                print_last_error("GetQueuedCompletionStatus");
                return 1;
            }
            if (key == KEY_EXIT) {
                return 0;
            }
            continue;
        }
        IO_CONTEXT *io = (IO_CONTEXT *)ov;
        if (key == KEY_LISTENER) {
            on_accept(server, io, ok);
        } else {
            on_transfer(server, (SOCKET_CONTEXT *)key, ok, bytes);
        }
    }
}

/* ---- Setup and shutdown ------------------------------------------------------------------- */

static BOOL get_extension(SOCKET s, GUID guid, void *function, DWORD size, const char *name)
{
    DWORD returned = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof(guid), function, size,
                 &returned, NULL, NULL) == SOCKET_ERROR) {
        fprintf(stderr,
                "echo_server: WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER, %s) failed: %d\n",
                name, WSAGetLastError());
        return FALSE;
    }
    return TRUE;
}

static BOOL parse_count(const char *text, long min, long max, long *value)
{
    char *end = NULL;
    long n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || n < min || n > max) {
        return FALSE;
    }
    *value = n;
    return TRUE;
}

/* Closes the sockets with operations in flight and waits until each of those operations has
 * completed through the port (cancelled, usually): only then may their contexts be freed.
 * Returns FALSE when some did not complete in time. */
static BOOL close_and_drain(SERVER *server)
{
    int outstanding = 0;

    if (closesocket(server->listener) == SOCKET_ERROR) {
        print_wsa_error("closesocket (listener)");
    }
    server->listener = INVALID_SOCKET;
    for (int i = 0; i < server->accept_count; i++) {
        IO_CONTEXT *io = &server->accepts[i];
        if (io->posted) {
            outstanding++;
            closesocket(io->s);
        }
    }
    /* The workers are gone: each listed connection has its one operation in flight. */
    for (SOCKET_CONTEXT *conn = server->connections; conn != NULL; conn = conn->next) {
        outstanding++;
        closesocket(conn->s);
    }
    while (outstanding > 0) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(server->port, &bytes, &key, &ov, DRAIN_TIMEOUT_MS);
        if (ov != NULL) {
            outstanding--;
        } else if (!ok) {
            if (GetLastError() == WAIT_TIMEOUT) {
                fprintf(stderr, "echo_server: %d operation(s) did not complete after closesocket\n",
                        outstanding);
            } else {
                print_last_error("GetQueuedCompletionStatus (shutdown)");
            }
            return FALSE;
        }
        /* else: a stop packet nobody took (a worker that failed); nothing to count. */
    }
    return TRUE;
}

/* Ctrl-C and Ctrl-Break stop the server; other events get the default handling. */
static BOOL WINAPI on_console_event(DWORD event)
{
    if (event == CTRL_C_EVENT || event == CTRL_BREAK_EVENT) {
        SetEvent(g_stop_event);
        return TRUE;
    }
    return FALSE;
}

/* Stops the server when a line or the end of the standard input comes. */
static DWORD WINAPI read_input(LPVOID arg)
{
    char line[256];
    (void)arg;
    if (fgets(line, sizeof(line), stdin) == NULL && ferror(stdin)) {
        fprintf(stderr, "echo_server: reading the standard input failed\n");
    }
    SetEvent(g_stop_event);
    return 0;
}

/* Waits for every thread in `threads` (in groups of MAXIMUM_WAIT_OBJECTS); FALSE if one of them
 * ended with a non-zero exit code. Closes their handles. */
static BOOL join_threads(HANDLE *threads, int count)
{
    BOOL ok = TRUE;
    for (int first = 0; first < count; first += MAXIMUM_WAIT_OBJECTS) {
        DWORD group = (DWORD)min(count - first, (int)MAXIMUM_WAIT_OBJECTS);
        if (WaitForMultipleObjects(group, &threads[first], TRUE, INFINITE) == WAIT_FAILED) {
            print_last_error("WaitForMultipleObjects");
            ok = FALSE;
        }
    }
    for (int i = 0; i < count; i++) {
        DWORD code = 0;
        if (!GetExitCodeThread(threads[i], &code) || code != 0) {
            ok = FALSE;
        }
        CloseHandle(threads[i]);
    }
    return ok;
}

int main(int argc, char **argv)
{
    WSADATA wsa;
    SERVER server;
    SOCKADDR_IN address;
    int address_length = sizeof(address);
    GUID acceptex_guid = WSAID_ACCEPTEX;
    GUID sockaddrs_guid = WSAID_GETACCEPTEXSOCKADDRS;
    SYSTEM_INFO system;
    HANDLE threads[MAX_THREADS];
    HANDLE reader = NULL;
    long port_number = 0, thread_count, accept_count = DEFAULT_ACCEPTS;
    int started = 0, posted = 0, status = 1;

    GetSystemInfo(&system);
    thread_count = min((long)system.dwNumberOfProcessors * THREADS_PER_PROCESSOR, MAX_THREADS);

    if (argc < 2 || argc > 4 || !parse_count(argv[1], 0, 65535, &port_number) ||
        (argc > 2 && !parse_count(argv[2], 1, MAX_THREADS, &thread_count)) ||
        (argc > 3 && !parse_count(argv[3], 1, 4096, &accept_count))) {
        fprintf(stderr, "usage: %s PORT [THREADS (1-%d) [ACCEPTS (1-4096)]]\n",
                argc > 0 ? argv[0] : "echo_server", MAX_THREADS);
        return 2;
    }

    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
        /* WSAStartup returns its error; WSAGetLastError is not usable before it succeeds. */
        fprintf(stderr, "echo_server: WSAStartup failed\n");
        return 1;
    }
    memset(&server, 0, sizeof(server));
    server.listener = INVALID_SOCKET;
    InitializeCriticalSectionAndSpinCount(&server.lock, 4000);
    g_stop_event = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (g_stop_event == NULL || !SetConsoleCtrlHandler(on_console_event, TRUE)) {
        print_last_error(g_stop_event == NULL ? "CreateEvent" : "SetConsoleCtrlHandler");
        goto cleanup;
    }

    server.port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (server.port == NULL) {
        print_last_error("CreateIoCompletionPort");
        goto cleanup;
    }

    server.listener = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (server.listener == INVALID_SOCKET) {
        print_wsa_error("WSASocketW");
        goto cleanup;
    }
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port_number);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(server.listener, (SOCKADDR *)&address, sizeof(address)) == SOCKET_ERROR) {
        print_wsa_error("bind");
        goto cleanup;
    }
    if (listen(server.listener, SOMAXCONN) == SOCKET_ERROR) {
        print_wsa_error("listen");
        goto cleanup;
    }
    if (getsockname(server.listener, (SOCKADDR *)&address, &address_length) == SOCKET_ERROR) {
        print_wsa_error("getsockname");
        goto cleanup;
    }
    if (CreateIoCompletionPort((HANDLE)server.listener, server.port, KEY_LISTENER, 0) == NULL) {
        print_last_error("CreateIoCompletionPort (listener)");
        goto cleanup;
    }
    if (!get_extension(server.listener, acceptex_guid, &server.lpfnAcceptEx,
                       sizeof(server.lpfnAcceptEx), "WSAID_ACCEPTEX") ||
        !get_extension(server.listener, sockaddrs_guid, &server.lpfnGetAcceptExSockaddrs,
                       sizeof(server.lpfnGetAcceptExSockaddrs), "WSAID_GETACCEPTEXSOCKADDRS")) {
        goto cleanup;
    }

    server.accepts = (IO_CONTEXT *)calloc((size_t)accept_count, sizeof(IO_CONTEXT));
    if (server.accepts == NULL) {
        fprintf(stderr, "echo_server: out of memory for %ld accept contexts\n", accept_count);
        goto cleanup;
    }
    server.accept_count = (int)accept_count;
    for (int i = 0; i < server.accept_count; i++) {
        server.accepts[i].s = INVALID_SOCKET;
        if (post_accept(&server, &server.accepts[i])) {
            posted++;
        }
    }
    if (posted == 0) {
        goto cleanup;
    }

    for (; started < thread_count; started++) {
        threads[started] = CreateThread(NULL, 0, worker, &server, 0, NULL);
        if (threads[started] == NULL) {
            print_last_error("CreateThread");
            break;
        }
    }
    if (started == thread_count) {
        printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(address.sin_port));
        fflush(stdout);
        /* Serve until Ctrl-C, a line or the end of the input. The reader is left blocked in
         * fgets when Ctrl-C stops the server: the process ends with main. */
        reader = CreateThread(NULL, 0, read_input, NULL, 0, NULL);
        if (reader == NULL) {
            print_last_error("CreateThread (input)");
        } else if (WaitForSingleObject(g_stop_event, INFINITE) != WAIT_OBJECT_0) {
            print_last_error("WaitForSingleObject");
        } else {
            status = 0;
        }
    }

    for (int i = 0; i < started; i++) {
        if (!PostQueuedCompletionStatus(server.port, 0, KEY_EXIT, NULL)) {
            print_last_error("PostQueuedCompletionStatus");
            status = 1;
        }
    }
    if (!join_threads(threads, started)) {
        status = 1;
    }
    if (status == 0) {
        printf("stopped after %ld connection(s)\n", (long)InterlockedCompareExchange(
                                                          &server.accepted, 0, 0));
    }

cleanup:
    if (server.listener != INVALID_SOCKET) {
        if (!close_and_drain(&server)) {
            /* Operations may still write into their contexts: leave them allocated. */
            fprintf(stderr, "echo_server: stopped with operations in flight\n");
            return 1;
        }
    }
    while (server.connections != NULL) {
        SOCKET_CONTEXT *next = server.connections->next;
        HeapFree(GetProcessHeap(), 0, server.connections);
        server.connections = next;
    }
    free(server.accepts);
    if (server.port != NULL && !CloseHandle(server.port)) {
        print_last_error("CloseHandle");
        status = 1;
    }
    if (reader != NULL) {
        CloseHandle(reader);
    }
    if (g_stop_event != NULL) {
        SetConsoleCtrlHandler(on_console_event, FALSE);
        CloseHandle(g_stop_event);
    }
    DeleteCriticalSection(&server.lock);
    if (WSACleanup() == SOCKET_ERROR) {
        print_wsa_error("WSACleanup");
        status = 1;
    }
    return status;
}
