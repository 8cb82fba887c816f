/*
 * iocport/threads.h: part of iocport/windows.h; include that header, not this one.
 */
#ifndef IOCPORT_THREADS_H
#define IOCPORT_THREADS_H
#ifndef IOCPORT_WINDOWS_H
#error "include <iocport/windows.h>, not <iocport/threads.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* IOCPORT_THREADS_H */
