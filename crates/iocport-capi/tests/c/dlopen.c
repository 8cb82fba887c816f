/*
 * CreateThread from a library constructor under dlopen (tests/c/plugins/ctor_thread.c, built as
 * a shared library by tests/c_api.rs, its path in IOCPORT_CAPI_PLUGIN): the constructor's call
 * returns with a handle and an id while dlopen holds the loader's lock, and the thread runs to
 * its end once dlopen returns. It once deadlocked: the new thread registered a thread-local
 * destructor (which takes the loader's lock) before reporting its id.
 */
#include "common.h"

#include <dlfcn.h>

typedef HANDLE (*plugin_thread_fn)(DWORD *tid, LONG *ran);

int main(void)
{
    const char *path = getenv("IOCPORT_CAPI_PLUGIN");
    void *lib;
    plugin_thread_fn get = NULL;
    HANDLE h;
    DWORD tid = 0, code = 0;
    LONG ran = 0;

    test_init("dlopen");
    CHECK(path != NULL);
    if (path == NULL) {
        return test_done();
    }
    test_step("dlopen of a library whose constructor calls CreateThread returns");
    lib = dlopen(path, RTLD_NOW);
    if (lib == NULL) {
        printf("dlopen(%s): %s\n", path, dlerror());
    }
    CHECK(lib != NULL);
    if (lib == NULL) {
        return test_done();
    }
    {
        void *sym = dlsym(lib, "plugin_thread");
        CHECK(sym != NULL);
        memcpy(&get, &sym, sizeof get);
    }
    h = get(&tid, &ran);
    CHECK(h != NULL);
    CHECK(tid != 0);

    test_step("the thread runs to its end once dlopen has returned");
    CHECK_EQ(WaitForSingleObject(h, PACKET_WAIT_MS), WAIT_OBJECT_0);
    CHECK(GetExitCodeThread(h, &code));
    CHECK_EQ(code, 33);
    h = get(&tid, &ran);
    CHECK_EQ(ran, 1);
    CHECK(CloseHandle(h));
    return test_done();
}
