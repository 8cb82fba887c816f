/*
 * Files: CreateFileA and CreateFileW with FILE_FLAG_OVERLAPPED on POSIX paths, their creation
 * dispositions and errors; overlapped WriteFile and ReadFile at the offsets in Offset/OffsetHigh,
 * completing on the port with the file's key, the byte count and the OVERLAPPED; reads at and
 * across the end of the file.
 */
#include "common.h"

#define KEY 0xf11e

static HANDLE open_rw(const char *path, DWORD disposition)
{
    return CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                       NULL, disposition, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED, NULL);
}

static void at(OVERLAPPED *ov, uint64_t offset)
{
    ov_init(ov);
    ov->Offset = (DWORD)(offset & 0xffffffffu);
    ov->OffsetHigh = (DWORD)(offset >> 32);
}

/* An overlapped write of len bytes at offset; waits for its packet. */
static void write_at(HANDLE port, HANDLE f, const char *buf, DWORD len, uint64_t offset)
{
    OVERLAPPED ov;
    at(&ov, offset);
    CHECK_STARTED(WriteFile(f, buf, len, NULL, &ov));
    EXPECT_PACKET(port, KEY, len, &ov);
    CHECK(HasOverlappedIoCompleted(&ov));
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
    CHECK_EQ(ov.InternalHigh, len);
}

/* An overlapped read of up to len bytes at offset; returns the byte count of its packet. */
static DWORD read_at(HANDLE port, HANDLE f, char *buf, DWORD len, uint64_t offset)
{
    OVERLAPPED ov;
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED got = NULL;
    at(&ov, offset);
    CHECK_STARTED(ReadFile(f, buf, len, NULL, &ov));
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &got, PACKET_WAIT_MS));
    CHECK(got == &ov);
    CHECK_EQ(key, KEY);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
    CHECK_EQ(ov.InternalHigh, bytes);
    return bytes;
}

static void write_read(HANDLE port, const char *path)
{
    static char out[65536], in[65536];
    HANDLE f;
    struct stat st;
    DWORD n;

    test_step("CreateFileA CREATE_NEW, write at offsets, read them back");
    f = open_rw(path, CREATE_NEW);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK((uint64_t)(uintptr_t)f > 2);
    CHECK((uint64_t)(uintptr_t)f < ((uint64_t)1 << 32));
    associate(f, port, KEY);

    fill_pattern(out, sizeof out, 1);
    write_at(port, f, out, 4096, 0);
    write_at(port, f, out + 4096, sizeof out - 4096, 4096);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, sizeof out);

    memset(in, 0, sizeof in);
    n = read_at(port, f, in, sizeof in, 0);
    CHECK_EQ(n, sizeof out);
    CHECK(memcmp(in, out, sizeof out) == 0);

    test_step("a read in the middle honours Offset");
    memset(in, 0, sizeof in);
    n = read_at(port, f, in, 100, 12345);
    CHECK_EQ(n, 100);
    CHECK(memcmp(in, out + 12345, 100) == 0);

    test_step("a write in the middle overwrites only its range");
    write_at(port, f, "HELLO", 5, 1000);
    memset(in, 0, sizeof in);
    n = read_at(port, f, in, 10, 998);
    CHECK_EQ(n, 10);
    CHECK(memcmp(in, out + 998, 2) == 0);
    CHECK(memcmp(in + 2, "HELLO", 5) == 0);
    CHECK(memcmp(in + 7, out + 1005, 3) == 0);

    test_step("OffsetHigh: a write and a read beyond 4 GiB (sparse)");
    write_at(port, f, "far away", 8, ((uint64_t)1 << 32) + 10);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, ((uint64_t)1 << 32) + 18);
    memset(in, 0, sizeof in);
    n = read_at(port, f, in, 8, ((uint64_t)1 << 32) + 10);
    CHECK_EQ(n, 8);
    CHECK(memcmp(in, "far away", 8) == 0);
    /* The hole reads as zeros. */
    n = read_at(port, f, in, 16, ((uint64_t)1 << 32) - 6);
    CHECK_EQ(n, 16);
    CHECK(memcmp(in, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0);

    test_step("a read across the end of the file gives the bytes up to the end");
    n = read_at(port, f, in, 100, ((uint64_t)1 << 32) + 14);
    CHECK_EQ(n, 4);
    CHECK(memcmp(in, "away", 4) == 0);

    test_step("a read at the end of the file: ERROR_HANDLE_EOF");
    {
        OVERLAPPED ov;
        at(&ov, ((uint64_t)1 << 32) + 18);
        SetLastError(0);
        if (ReadFile(f, in, 100, NULL, &ov)) {
            test_fail_(__FILE__, __LINE__, "ReadFile at EOF returned TRUE", NULL);
        }
        if (GetLastError() == ERROR_IO_PENDING) {
            DWORD got = 0xfeed;
            EXPECT_FAILED_PACKET(port, KEY, &ov, ERROR_HANDLE_EOF);
            CHECK_EQ((NTSTATUS)ov.Internal, STATUS_END_OF_FILE);
            CHECK_EQ(ov.InternalHigh, 0);
            SetLastError(0);
            CHECK(!GetOverlappedResult(f, &ov, &got, FALSE));
            CHECK_ERR(ERROR_HANDLE_EOF);
            CHECK_EQ(got, 0);
        } else {
            /* Windows may also report EOF at once; then no packet is queued. */
            CHECK_ERR(ERROR_HANDLE_EOF);
            EXPECT_NO_PACKET(port, 50);
        }
        /* Far past the end too. */
        at(&ov, ((uint64_t)1 << 33));
        SetLastError(0);
        CHECK(!ReadFile(f, in, 100, NULL, &ov));
        if (GetLastError() == ERROR_IO_PENDING) {
            EXPECT_FAILED_PACKET(port, KEY, &ov, ERROR_HANDLE_EOF);
        } else {
            CHECK_ERR(ERROR_HANDLE_EOF);
        }
    }

    test_step("GetOverlappedResult after a completed read");
    {
        OVERLAPPED ov;
        DWORD got = 0;
        at(&ov, 0);
        CHECK_STARTED(ReadFile(f, in, 64, NULL, &ov));
        EXPECT_PACKET(port, KEY, 64, &ov);
        SetLastError(0xdeadbeefu);
        CHECK(GetOverlappedResult(f, &ov, &got, FALSE));
        CHECK_EQ(got, 64);
        CHECK(GetOverlappedResult(f, &ov, &got, TRUE));
        CHECK_EQ(got, 64);
    }

    CHECK(CloseHandle(f));
}

static void many_in_flight(HANDLE port, const char *path)
{
    static char out[16][4096];
    static char in[16 * 4096];
    static OVERLAPPED ovs[16];
    int seen[16];
    HANDLE f;
    int i;
    test_step("16 writes in flight at once, then 16 reads, each packet once");
    f = open_rw(path, CREATE_ALWAYS);
    CHECK(f != INVALID_HANDLE_VALUE);
    associate(f, port, KEY);
    for (i = 0; i < 16; i++) {
        fill_pattern(out[i], sizeof out[i], (unsigned)i + 10);
        at(&ovs[i], (uint64_t)i * 4096);
        CHECK_STARTED(WriteFile(f, out[i], 4096, NULL, &ovs[i]));
    }
    memset(seen, 0, sizeof seen);
    for (i = 0; i < 16; i++) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        int idx;
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        CHECK_EQ(key, KEY);
        CHECK_EQ(bytes, 4096);
        CHECK(ov >= &ovs[0] && ov < &ovs[16]);
        idx = (int)(ov - &ovs[0]);
        CHECK_EQ(seen[idx], 0);
        seen[idx] = 1;
    }
    EXPECT_NO_PACKET(port, 0);
    memset(in, 0, sizeof in);
    for (i = 0; i < 16; i++) {
        at(&ovs[i], (uint64_t)i * 4096);
        CHECK_STARTED(ReadFile(f, in + i * 4096, 4096, NULL, &ovs[i]));
    }
    for (i = 0; i < 16; i++) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        CHECK_EQ(bytes, 4096);
    }
    for (i = 0; i < 16; i++) {
        CHECK(memcmp(in + i * 4096, out[i], 4096) == 0);
    }
    CHECK(CloseHandle(f));
}

static void create_file_w(HANDLE port, const char *path)
{
    WCHAR wpath[512];
    HANDLE f;
    char in[16];
    test_step("CreateFileW opens the same file by its wide name");
    to_wide(path, wpath, sizeof wpath / sizeof wpath[0]);
    f = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    associate(f, port, KEY);
    memset(in, 0, sizeof in);
    CHECK_EQ(read_at(port, f, in, 5, 1000), 5);
    CHECK(memcmp(in, "HELLO", 5) == 0);
    CHECK(CloseHandle(f));

    test_step("CreateFileW CREATE_NEW makes a new file");
    {
        char p2[256];
        WCHAR w2[256];
        struct stat st;
        temp_path(p2, sizeof p2, "wide");
        to_wide(p2, w2, sizeof w2 / sizeof w2[0]);
        f = CreateFileW(w2, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_FLAG_OVERLAPPED, NULL);
        CHECK(f != INVALID_HANDLE_VALUE);
        CHECK_EQ(stat(p2, &st), 0);
        CHECK(CloseHandle(f));
        unlink(p2);
    }
}

static void dispositions(const char *path)
{
    char missing[256], nodir[300];
    HANDLE f;
    struct stat st;

    test_step("OPEN_EXISTING on a missing file: ERROR_FILE_NOT_FOUND");
    temp_path(missing, sizeof missing, "missing");
    SetLastError(0);
    f = CreateFileA(missing, GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_FILE_NOT_FOUND);
    SetLastError(0);
    f = CreateFileA(missing, GENERIC_WRITE, 0, NULL, TRUNCATE_EXISTING, FILE_FLAG_OVERLAPPED,
                    NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_FILE_NOT_FOUND);

    test_step("TRUNCATE_EXISTING without GENERIC_WRITE: ERROR_INVALID_PARAMETER");
    SetLastError(0);
    f = CreateFileA(path, GENERIC_READ, 0, NULL, TRUNCATE_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_size > 0);

    test_step("a missing directory: ERROR_PATH_NOT_FOUND");
    snprintf(nodir, sizeof nodir, "%s/inside", missing);
    SetLastError(0);
    f = CreateFileA(nodir, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                    FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_PATH_NOT_FOUND);

    test_step("CREATE_NEW on an existing file: ERROR_FILE_EXISTS");
    SetLastError(0);
    f = open_rw(path, CREATE_NEW);
    CHECK(f == INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_FILE_EXISTS);

    test_step("OPEN_ALWAYS on an existing file: success, ERROR_ALREADY_EXISTS, kept");
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_size > 0);
    SetLastError(0xdeadbeefu);
    f = open_rw(path, OPEN_ALWAYS);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_ALREADY_EXISTS);
    CHECK(CloseHandle(f));
    {
        struct stat st2;
        CHECK_EQ(stat(path, &st2), 0);
        CHECK_EQ(st2.st_size, st.st_size);
    }

    test_step("OPEN_ALWAYS / CREATE_ALWAYS on a new file: success, last error 0");
    SetLastError(0xdeadbeefu);
    f = open_rw(missing, OPEN_ALWAYS);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK_ERR(0);
    CHECK(CloseHandle(f));
    unlink(missing);
    SetLastError(0xdeadbeefu);
    f = open_rw(missing, CREATE_ALWAYS);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK_ERR(0);
    CHECK(CloseHandle(f));

    test_step("CREATE_ALWAYS on an existing file: success, ERROR_ALREADY_EXISTS, truncated");
    SetLastError(0xdeadbeefu);
    f = open_rw(path, CREATE_ALWAYS);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK_ERR(ERROR_ALREADY_EXISTS);
    CHECK(CloseHandle(f));
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 0);

    test_step("TRUNCATE_EXISTING on an existing file truncates");
    {
        int fd = open(missing, O_WRONLY);
        CHECK(fd >= 0);
        CHECK_EQ(write(fd, "abc", 3), 3);
        close(fd);
    }
    f = CreateFileA(missing, GENERIC_WRITE, 0, NULL, TRUNCATE_EXISTING, FILE_FLAG_OVERLAPPED,
                    NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK(CloseHandle(f));
    CHECK_EQ(stat(missing, &st), 0);
    CHECK_EQ(st.st_size, 0);
    unlink(missing);
}

static void unassociated(const char *path)
{
    HANDLE f;
    OVERLAPPED ov;
    char buf[8];
    test_step("overlapped ReadFile/WriteFile on an unassociated handle: ERROR_INVALID_PARAMETER");
    f = open_rw(path, OPEN_ALWAYS);
    CHECK(f != INVALID_HANDLE_VALUE);
    at(&ov, 0);
    SetLastError(0);
    CHECK(!WriteFile(f, "x", 1, NULL, &ov));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    at(&ov, 0);
    SetLastError(0);
    CHECK(!ReadFile(f, buf, sizeof buf, NULL, &ov));
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    CHECK(CloseHandle(f));
}

static void append(HANDLE port, const char *path)
{
    HANDLE f;
    char in[16];
    test_step("WriteFile at Offset = OffsetHigh = 0xFFFFFFFF appends");
    f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                    FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    associate(f, port, KEY);
    write_at(port, f, "head", 4, 0);
    write_at(port, f, "tail", 4, UINT64_MAX);
    CHECK_EQ(read_at(port, f, in, sizeof in, 0), 8);
    CHECK(memcmp(in, "headtail", 8) == 0);
    CHECK(CloseHandle(f));
}

int main(void)
{
    char path[256];
    HANDLE port;
    test_init("files");
    port = new_port(0);
    temp_path(path, sizeof path, "data");
    write_read(port, path);
    create_file_w(port, path);
    many_in_flight(port, path);
    /* many_in_flight left 64 KiB in the file. */
    dispositions(path);
    unassociated(path);
    append(port, path);
    EXPECT_NO_PACKET(port, 0);
    CHECK(CloseHandle(port));
    unlink(path);
    return test_done();
}
