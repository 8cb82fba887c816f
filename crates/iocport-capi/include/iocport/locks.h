/*
 * iocport/locks.h: part of iocport/windows.h; include that header, not this one.
 */
#ifndef IOCPORT_LOCKS_H
#define IOCPORT_LOCKS_H
#ifndef IOCPORT_WINDOWS_H
#error "include <iocport/windows.h>, not <iocport/locks.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* IOCPORT_LOCKS_H */
