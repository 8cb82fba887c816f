/*
 * TransmitFile: a multi-MiB file over loopback TCP with an OVERLAPPED and a completion port (the
 * packet, the OVERLAPPED, the bytes the peer got); a range from Offset with a count; count 0 (the
 * rest of the file); starts at and past the end of the file; OffsetHigh (a sparse file with data
 * past 4 GiB); head and tail buffers, with and without a file; the synchronous form (from the file
 * position, which moves); bad arguments; a peer that resets (SIGPIPE has its default action when
 * the program starts, as in any C program: no signal kills it); CloseHandle of the file right
 * after the call; CancelIoEx of a transmission the peer does not read; CancelIoEx and closesocket
 * between two stages (the head sent, the file not started; the file sent, the tail not started:
 * no later stage starts, one packet, the bytes sent so far); a stage that cannot start (the
 * packet counts the earlier stages' bytes); CancelIoEx at varying moments (one packet, success
 * with every byte or ERROR_OPERATION_ABORTED); TF_DISCONNECT and TF_REUSE_SOCKET.
 */
#include "common.h"

#define FILE_SIZE ((size_t)(4u << 20) + 4321u)

static LPFN_TRANSMITFILE pTransmitFile;
static char *content;
static char file_path[256];
static ULONG_PTR next_key = 0x7f00;

/* ---- The peer's reader thread ------------------------------------------------------------ */

struct reader {
    SOCKET s;
    char *buf;
    size_t want;
    size_t got;
    /* Reads this many bytes, then resets the connection (0: never). */
    size_t reset_after;
    int eof;
    int done;
    /* Stops after this many bytes (0: never), sets `held` and waits for `go`. */
    size_t hold_at;
    int held;
    int go;
    pthread_t thread;
};

static void *read_loop(void *arg)
{
    struct reader *r = (struct reader *)arg;
    uint64_t end = now_ms() + 20000u;
    while (r->got < r->want && now_ms() < end) {
        struct pollfd p;
        ssize_t n;
        size_t room = r->want - r->got;
        if (r->reset_after && r->got >= r->reset_after) {
            break;
        }
        if (r->reset_after && room > r->reset_after - r->got) {
            room = r->reset_after - r->got;
        }
        if (r->hold_at && !ALOAD(&r->go)) {
            if (r->got >= r->hold_at) {
                ASTORE(&r->held, 1);
                sleep_ms(1);
                continue;
            }
            if (room > r->hold_at - r->got) {
                room = r->hold_at - r->got;
            }
        }
        p.fd = (int)r->s;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        n = sys_recv((int)r->s, r->buf + r->got, room, MSG_DONTWAIT);
        if (n == 0) {
            r->eof = 1;
            break;
        }
        if (n > 0) {
            r->got += (size_t)n;
        }
    }
    if (r->reset_after) {
        struct linger lg;
        lg.l_onoff = 1;
        lg.l_linger = 0;
        setsockopt(r->s, SOL_SOCKET, SO_LINGER, (char *)&lg, (int)sizeof lg);
        closesocket(r->s);
    }
    ASTORE(&r->done, 1);
    return NULL;
}

static void reader_start_held(struct reader *r, SOCKET s, size_t want, size_t reset_after,
                              size_t hold_at)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->want = want;
    r->reset_after = reset_after;
    r->hold_at = hold_at;
    r->buf = (char *)malloc(want ? want : 1);
    CHECK(r->buf != NULL);
    CHECK_EQ(pthread_create(&r->thread, NULL, read_loop, r), 0);
}

static void reader_start(struct reader *r, SOCKET s, size_t want, size_t reset_after)
{
    reader_start_held(r, s, want, reset_after, 0);
}

static void reader_join(struct reader *r)
{
    wait_flag(&r->done, 25000u);
    CHECK_EQ(pthread_join(r->thread, NULL), 0);
}

/* The peer got exactly `len` bytes: these, and nothing after them (yet). */
static void expect_received(struct reader *r, const char *expected, size_t len)
{
    char extra;
    CHECK_EQ(r->got, len);
    CHECK(memcmp(r->buf, expected, len) == 0);
    CHECK_EQ(sys_recv((int)r->s, &extra, 1, MSG_DONTWAIT), -1);
}

static void reader_free(struct reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* ---- Helpers ------------------------------------------------------------------------------ */

static HANDLE open_file(void)
{
    HANDLE f = CreateFileA(file_path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    return f;
}

/* A connected pair; the client is associated with `port` under a new key. */
static ULONG_PTR pair(HANDLE port, SOCKET *c, SOCKET *s)
{
    ULONG_PTR key = ++next_key;
    tcp_pair(c, s);
    associate(HSOCK(*c), port, key);
    return key;
}

static void set_offset(OVERLAPPED *ov, uint64_t off)
{
    ov->Offset = (DWORD)off;
    ov->OffsetHigh = (DWORD)(off >> 32);
}

/* Runs one overlapped TransmitFile and checks its one packet and what the peer received. */
static void transmit_ok(HANDLE port, HANDLE file, uint64_t off, DWORD count,
                        TRANSMIT_FILE_BUFFERS *bufs, const char *expected, size_t expected_len)
{
    SOCKET c, s;
    ULONG_PTR key = pair(port, &c, &s);
    struct reader r;
    OVERLAPPED ov;
    BOOL ok;
    reader_start(&r, s, expected_len, 0);
    ov_init(&ov);
    set_offset(&ov, off);
    SetLastError(0);
    ok = pTransmitFile(c, file, count, 0, &ov, bufs, 0);
    if (!ok) {
        CHECK_WSAERR(WSA_IO_PENDING);
        CHECK_ERR(ERROR_IO_PENDING);
    }
    /* Done at once or later: one packet either way, with every byte counted. */
    EXPECT_PACKET(port, key, expected_len, &ov);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
    CHECK_EQ(ov.InternalHigh, expected_len);
    reader_join(&r);
    expect_received(&r, expected, expected_len);
    EXPECT_NO_PACKET(port, 0);
    reader_free(&r);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

/* ---- Tests ---------------------------------------------------------------------------------- */

static void load(void)
{
    SOCKET s = tcp_socket();
    GUID guid = WSAID_TRANSMITFILE;
    void *fn = NULL;
    DWORD bytes = 0;
    test_step("WSAIoctl hands out TransmitFile");
    CHECK_EQ(WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &fn, sizeof fn,
                      &bytes, NULL, NULL),
             0);
    CHECK(fn != NULL);
    memcpy(&pTransmitFile, &fn, sizeof fn);
    CHECK(pTransmitFile == TransmitFile);
    CHECK_EQ(closesocket(s), 0);
}

static void make_file(void)
{
    int fd;
    size_t done = 0;
    content = (char *)malloc(FILE_SIZE);
    CHECK(content != NULL);
    fill_pattern(content, FILE_SIZE, 11);
    temp_path(file_path, sizeof file_path, "data");
    fd = open(file_path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    while (done < FILE_SIZE) {
        ssize_t n = write(fd, content + done, FILE_SIZE - done);
        CHECK(n > 0);
        done += (size_t)n;
    }
    CHECK_EQ(close(fd), 0);
}

static void whole_file(HANDLE port, HANDLE file)
{
    test_step("the whole file (count 0, offset 0): one packet of %zu bytes", FILE_SIZE);
    transmit_ok(port, file, 0, 0, NULL, content, FILE_SIZE);
    test_step("the whole file with its size as the count");
    transmit_ok(port, file, 0, (DWORD)FILE_SIZE, NULL, content, FILE_SIZE);
}

static void ranges(HANDLE port, HANDLE file)
{
    uint64_t off = (1u << 20) + 333u;
    test_step("a range: Offset %llu, count 1 MiB + 7", (unsigned long long)off);
    transmit_ok(port, file, off, (1u << 20) + 7u, NULL, content + off, (1u << 20) + 7u);
    test_step("count 0 from an offset: the rest of the file");
    transmit_ok(port, file, off, 0, NULL, content + off, FILE_SIZE - off);
    test_step("a count past the end of the file: what there is");
    transmit_ok(port, file, FILE_SIZE - 10, 100, NULL, content + FILE_SIZE - 10, 10);
    test_step("offset at the end of the file: success, 0 bytes");
    transmit_ok(port, file, FILE_SIZE, 0, NULL, content, 0);
    transmit_ok(port, file, FILE_SIZE, 50, NULL, content, 0);
    test_step("OffsetHigh 1 (4 GiB, past the end): success, 0 bytes");
    transmit_ok(port, file, (uint64_t)1 << 32, 0, NULL, content, 0);
    transmit_ok(port, file, ((uint64_t)1 << 32) + 5, 4096, NULL, content, 0);
}

static void offset_high(HANDLE port)
{
    char path[256];
    int fd;
    HANDLE f;
    uint64_t at = ((uint64_t)1 << 32) + 100u;
    size_t n = 65536, done = 0;

    test_step("OffsetHigh: a sparse file with data past 4 GiB, sent from Offset/OffsetHigh");
    temp_path(path, sizeof path, "sparse");
    fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    while (done < n) {
        ssize_t w = pwrite(fd, content + done, n - done, (off_t)(at + done));
        CHECK(w > 0);
        done += (size_t)w;
    }
    CHECK_EQ(close(fd), 0);
    f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                    FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    transmit_ok(port, f, at, (DWORD)n, NULL, content, n);
    transmit_ok(port, f, at + 1000, 0, NULL, content + 1000, n - 1000);
    test_step("a count of 0 from offset 0 of a file over 2,147,483,646 bytes: WSAEINVAL");
    {
        SOCKET c, s;
        OVERLAPPED ov;
        pair(port, &c, &s);
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!pTransmitFile(c, f, 0, 0, &ov, NULL, 0));
        CHECK_WSAERR(WSAEINVAL);
        EXPECT_NO_PACKET(port, 0);
        CHECK_EQ(closesocket(c), 0);
        CHECK_EQ(closesocket(s), 0);
    }
    CHECK(CloseHandle(f));
    unlink(path);
}

static void head_tail(HANDLE port, HANDLE file)
{
    static char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n";
    static char tail[] = "--the tail--";
    size_t hl = sizeof head - 1, tl = sizeof tail - 1, n = 70000, off = 12345;
    size_t total = hl + n + tl;
    char *expected = (char *)malloc(total + 1);
    TRANSMIT_FILE_BUFFERS b;
    CHECK(expected != NULL);
    memcpy(expected, head, hl);
    memcpy(expected + hl, content + off, n);
    memcpy(expected + hl + n, tail, tl);

    test_step("head, a range of the file, tail: one packet counting all three");
    b.Head = head;
    b.HeadLength = (DWORD)hl;
    b.Tail = tail;
    b.TailLength = (DWORD)tl;
    transmit_ok(port, file, off, (DWORD)n, &b, expected, total);

    test_step("head and tail around the whole file");
    free(expected);
    total = hl + FILE_SIZE + tl;
    expected = (char *)malloc(total);
    CHECK(expected != NULL);
    memcpy(expected, head, hl);
    memcpy(expected + hl, content, FILE_SIZE);
    memcpy(expected + hl + FILE_SIZE, tail, tl);
    transmit_ok(port, file, 0, 0, &b, expected, total);

    test_step("hFile NULL: only the buffers");
    memcpy(expected, head, hl);
    memcpy(expected + hl, tail, tl);
    transmit_ok(port, NULL, 0, 0, &b, expected, hl + tl);

    free(expected);
}

static void head_only(HANDLE port, HANDLE file)
{
    static char head[] = "H:";
    static char tail[] = ":T";
    char expected[2 + 100 + 2];
    TRANSMIT_FILE_BUFFERS b;
    test_step("a head before 100 file bytes, then a tail after them");
    memset(&b, 0, sizeof b);
    b.Head = head;
    b.HeadLength = 2;
    memcpy(expected, head, 2);
    memcpy(expected + 2, content, 100);
    transmit_ok(port, file, 0, 100, &b, expected, 102);
    memset(&b, 0, sizeof b);
    b.Tail = tail;
    b.TailLength = 2;
    memcpy(expected, content, 100);
    memcpy(expected + 100, tail, 2);
    transmit_ok(port, file, 0, 100, &b, expected, 102);
    test_step("hFile NULL and no buffers: success, 0 bytes");
    transmit_ok(port, NULL, 0, 0, NULL, content, 0);
}

static void synchronous(HANDLE port, HANDLE file)
{
    SOCKET c, s;
    struct reader r;
    int fd = (int)(uintptr_t)file;
    off_t pos = 777;
    static char head[] = "sync-head|";
    TRANSMIT_FILE_BUFFERS b;
    size_t n = (2u << 20) + 5u;
    char *expected = (char *)malloc(10 + n);
    CHECK(expected != NULL);

    test_step("lpOverlapped NULL: blocking, from the file position, which moves past the bytes");
    pair(port, &c, &s);
    CHECK_EQ(lseek(fd, pos, SEEK_SET), pos);
    memset(&b, 0, sizeof b);
    b.Head = head;
    b.HeadLength = 10;
    memcpy(expected, head, 10);
    memcpy(expected + 10, content + pos, n);
    reader_start(&r, s, 10 + n, 0);
    CHECK(pTransmitFile(c, file, (DWORD)n, 0, NULL, &b, TF_USE_KERNEL_APC));
    reader_join(&r);
    expect_received(&r, expected, 10 + n);
    reader_free(&r);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), pos + (off_t)n);
    EXPECT_NO_PACKET(port, 0);

    test_step("synchronous, count 0: the rest of the file from the position");
    reader_start(&r, s, FILE_SIZE - (size_t)(pos + (off_t)n), 0);
    CHECK(pTransmitFile(c, file, 0, 0, NULL, NULL, 0));
    reader_join(&r);
    expect_received(&r, content + pos + n, FILE_SIZE - (size_t)(pos + (off_t)n));
    reader_free(&r);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), (off_t)FILE_SIZE);

    test_step("synchronous at the end of the file: TRUE, nothing sent");
    CHECK(pTransmitFile(c, file, 0, 0, NULL, NULL, 0));
    {
        char x;
        CHECK_EQ(sys_recv((int)s, &x, 1, MSG_DONTWAIT), -1);
    }

    test_step("synchronous with TF_DISCONNECT: the peer sees the end of the stream");
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    reader_start(&r, s, 1000 + 1, 0);
    CHECK(pTransmitFile(c, file, 1000, 0, NULL, NULL, TF_DISCONNECT));
    reader_join(&r);
    CHECK_EQ(r.got, 1000);
    CHECK(r.eof);
    CHECK(memcmp(r.buf, content, 1000) == 0);
    reader_free(&r);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    free(expected);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

static void bad_arguments(HANDLE port, HANDLE file)
{
    SOCKET c, s, u = tcp_socket();
    OVERLAPPED ov;
    TRANSMIT_FILE_BUFFERS b;
    int pfd[2];
    ULONG_PTR key = pair(port, &c, &s);

    test_step("INVALID_SOCKET, a file as the socket: WSAENOTSOCK");
    ov_init(&ov);
    WSASetLastError(0);
    CHECK(!pTransmitFile(INVALID_SOCKET, file, 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAENOTSOCK);
    WSASetLastError(0);
    CHECK(!pTransmitFile((SOCKET)(uintptr_t)file, file, 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAENOTSOCK);

    test_step("unknown flags, TF_REUSE_SOCKET without TF_DISCONNECT: WSAEINVAL");
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, file, 0, 0, &ov, NULL, 0x1000));
    CHECK_WSAERR(WSAEINVAL);
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, file, 0, 0, &ov, NULL, TF_REUSE_SOCKET));
    CHECK_WSAERR(WSAEINVAL);

    test_step("more than 2,147,483,646 bytes: WSAEINVAL");
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, file, 0x7fffffffu, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAEINVAL);

    test_step("an unconnected socket: WSAENOTCONN");
    WSASetLastError(0);
    CHECK(!pTransmitFile(u, file, 0, 0, NULL, NULL, 0));
    CHECK_WSAERR(WSAENOTCONN);
    WSASetLastError(0);
    CHECK(!pTransmitFile(u, NULL, 0, 0, NULL, NULL, TF_DISCONNECT | TF_REUSE_SOCKET));
    CHECK_WSAERR(WSAENOTCONN);

    test_step("a head or tail pointer NULL with a length: WSAEFAULT");
    memset(&b, 0, sizeof b);
    b.HeadLength = 4;
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, file, 0, 0, &ov, &b, 0));
    CHECK_WSAERR(WSAEFAULT);
    memset(&b, 0, sizeof b);
    b.TailLength = 4;
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, file, 0, 0, &ov, &b, 0));
    CHECK_WSAERR(WSAEFAULT);

    test_step("hFile a closed handle: WSAENOTSOCK (Wine's mapping of STATUS_INVALID_HANDLE)");
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, (HANDLE)(uintptr_t)100000, 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAENOTSOCK);
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, INVALID_HANDLE_VALUE, 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAENOTSOCK);

    test_step("hFile a pipe, a socket or a port: WSAEINVAL");
    CHECK_EQ(pipe(pfd), 0);
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, (HANDLE)(uintptr_t)pfd[0], 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAEINVAL);
    close(pfd[0]);
    close(pfd[1]);
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, HSOCK(u), 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAEINVAL);
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, port, 0, 0, &ov, NULL, 0));
    CHECK_WSAERR(WSAEINVAL);

    test_step("a misaligned OVERLAPPED: WSAEFAULT");
    {
        static char raw[sizeof(OVERLAPPED) + 8];
        WSASetLastError(0);
        CHECK(!pTransmitFile(c, file, 10, 0, (OVERLAPPED *)(void *)(raw + 1), NULL, 0));
        CHECK_WSAERR(WSAEFAULT);
    }

    test_step("an OVERLAPPED on a socket with no port: WSAEINVAL");
    {
        SOCKET c2, s2;
        tcp_pair(&c2, &s2);
        WSASetLastError(0);
        CHECK(!pTransmitFile(c2, file, 10, 0, &ov, NULL, 0));
        CHECK_WSAERR(WSAEINVAL);
        CHECK_EQ(closesocket(c2), 0);
        CHECK_EQ(closesocket(s2), 0);
    }

    test_step("no failed call queued a packet");
    EXPECT_NO_PACKET(port, 20);
    (void)key;
    CHECK_EQ(closesocket(u), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

static void peer_resets(HANDLE port, HANDLE file)
{
    SOCKET c, s;
    ULONG_PTR key = pair(port, &c, &s);
    struct reader r;
    OVERLAPPED ov;
    BOOL ok;
    DWORD bytes = 0xfeed;
    ULONG_PTR k = 0;
    LPOVERLAPPED o = NULL;

    test_step("the peer resets part way: an error packet with the bytes sent, no SIGPIPE");
    small_buffers(c, s);
    reader_start(&r, s, FILE_SIZE, 100000);
    ov_init(&ov);
    ok = pTransmitFile(c, file, 0, 0, &ov, NULL, 0);
    CHECK(!ok);
    CHECK_WSAERR(WSA_IO_PENDING);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
    CHECK_ERR(ERROR_NETNAME_DELETED);
    CHECK_EQ(o, &ov);
    CHECK_EQ(k, key);
    CHECK(bytes >= 100000u);
    CHECK(bytes < FILE_SIZE);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CONNECTION_RESET);
    CHECK_EQ(ov.InternalHigh, bytes);
    reader_join(&r);
    reader_free(&r);

    test_step("TransmitFile on the reset connection fails (at once or by its packet)");
    ov_init(&ov);
    WSASetLastError(0);
    ok = pTransmitFile(c, file, 0, 0, &ov, NULL, 0);
    CHECK(!ok);
    if (WSAGetLastError() == WSA_IO_PENDING) {
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
        CHECK(GetLastError() == ERROR_NETNAME_DELETED);
        CHECK_EQ(o, &ov);
    } else {
        CHECK(WSAGetLastError() == WSAECONNRESET || WSAGetLastError() == WSAENOTCONN);
    }
    test_step("synchronous on the reset connection: FALSE, no SIGPIPE");
    WSASetLastError(0);
    CHECK(!pTransmitFile(c, file, 0, 0, NULL, NULL, 0));
    CHECK(WSAGetLastError() == WSAECONNRESET || WSAGetLastError() == WSAENOTCONN);
    CHECK_EQ(closesocket(c), 0);
}

static void close_file_meanwhile(HANDLE port)
{
    SOCKET c, s;
    ULONG_PTR key = pair(port, &c, &s);
    struct reader r;
    OVERLAPPED ov;
    HANDLE f = open_file();

    test_step("CloseHandle of the file right after the call: the whole file still goes");
    small_buffers(c, s);
    ov_init(&ov);
    CHECK_STARTED(pTransmitFile(c, f, 0, 0, &ov, NULL, 0));
    CHECK(CloseHandle(f));
    /* The number may name something else now: another file opened in its place. */
    f = open_file();
    reader_start(&r, s, FILE_SIZE, 0);
    EXPECT_PACKET(port, key, FILE_SIZE, &ov);
    reader_join(&r);
    expect_received(&r, content, FILE_SIZE);
    reader_free(&r);
    CHECK(CloseHandle(f));
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

static void cancel(HANDLE port, HANDLE file)
{
    SOCKET c, s;
    ULONG_PTR key = pair(port, &c, &s);
    OVERLAPPED ov;
    BOOL ok;
    DWORD bytes = 0xfeed;
    ULONG_PTR k = 0;
    LPOVERLAPPED o = NULL;
    static char head[] = "head";
    TRANSMIT_FILE_BUFFERS b;

    test_step("CancelIoEx of a transmission the peer does not read: ERROR_OPERATION_ABORTED");
    small_buffers(c, s);
    memset(&b, 0, sizeof b);
    b.Head = head;
    b.HeadLength = 4;
    b.Tail = head;
    b.TailLength = 4;
    ov_init(&ov);
    ok = pTransmitFile(c, file, 0, 0, &ov, &b, 0);
    CHECK(!ok);
    CHECK_WSAERR(WSA_IO_PENDING);
    EXPECT_NO_PACKET(port, 100);
    CHECK(!HasOverlappedIoCompleted(&ov));
    CHECK(CancelIoEx(HSOCK(c), &ov));
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
    CHECK_ERR(ERROR_OPERATION_ABORTED);
    CHECK_EQ(o, &ov);
    CHECK_EQ(k, key);
    CHECK(bytes >= 4u);
    CHECK(bytes < FILE_SIZE);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CANCELLED);
    CHECK_EQ(ov.InternalHigh, bytes);
    test_step("nothing more comes, and CancelIoEx finds nothing now");
    EXPECT_NO_PACKET(port, 50);
    SetLastError(0);
    CHECK(!CancelIoEx(HSOCK(c), &ov));
    CHECK_ERR(ERROR_NOT_FOUND);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

/* ---- Between stages ----------------------------------------------------------------------- */

#define BIG_HEAD ((size_t)1 << 20)
#define MID_FILE ((size_t)1 << 20)

/*
 * Starts a TransmitFile of a 1 MiB head, MID_FILE bytes of the file from `off` and a short tail
 * on a connection that absorbs little, then lets the peer read exactly `upto` bytes: the stage
 * that sends the last of them completes, and the next one is left to whichever thread dequeues
 * its packet; none does here. (With `upto` past the head, the head's packet is dequeued, which
 * starts the file stage, while the peer holds after a few file bytes: the file stage cannot end
 * meanwhile.) GetOverlappedResult (which moves completions to the port's queue) then polls a
 * while: the operation is pending, between two stages, with no stage in the kernel.
 */
static ULONG_PTR stop_between_stages(HANDLE port, HANDLE file, uint64_t off, SOCKET *c, SOCKET *s,
                                     OVERLAPPED *ov, TRANSMIT_FILE_BUFFERS *b, char *head,
                                     size_t upto)
{
    static char tail[] = "--tail--";
    ULONG_PTR key = pair(port, c, s);
    struct reader r;
    DWORD n = 0;
    int i;
    small_buffers(*c, *s);
    memset(b, 0, sizeof *b);
    b->Head = head;
    b->HeadLength = (DWORD)BIG_HEAD;
    b->Tail = tail;
    b->TailLength = (DWORD)(sizeof tail - 1);
    ov_init(ov);
    set_offset(ov, off);
    CHECK(!pTransmitFile(*c, file, (DWORD)MID_FILE, 0, ov, b, 0));
    CHECK_WSAERR(WSA_IO_PENDING);
    if (upto > BIG_HEAD) {
        uint64_t end = now_ms() + 20000u;
        reader_start_held(&r, *s, upto, 0, BIG_HEAD + 4096);
        /* Dequeuing the head's packet starts the file stage; the program gets no packet. */
        while (!ALOAD(&r.held)) {
            LPOVERLAPPED o = NULL;
            ULONG_PTR k = 0;
            SetLastError(0);
            CHECK(!GetQueuedCompletionStatus(port, &n, &k, &o, 1));
            CHECK(o == NULL);
            CHECK_ERR(WAIT_TIMEOUT);
            BREAK_IF_LATE(end);
        }
        ASTORE(&r.go, 1);
    } else {
        reader_start(&r, *s, upto, 0);
    }
    {
        /* GetOverlappedResult moves the port on too (the epoll backend sends from there). */
        uint64_t end = now_ms() + 20000u;
        while (!ALOAD(&r.done)) {
            SetLastError(0);
            CHECK(!GetOverlappedResult(HSOCK(*c), ov, &n, FALSE));
            CHECK_ERR(ERROR_IO_INCOMPLETE);
            BREAK_IF_LATE(end);
            sleep_ms(1);
        }
    }
    reader_join(&r);
    CHECK_EQ(r.got, upto);
    CHECK(memcmp(r.buf, head, BIG_HEAD < upto ? BIG_HEAD : upto) == 0);
    if (upto > BIG_HEAD) {
        CHECK(memcmp(r.buf + BIG_HEAD, content + off, upto - BIG_HEAD) == 0);
    }
    reader_free(&r);
    for (i = 0; i < 20; i++) {
        SetLastError(0);
        CHECK(!GetOverlappedResult(HSOCK(*c), ov, &n, FALSE));
        CHECK_ERR(ERROR_IO_INCOMPLETE);
        sleep_ms(5);
    }
    return key;
}

/* Nothing more reaches the peer: the next stage never started. */
static void expect_nothing_more(SOCKET s)
{
    char x;
    sleep_ms(20);
    CHECK_EQ(sys_recv((int)s, &x, 1, MSG_DONTWAIT), -1);
}

static void cancel_between_stages(HANDLE port, HANDLE file)
{
    char *head = (char *)malloc(BIG_HEAD);
    size_t upto[2];
    int i;
    CHECK(head != NULL);
    fill_pattern(head, BIG_HEAD, 23);
    upto[0] = BIG_HEAD;
    upto[1] = BIG_HEAD + MID_FILE;
    for (i = 0; i < 2; i++) {
        SOCKET c, s;
        OVERLAPPED ov;
        TRANSMIT_FILE_BUFFERS b;
        DWORD bytes = 0xfeed;
        ULONG_PTR k = 0;
        LPOVERLAPPED o = NULL;
        ULONG_PTR key;
        test_step("CancelIoEx between stages (%s): TRUE, one packet, ERROR_OPERATION_ABORTED",
                  i == 0 ? "head sent, file not started" : "file sent, tail not started");
        key = stop_between_stages(port, file, (uint64_t)i * 8192, &c, &s, &ov, &b, head, upto[i]);
        CHECK(CancelIoEx(HSOCK(c), &ov));
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
        CHECK_ERR(ERROR_OPERATION_ABORTED);
        CHECK_EQ(o, &ov);
        CHECK_EQ(k, key);
        CHECK_EQ(bytes, upto[i]);
        CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CANCELLED);
        CHECK_EQ(ov.InternalHigh, bytes);
        expect_nothing_more(s);
        EXPECT_NO_PACKET(port, 20);
        SetLastError(0);
        CHECK(!CancelIoEx(HSOCK(c), &ov));
        CHECK_ERR(ERROR_NOT_FOUND);
        CHECK_EQ(closesocket(c), 0);
        CHECK_EQ(closesocket(s), 0);
    }

    test_step("CancelIo (the starting thread's I/O) between stages: ERROR_OPERATION_ABORTED");
    {
        SOCKET c, s;
        OVERLAPPED ov;
        TRANSMIT_FILE_BUFFERS b;
        ULONG_PTR key = stop_between_stages(port, file, 0, &c, &s, &ov, &b, head, BIG_HEAD);
        DWORD bytes = 0xfeed;
        ULONG_PTR k = 0;
        LPOVERLAPPED o = NULL;
        CHECK(CancelIo(HSOCK(c)));
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
        CHECK_ERR(ERROR_OPERATION_ABORTED);
        CHECK_EQ(o, &ov);
        CHECK_EQ(k, key);
        CHECK_EQ(bytes, BIG_HEAD);
        expect_nothing_more(s);
        CHECK_EQ(closesocket(c), 0);
        CHECK_EQ(closesocket(s), 0);
    }

    test_step("closesocket between stages: one packet, ERROR_CONNECTION_ABORTED, the bytes sent");
    {
        SOCKET c, s;
        OVERLAPPED ov;
        TRANSMIT_FILE_BUFFERS b;
        ULONG_PTR key =
            stop_between_stages(port, file, 4096, &c, &s, &ov, &b, head, BIG_HEAD + MID_FILE);
        DWORD bytes = 0xfeed;
        ULONG_PTR k = 0;
        LPOVERLAPPED o = NULL;
        char x;
        CHECK_EQ(closesocket(c), 0);
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
        CHECK_ERR(ERROR_CONNECTION_ABORTED);
        CHECK_EQ(o, &ov);
        CHECK_EQ(k, key);
        CHECK_EQ(bytes, BIG_HEAD + MID_FILE);
        CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CONNECTION_ABORTED);
        CHECK_EQ(ov.InternalHigh, bytes);
        /* The end of the stream, and no tail before it. */
        CHECK_EQ(sys_recv((int)s, &x, 1, 0), 0);
        EXPECT_NO_PACKET(port, 20);
        CHECK_EQ(closesocket(s), 0);
    }
    free(head);
}

static void stage_fails_to_start(HANDLE port, HANDLE file)
{
    SOCKET c, s;
    ULONG_PTR key = pair(port, &c, &s);
    char *head = (char *)malloc(BIG_HEAD);
    struct reader r;
    OVERLAPPED ov;
    TRANSMIT_FILE_BUFFERS b;
    DWORD bytes = 0xfeed;
    ULONG_PTR k = 0;
    LPOVERLAPPED o = NULL;
    BOOL ok;

    test_step("a later stage that cannot start: the packet counts the bytes sent before it");
    CHECK(head != NULL);
    fill_pattern(head, BIG_HEAD, 29);
    small_buffers(c, s);
    memset(&b, 0, sizeof b);
    b.Head = head;
    b.HeadLength = (DWORD)BIG_HEAD;
    ov_init(&ov);
    /* An offset of 2^63 (negative as a LARGE_INTEGER): the file stage cannot start. */
    set_offset(&ov, (uint64_t)1 << 63);
    WSASetLastError(0);
    ok = pTransmitFile(c, file, 1000, 0, &ov, &b, 0);
    CHECK(!ok);
    if (WSAGetLastError() != WSA_IO_PENDING) {
        /* Refused up front: then nothing was sent. */
        CHECK_WSAERR(WSAEINVAL);
        expect_nothing_more(s);
    } else {
        reader_start(&r, s, BIG_HEAD + 1, 0);
        SetLastError(0);
        CHECK(!GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS));
        CHECK(GetLastError() != 0);
        CHECK_EQ(o, &ov);
        CHECK_EQ(k, key);
        CHECK_EQ(bytes, BIG_HEAD);
        CHECK((NTSTATUS)ov.Internal < 0);
        CHECK_EQ(ov.InternalHigh, bytes);
        /* The peer got the head and nothing after it. */
        while (!ALOAD(&r.done) && r.got < BIG_HEAD) {
            sleep_ms(1);
        }
        sleep_ms(50);
        CHECK_EQ(closesocket(c), 0);
        reader_join(&r);
        CHECK_EQ(r.got, BIG_HEAD);
        CHECK(memcmp(r.buf, head, BIG_HEAD) == 0);
        reader_free(&r);
        c = INVALID_SOCKET;
    }
    EXPECT_NO_PACKET(port, 20);
    if (c != INVALID_SOCKET) {
        CHECK_EQ(closesocket(c), 0);
    }
    CHECK_EQ(closesocket(s), 0);
    free(head);
}

static void cancel_race(HANDLE port, HANDLE file)
{
    static char head[1500], tail[700];
    size_t fl = 20000, total = sizeof head + fl + sizeof tail;
    char *expected = (char *)malloc(total);
    char *got = (char *)malloc(total);
    TRANSMIT_FILE_BUFFERS b;
    uint64_t end = now_ms() + 2500u;
    int i, whole = 0, aborted = 0;

    test_step("CancelIoEx at varying moments: one packet, all bytes or ERROR_OPERATION_ABORTED");
    CHECK(expected != NULL && got != NULL);
    fill_pattern(head, sizeof head, 31);
    fill_pattern(tail, sizeof tail, 37);
    memcpy(expected, head, sizeof head);
    memcpy(expected + sizeof head, content + 50, fl);
    memcpy(expected + sizeof head + fl, tail, sizeof tail);
    b.Head = head;
    b.HeadLength = (DWORD)sizeof head;
    b.Tail = tail;
    b.TailLength = (DWORD)sizeof tail;
    for (i = 0; i < 200 && now_ms() < end; i++) {
        SOCKET c, s;
        ULONG_PTR key = pair(port, &c, &s);
        OVERLAPPED ov;
        BOOL ok, found;
        DWORD bytes = 0xfeed;
        ULONG_PTR k = 0;
        LPOVERLAPPED o = NULL;
        uint64_t spin_until;
        struct timespec ts;
        ov_init(&ov);
        set_offset(&ov, 50);
        ok = pTransmitFile(c, file, (DWORD)fl, 0, &ov, &b, 0);
        if (!ok) {
            CHECK_WSAERR(WSA_IO_PENDING);
        }
        /* At once, or after up to ~0.5 ms. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        spin_until = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                     (uint64_t)(i % 11) * 50000u;
        do {
            clock_gettime(CLOCK_MONOTONIC, &ts);
        } while ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec < spin_until);
        SetLastError(0);
        found = CancelIoEx(HSOCK(c), &ov);
        if (!found) {
            /* Not found: the operation was over, and its outcome is written. */
            CHECK_ERR(ERROR_NOT_FOUND);
        }
        SetLastError(0);
        ok = GetQueuedCompletionStatus(port, &bytes, &k, &o, PACKET_WAIT_MS);
        CHECK_EQ(o, &ov);
        CHECK_EQ(k, key);
        CHECK_EQ(ov.InternalHigh, bytes);
        if (ok) {
            /* Done before the cancel took: every byte, all delivered. */
            CHECK_EQ(bytes, total);
            CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
            recv_exact(s, got, total);
            CHECK(memcmp(got, expected, total) == 0);
            whole++;
        } else {
            /* Only a cancel that found it pending ends it so. */
            CHECK_ERR(ERROR_OPERATION_ABORTED);
            CHECK(found);
            CHECK((size_t)bytes <= total);
            CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CANCELLED);
            aborted++;
        }
        EXPECT_NO_PACKET(port, 0);
        CHECK_EQ(closesocket(c), 0);
        CHECK_EQ(closesocket(s), 0);
    }
    test_step("%d runs: %d complete, %d aborted", i, whole, aborted);
    CHECK(i >= 20);
    free(expected);
    free(got);
}

static void disconnect_reuse(HANDLE port, HANDLE file)
{
    SOCKET c, s;
    ULONG_PTR key = pair(port, &c, &s);
    struct reader r;
    OVERLAPPED ov;
    static char tail[] = "bye";
    TRANSMIT_FILE_BUFFERS b;
    char *expected = (char *)malloc(300000 + 3);
    CHECK(expected != NULL);

    test_step("TF_DISCONNECT: the bytes, then the end of the stream");
    memcpy(expected, content + 5, 300000);
    memcpy(expected + 300000, tail, 3);
    memset(&b, 0, sizeof b);
    b.Tail = tail;
    b.TailLength = 3;
    reader_start(&r, s, 300000 + 3 + 1, 0);
    ov_init(&ov);
    set_offset(&ov, 5);
    CHECK_STARTED(pTransmitFile(c, file, 300000, 0, &ov, &b, TF_DISCONNECT));
    EXPECT_PACKET(port, key, 300003, &ov);
    reader_join(&r);
    CHECK_EQ(r.got, 300003);
    CHECK(r.eof);
    CHECK(memcmp(r.buf, expected, 300003) == 0);
    reader_free(&r);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);

    test_step("TF_DISCONNECT | TF_REUSE_SOCKET: then the socket connects again, same key");
    key = pair(port, &c, &s);
    reader_start(&r, s, 100000 + 1, 0);
    ov_init(&ov);
    CHECK_STARTED(
        pTransmitFile(c, file, 100000, 0, &ov, NULL, TF_DISCONNECT | TF_REUSE_SOCKET));
    EXPECT_PACKET(port, key, 100000, &ov);
    reader_join(&r);
    CHECK_EQ(r.got, 100000);
    CHECK(r.eof);
    CHECK(memcmp(r.buf, content, 100000) == 0);
    reader_free(&r);
    CHECK_EQ(closesocket(s), 0);
    {
        struct sockaddr_in a, peer;
        socklen_t len = sizeof peer;
        SOCKET l = tcp_listener(&a);
        SOCKET s2;
        char got[5];
        WSABUF wb;
        OVERLAPPED sov;
        DWORD n = 0;
        CHECK_EQ(sys_getpeername((int)c, (struct sockaddr *)&peer, &len), -1);
        connect_to(c, &a);
        s2 = accept_one(l);
        wb.buf = (char *)"again";
        wb.len = 5;
        ov_init(&sov);
        CHECK_WSA_STARTED(WSASend(c, &wb, 1, &n, 0, &sov, NULL));
        EXPECT_PACKET(port, key, 5, &sov);
        recv_exact(s2, got, 5);
        CHECK(memcmp(got, "again", 5) == 0);
        CHECK_EQ(closesocket(s2), 0);
        CHECK_EQ(closesocket(l), 0);
    }
    CHECK_EQ(closesocket(c), 0);

    test_step("hFile NULL, no buffers, TF_DISCONNECT | TF_REUSE_SOCKET: DisconnectEx's job");
    key = pair(port, &c, &s);
    ov_init(&ov);
    CHECK_STARTED(pTransmitFile(c, NULL, 0, 0, &ov, NULL, TF_DISCONNECT | TF_REUSE_SOCKET));
    EXPECT_PACKET(port, key, 0, &ov);
    {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        CHECK_EQ(sys_getpeername((int)c, (struct sockaddr *)&peer, &len), -1);
    }
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
    free(expected);
}

int main(void)
{
    HANDLE port, file;
    test_init("transmit");
    /* A C program starts with SIGPIPE's default action (whatever the test driver left). */
    signal(SIGPIPE, SIG_DFL);
    wsa_startup();
    load();
    make_file();
    port = new_port(1);
    file = open_file();
    whole_file(port, file);
    ranges(port, file);
    offset_high(port);
    head_tail(port, file);
    head_only(port, file);
    synchronous(port, file);
    bad_arguments(port, file);
    peer_resets(port, file);
    close_file_meanwhile(port);
    cancel(port, file);
    cancel_between_stages(port, file);
    stage_fails_to_start(port, file);
    cancel_race(port, file);
    disconnect_reuse(port, file);
    CHECK(CloseHandle(file));
    CHECK(CloseHandle(port));
    free(content);
    return test_done();
}
