// The parts of libsystemd gmemd calls: readiness and fd store notifications,
// socket activation, and structured journal entries.
#ifndef GMEMD_CSYSTEMD_SHIM_H
#define GMEMD_CSYSTEMD_SHIM_H

// sd_journal_sendv is otherwise a macro that adds CODE_FILE/CODE_LINE of the
// header itself; gmemd supplies the caller's location as fields instead.
#define SD_JOURNAL_SUPPRESS_LOCATION 1

#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#endif
