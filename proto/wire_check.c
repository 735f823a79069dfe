/*
 * wire_check.c - compile-time check of proto/gmem_wire.h against proto/PROTOCOL.md.
 *
 *     cc -std=c11 -Wall -Werror -fsyntax-only proto/wire_check.c
 *
 * Compiles to nothing: every check is a _Static_assert. The Swift test suite (WireHeaderCTests) runs the command
 * above, so a layout change in the header that PROTOCOL.md does not describe fails `swift test`.
 */
#include "gmem_wire.h"

#include <stddef.h>
#include <stdint.h>

#define CHECK_SIZE(type, size) _Static_assert(sizeof(struct type) == (size), "size of " #type)
#define CHECK_FIELD(type, field, offset, size)                                                             \
    _Static_assert(offsetof(struct type, field) == (offset), "offset of " #type "." #field);               \
    _Static_assert(sizeof(((struct type *)0)->field) == (size), "size of " #type "." #field)
#define CHECK_ARRAY(type, field, offset)                                                                   \
    _Static_assert(offsetof(struct type, field) == (offset), "offset of " #type "." #field);               \
    _Static_assert(sizeof(((struct type *)0)->field[0]) == 1, "element size of " #type "." #field)

/* Header: PROTOCOL.md "Frame header". */
CHECK_SIZE(gmem_header, 16);
CHECK_FIELD(gmem_header, length, 0, 4);
CHECK_FIELD(gmem_header, opcode, 4, 2);
CHECK_FIELD(gmem_header, flags, 6, 2);
CHECK_FIELD(gmem_header, id, 8, 4);
CHECK_FIELD(gmem_header, status, 12, 4);
_Static_assert(GMEM_HEADER_SIZE == sizeof(struct gmem_header), "GMEM_HEADER_SIZE");

/* HELLO. */
CHECK_SIZE(gmem_hello_request, 8);
CHECK_FIELD(gmem_hello_request, version, 0, 4);
CHECK_FIELD(gmem_hello_request, features, 4, 4);

CHECK_SIZE(gmem_hello_reply, 48);
CHECK_FIELD(gmem_hello_reply, version, 0, 4);
CHECK_FIELD(gmem_hello_reply, features, 4, 4);
CHECK_FIELD(gmem_hello_reply, page_size, 8, 4);
CHECK_FIELD(gmem_hello_reply, folio_size, 12, 4);
CHECK_FIELD(gmem_hello_reply, region_size, 16, 8);
CHECK_FIELD(gmem_hello_reply, region_id, 24, 8);
CHECK_FIELD(gmem_hello_reply, max_payload, 32, 4);
CHECK_FIELD(gmem_hello_reply, max_gpcs, 36, 4);
CHECK_FIELD(gmem_hello_reply, region_flags, 40, 4);
CHECK_FIELD(gmem_hello_reply, max_segments, 44, 4);

CHECK_SIZE(gmem_version_not_supported, 4);
CHECK_FIELD(gmem_version_not_supported, highest_version, 0, 4);

/* READ and WRITE. */
CHECK_SIZE(gmem_read_request, 16);
CHECK_FIELD(gmem_read_request, gpa, 0, 8);
CHECK_FIELD(gmem_read_request, len, 8, 4);
CHECK_FIELD(gmem_read_request, flags, 12, 4);

CHECK_SIZE(gmem_write_request, 16);
CHECK_FIELD(gmem_write_request, gpa, 0, 8);
CHECK_FIELD(gmem_write_request, len, 8, 4);
CHECK_FIELD(gmem_write_request, flags, 12, 4);
CHECK_ARRAY(gmem_write_request, data, 16);

/* READV, WRITEV. */
CHECK_SIZE(gmem_segment, 16);
CHECK_FIELD(gmem_segment, gpa, 0, 8);
CHECK_FIELD(gmem_segment, len, 8, 4);
CHECK_FIELD(gmem_segment, reserved, 12, 4);
CHECK_SIZE(gmem_readv_request, 8);
CHECK_FIELD(gmem_readv_request, nsegs, 0, 4);
CHECK_FIELD(gmem_readv_request, flags, 4, 4);
_Static_assert(offsetof(struct gmem_readv_request, segments) == 8, "offset of gmem_readv_request.segments");
CHECK_SIZE(gmem_vector_progress, 16);
CHECK_FIELD(gmem_vector_progress, bytes_completed, 0, 8);
CHECK_FIELD(gmem_vector_progress, segment, 8, 4);
CHECK_FIELD(gmem_vector_progress, segment_bytes, 12, 4);

/* ATOMIC, GPC_ATOMIC. */
CHECK_SIZE(gmem_atomic_request, 32);
CHECK_FIELD(gmem_atomic_request, gpa, 0, 8);
CHECK_FIELD(gmem_atomic_request, operand, 8, 8);
CHECK_FIELD(gmem_atomic_request, expected, 16, 8);
CHECK_FIELD(gmem_atomic_request, op, 24, 1);
CHECK_FIELD(gmem_atomic_request, width, 25, 1);
CHECK_FIELD(gmem_atomic_request, flags, 26, 2);
CHECK_FIELD(gmem_atomic_request, reserved, 28, 4);
CHECK_SIZE(gmem_gpc_atomic_request, 32);
CHECK_FIELD(gmem_gpc_atomic_request, handle, 0, 8);
CHECK_FIELD(gmem_gpc_atomic_request, operand, 8, 8);
CHECK_FIELD(gmem_gpc_atomic_request, expected, 16, 8);
CHECK_FIELD(gmem_gpc_atomic_request, offset, 24, 4);
CHECK_FIELD(gmem_gpc_atomic_request, op, 28, 1);
CHECK_FIELD(gmem_gpc_atomic_request, width, 29, 1);
CHECK_FIELD(gmem_gpc_atomic_request, flags, 30, 2);
CHECK_SIZE(gmem_atomic_reply, 8);
CHECK_FIELD(gmem_atomic_reply, value, 0, 8);

CHECK_SIZE(gmem_partial_progress, 8);
CHECK_FIELD(gmem_partial_progress, bytes_completed, 0, 8);

/* Guest page caches. */
CHECK_SIZE(gmem_gpc_activate_request, 16);
CHECK_FIELD(gmem_gpc_activate_request, gpa, 0, 8);
CHECK_FIELD(gmem_gpc_activate_request, len, 8, 4);
CHECK_FIELD(gmem_gpc_activate_request, flags, 12, 4);

CHECK_SIZE(gmem_gpc_activate_reply, 8);
CHECK_FIELD(gmem_gpc_activate_reply, handle, 0, 8);

CHECK_SIZE(gmem_gpc_deactivate_request, 8);
CHECK_FIELD(gmem_gpc_deactivate_request, handle, 0, 8);

CHECK_SIZE(gmem_gpc_read_request, 16);
CHECK_FIELD(gmem_gpc_read_request, handle, 0, 8);
CHECK_FIELD(gmem_gpc_read_request, offset, 8, 4);
CHECK_FIELD(gmem_gpc_read_request, len, 12, 4);

CHECK_SIZE(gmem_gpc_write_request, 16);
CHECK_FIELD(gmem_gpc_write_request, handle, 0, 8);
CHECK_FIELD(gmem_gpc_write_request, offset, 8, 4);
CHECK_FIELD(gmem_gpc_write_request, len, 12, 4);
CHECK_ARRAY(gmem_gpc_write_request, data, 16);

CHECK_SIZE(gmem_gpc_refresh_request, 24);
CHECK_FIELD(gmem_gpc_refresh_request, handle, 0, 8);
CHECK_FIELD(gmem_gpc_refresh_request, gpa, 8, 8);
CHECK_FIELD(gmem_gpc_refresh_request, len, 16, 4);
CHECK_FIELD(gmem_gpc_refresh_request, flags, 20, 4);

CHECK_SIZE(gmem_gpc_invalidated_event, 16);
CHECK_FIELD(gmem_gpc_invalidated_event, handle, 0, 8);
CHECK_FIELD(gmem_gpc_invalidated_event, reason, 8, 4);
CHECK_FIELD(gmem_gpc_invalidated_event, reserved, 12, 4);

/* Attributes, discard, state. */
CHECK_SIZE(gmem_set_attributes_request, 24);
CHECK_FIELD(gmem_set_attributes_request, gpa, 0, 8);
CHECK_FIELD(gmem_set_attributes_request, size, 8, 8);
CHECK_FIELD(gmem_set_attributes_request, attributes, 16, 8);

CHECK_SIZE(gmem_discard_request, 16);
CHECK_FIELD(gmem_discard_request, gpa, 0, 8);
CHECK_FIELD(gmem_discard_request, size, 8, 8);

CHECK_SIZE(gmem_page_state_request, 16);
CHECK_FIELD(gmem_page_state_request, gpa, 0, 8);
CHECK_FIELD(gmem_page_state_request, npages, 8, 4);
CHECK_FIELD(gmem_page_state_request, flags, 12, 4);

CHECK_SIZE(gmem_page_state_entry, 4);
CHECK_FIELD(gmem_page_state_entry, refcount, 0, 2);
CHECK_FIELD(gmem_page_state_entry, state, 2, 1);
CHECK_FIELD(gmem_page_state_entry, reserved, 3, 1);

CHECK_SIZE(gmem_stats_entry_head, 1);
CHECK_FIELD(gmem_stats_entry_head, name_len, 0, 1);
CHECK_ARRAY(gmem_stats_entry_head, name, 1);

/* Numbers fixed by PROTOCOL.md. */
_Static_assert(GMEM_PROTOCOL_VERSION == 1, "version");
_Static_assert(GMEM_DEFAULT_MAX_PAYLOAD == 1048576, "default max_payload");
_Static_assert(GMEM_OP_HELLO == 1 && GMEM_OP_PING == 2 && GMEM_OP_READ == 3 && GMEM_OP_WRITE == 4, "opcodes 1-4");
_Static_assert(GMEM_OP_GPC_ACTIVATE == 5 && GMEM_OP_GPC_DEACTIVATE == 6 && GMEM_OP_GPC_READ == 7, "opcodes 5-7");
_Static_assert(GMEM_OP_GPC_WRITE == 8 && GMEM_OP_GPC_REFRESH == 9 && GMEM_OP_SET_ATTRIBUTES == 10, "opcodes 8-10");
_Static_assert(GMEM_OP_DISCARD == 11 && GMEM_OP_STATS == 12 && GMEM_OP_PAGE_STATE == 13, "opcodes 11-13");
_Static_assert(GMEM_EV_GPC_INVALIDATED == 0x80, "event opcode");
_Static_assert(GMEM_FLAG_REPLY == 1 && GMEM_FLAG_EVENT == 2, "header flags");
_Static_assert(GMEM_FEATURE_EVENTS == 1, "features");
_Static_assert(GMEM_REGION_NO_DIRECT_MAP == 1 && GMEM_REGION_SECRETMEM == 2, "region flags 0-1");
_Static_assert(GMEM_REGION_READ_ONLY == 4 && GMEM_REGION_RECOVERED == 8, "region flags 2-3");
_Static_assert(GMEM_ATTRIBUTE_PRIVATE == 8, "PRIVATE attribute");
_Static_assert(GMEM_PAGE_PRIVATE == 1 && GMEM_PAGE_ACCESSIBLE == 2, "page state bits");
_Static_assert(GMEM_INVALIDATED_ATTRIBUTES_CHANGED == 1 && GMEM_INVALIDATED_DISCARDED == 2, "reasons");

/* Linux error numbers (the wire's numbering on every platform). */
_Static_assert(GMEM_EPERM == 1 && GMEM_ENOENT == 2 && GMEM_EIO == 5 && GMEM_EBADF == 9, "errno 1-9");
_Static_assert(GMEM_EAGAIN == 11 && GMEM_ENOMEM == 12 && GMEM_EACCES == 13 && GMEM_EFAULT == 14, "errno 11-14");
_Static_assert(GMEM_EBUSY == 16 && GMEM_EEXIST == 17 && GMEM_EINVAL == 22 && GMEM_ENOSPC == 28, "errno 16-28");
_Static_assert(GMEM_ERANGE == 34 && GMEM_EPROTO == 71 && GMEM_EMSGSIZE == 90, "errno 34-90");
_Static_assert(GMEM_EPROTONOSUPPORT == 93 && GMEM_EOPNOTSUPP == 95 && GMEM_ECONNRESET == 104, "errno 93-104");
_Static_assert(GMEM_ESHUTDOWN == 108 && GMEM_ETIMEDOUT == 110, "errno 108-110");
_Static_assert(GMEM_EALREADY == 114 && GMEM_ESTALE == 116, "errno 114-116");

#ifdef __linux__
#include <errno.h>
/* On Linux the host's numbers are the wire's. */
_Static_assert(GMEM_EPERM == EPERM && GMEM_ENOENT == ENOENT && GMEM_EIO == EIO && GMEM_EBADF == EBADF, "host 1");
_Static_assert(GMEM_EAGAIN == EAGAIN && GMEM_ENOMEM == ENOMEM && GMEM_EACCES == EACCES, "host 2");
_Static_assert(GMEM_EFAULT == EFAULT && GMEM_EBUSY == EBUSY && GMEM_EEXIST == EEXIST, "host 3");
_Static_assert(GMEM_EINVAL == EINVAL && GMEM_ENOSPC == ENOSPC && GMEM_ERANGE == ERANGE, "host 4");
_Static_assert(GMEM_EPROTO == EPROTO && GMEM_EMSGSIZE == EMSGSIZE && GMEM_EPROTONOSUPPORT == EPROTONOSUPPORT, "host 5");
_Static_assert(GMEM_EOPNOTSUPP == EOPNOTSUPP && GMEM_ECONNRESET == ECONNRESET && GMEM_ESHUTDOWN == ESHUTDOWN, "host 6");
_Static_assert(GMEM_ETIMEDOUT == ETIMEDOUT && GMEM_EALREADY == EALREADY && GMEM_ESTALE == ESTALE, "host 7");
#endif
