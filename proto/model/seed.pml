/*
 * seed.pml -- the single-bit design of the 2024 Linux RFC ("KVM: gmem:
 * Temporarily restore direct map entries when needed"), which gmemd's
 * refcounted protocol replaces.
 *
 * One folio, one page, one bit: `removed` (the page is out of the direct
 * map), no count.  The RFC keeps two invariants to stay safe:
 *   (1) only ONE gfn_to_pfn_cache may exist per pfn: gpc_map of an already
 *       restored page returns -EINVAL;
 *   (2) every non-GPC path that restores the page does the whole
 *       restore->access->zap under the folio lock.
 * Each invariant is a switch here, so the model can show what each one buys:
 *
 *   (default)                    two GPCs allowed on the same page: the guard
 *                                of (1) is gone -- which is exactly what a
 *                                multi-vCPU guest needs (e.g. every vCPU's
 *                                pvclock GPC on the one page holding the
 *                                per-cpu array).  Spin finds the commit
 *                                message's map(A) map(B) read(A) unmap(A)
 *                                read(B) [BOOM].
 *   -DSEED_GUARD                 the RFC as posted: (1) and (2) hold.  Safe,
 *                                but the second GPC is refused.
 *   -DSEED_GUARD -DSEED_UNLOCKED_TRANSIENT
 *                                (1) holds, (2) does not: the transient
 *                                kvm_read_guest restores under the lock but
 *                                copies after dropping it (as gmemd does,
 *                                and as any path that must not hold a folio
 *                                lock across a sleeping copy would) -> two
 *                                transient readers: the first one's zap
 *                                pulls the page from under the second.
 */

#define NACT 2          /* two vCPUs */
#ifndef K
#define K 3             /* operations per vCPU */
#endif

bool removed = true;    /* the folio's bit: out of the direct map */
bool accessible = false;/* the real protection */
bool lk;                /* folio lock */
bool mapped[NACT];      /* vCPU i's GPC has a mapping of the page */

inline lock()   { atomic { !lk -> lk = true } }
inline unlock() { lk = false }

inline restore() { accessible = true }
inline zap()     { accessible = false }

/* the copy itself; the caller has printed what kind of access it is */
inline access() {
    assert(accessible)
}

/* kvm_gpc_activate/refresh -> gmem "map" */
inline gpc_map(me) {
    atomic {
        lock();
        if
        :: removed ->
            restore(); removed = false; mapped[me] = true;
            printf("MSG: vcpu %d: gpc_map: restore, clear bit\n", me)
        :: else ->
#ifdef SEED_GUARD
            printf("MSG: vcpu %d: gpc_map: -EINVAL (page already mapped by a GPC)\n", me)
#else
            mapped[me] = true;      /* bit already clear: nothing to restore */
            printf("MSG: vcpu %d: gpc_map: bit already clear, share the mapping\n", me)
#endif
        fi;
        unlock()
    }
}

/* kvm_gpc_deactivate -> gmem "unmap" */
inline gpc_unmap(me) {
    atomic {
        lock();
        zap(); removed = true; mapped[me] = false;
        printf("MSG: vcpu %d: gpc_unmap: zap, set bit\n", me);
        unlock()
    }
}

/* access through the GPC's kernel mapping (gpc->lock, not the folio lock) */
inline gpc_read(me) {
    atomic {
        printf("MSG: vcpu %d: gpc_read: access (accessible=%d)\n", me, accessible);
        access()
    }
}

/* kvm_read_guest / kvm_write_guest on the page */
inline transient(me, r) {
#ifndef SEED_UNLOCKED_TRANSIENT
    atomic {
        lock();
        if
        :: removed ->
            restore();
            printf("MSG: vcpu %d: transient: restore (locked)\n", me)
        :: else ->                  /* a GPC has it mapped */
            printf("MSG: vcpu %d: transient: bit clear, a GPC has it mapped (locked)\n", me)
        fi
    };
    atomic {                        /* still under the folio lock */
        printf("MSG: vcpu %d: transient: access (accessible=%d)\n", me, accessible);
        access()
    };
    atomic {
        if
        :: removed -> zap(); printf("MSG: vcpu %d: transient: zap (locked)\n", me)
        :: else
        fi;
        unlock()
    }
#else
    atomic {
        lock();
        r = removed;
        if
        :: r -> restore(); printf("MSG: vcpu %d: transient: restore, unlock\n", me)
        :: else -> printf("MSG: vcpu %d: transient: bit clear, a GPC has it mapped, unlock\n", me)
        fi;
        unlock()
    };
    atomic {                        /* WITHOUT the folio lock */
        printf("MSG: vcpu %d: transient: access (accessible=%d)\n", me, accessible);
        access()
    };
    if
    :: r ->
        atomic {
            lock();
            zap(); printf("MSG: vcpu %d: transient: lock, zap\n", me);
            unlock()
        }
    :: else
    fi
#endif
}

proctype vcpu(byte me) {
    byte n;
    bool r;
    do
    :: n < K ->
        if
        :: !mapped[me] -> gpc_map(me)
        :: mapped[me]  -> gpc_read(me)
        :: mapped[me]  -> gpc_unmap(me)
        :: transient(me, r)
        fi;
        n++
    :: else -> break
    od
}

init {
    atomic {
        run vcpu(0);
        run vcpu(1)
    }
}
