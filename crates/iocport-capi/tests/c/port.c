/*
 * Completion ports themselves: CreateIoCompletionPort (new ports, the concurrency value,
 * associations), handle values, and CloseHandle.
 */
#include "common.h"

static void new_ports(void)
{
    DWORD values[] = {0, 1, 2, 8, 64, 0xffffffffu};
    HANDLE ports[sizeof values / sizeof values[0]];
    size_t i, j;
    test_step("new ports with every concurrency value");
    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        SetLastError(0xdeadbeefu);
        ports[i] = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, values[i]);
        CHECK(ports[i] != NULL);
        CHECK(ports[i] != INVALID_HANDLE_VALUE);
        /* Ports are handles >= 2^32: never an fd. */
        CHECK((uint64_t)(uintptr_t)ports[i] >= ((uint64_t)1 << 32));
        for (j = 0; j < i; j++) {
            CHECK_NE(ports[i], ports[j]);
        }
        /* Each port works on its own. */
        CHECK(PostQueuedCompletionStatus(ports[i], (DWORD)i, 100 + i, NULL));
    }
    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        EXPECT_PACKET(ports[i], 100 + i, i, NULL);
        EXPECT_NO_PACKET(ports[i], 0);
    }
    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        CHECK(CloseHandle(ports[i]));
    }
}

static void existing_port_without_handle(void)
{
    HANDLE port = new_port(0);
    test_step("CreateIoCompletionPort(INVALID_HANDLE_VALUE, existing port) fails");
    SetLastError(0);
    CHECK(CreateIoCompletionPort(INVALID_HANDLE_VALUE, port, 1, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    /* The port is unharmed. */
    CHECK(PostQueuedCompletionStatus(port, 1, 2, NULL));
    EXPECT_PACKET(port, 2, 1, NULL);
    CHECK(CloseHandle(port));
}

static void associations(void)
{
    HANDLE port = new_port(0);
    HANDLE other = new_port(0);
    SOCKET s = tcp_socket();
    SOCKET u = new_socket(SOCK_DGRAM);
    HANDLE created;
    char path[256];
    HANDLE f;

    test_step("associate a socket; the result is the port");
    SetLastError(0xdeadbeefu);
    CHECK_EQ(CreateIoCompletionPort(HSOCK(s), port, 7, 0), port);

    test_step("associate the same socket again, with this port or another: INVALID_PARAMETER");
    SetLastError(0);
    CHECK(CreateIoCompletionPort(HSOCK(s), port, 8, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(HSOCK(s), other, 8, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    test_step("a NULL existing port with a real handle makes a new port, associated");
    created = CreateIoCompletionPort(HSOCK(u), NULL, 9, 1);
    CHECK(created != NULL);
    CHECK(created != INVALID_HANDLE_VALUE);
    CHECK(created != port);
    CHECK(created != other);
    CHECK((uint64_t)(uintptr_t)created >= ((uint64_t)1 << 32));
    SetLastError(0);
    CHECK(CreateIoCompletionPort(HSOCK(u), port, 9, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    {
        /* The association works: a send on the UDP socket completes on `created`. */
        struct sockaddr_in to;
        char data[4] = {1, 2, 3, 4};
        WSABUF b;
        DWORD sent = 0;
        OVERLAPPED ov;
        SOCKET peer = new_socket(SOCK_DGRAM);
        bind_loopback(peer, &to);
        b.len = sizeof data;
        b.buf = data;
        ov_init(&ov);
        CHECK_WSA_STARTED(
            WSASendTo(u, &b, 1, &sent, 0, (struct sockaddr *)&to, sizeof to, &ov, NULL));
        EXPECT_PACKET(created, 9, 4, &ov);
        EXPECT_NO_PACKET(port, 0);
        CHECK_EQ(closesocket(peer), 0);
    }

    test_step("associate a file");
    temp_path(path, sizeof path, "assoc");
    f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW,
                    FILE_FLAG_OVERLAPPED, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK((uint64_t)(uintptr_t)f > 2);
    CHECK((uint64_t)(uintptr_t)f < ((uint64_t)1 << 32));
    CHECK_EQ(CreateIoCompletionPort(f, port, 10, 0), port);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(f, port, 10, 0) == NULL);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    CHECK(CloseHandle(f));
    unlink(path);

    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(u), 0);
    CHECK(CloseHandle(created));
    CHECK(CloseHandle(other));
    CHECK(CloseHandle(port));
}

static void close_handle(void)
{
    HANDLE port = new_port(0);
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = NULL;
    test_step("CloseHandle on a port, then the handle is invalid");
    CHECK(PostQueuedCompletionStatus(port, 1, 1, NULL));
    SetLastError(0xdeadbeefu);
    CHECK(CloseHandle(port));
    SetLastError(0);
    CHECK(!CloseHandle(port));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!PostQueuedCompletionStatus(port, 1, 1, NULL));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0));
    CHECK_ERR(ERROR_INVALID_HANDLE);
    CHECK(ov == NULL);
}

static void many_ports(void)
{
    int i;
    int fds_before, fds_after;
    test_step("1000 ports created and closed leak nothing and never take an fd value");
    fds_before = dup(1);
    CHECK(fds_before >= 0);
    close(fds_before);
    for (i = 0; i < 1000; i++) {
        HANDLE p = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, (DWORD)(i % 4));
        CHECK(p != NULL);
        CHECK((uint64_t)(uintptr_t)p >= ((uint64_t)1 << 32));
        CHECK(p != INVALID_HANDLE_VALUE);
        if (i % 3 == 0) {
            CHECK(PostQueuedCompletionStatus(p, 0, 0, NULL));
        }
        CHECK(CloseHandle(p));
    }
    fds_after = dup(1);
    CHECK(fds_after >= 0);
    close(fds_after);
    /* Ports may hold an fd each on some backends, but closing gives them back. */
    CHECK_EQ(fds_after, fds_before);
}

int main(void)
{
    test_init("port");
    wsa_startup();
    new_ports();
    existing_port_without_handle();
    associations();
    close_handle();
    many_ports();
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
