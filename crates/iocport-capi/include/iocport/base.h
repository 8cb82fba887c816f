/*
 * iocport/base.h: part of iocport/windows.h; include that header, not this one.
 */
#ifndef IOCPORT_BASE_H
#define IOCPORT_BASE_H
#ifndef IOCPORT_WINDOWS_H
#error "include <iocport/windows.h>, not <iocport/base.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* IOCPORT_BASE_H */
