/*
 * gmem.pml -- the refcounted map/unmap protocol of gmemd (GmemCore).
 *
 * Safety property: nobody ever copies through a page whose real protection
 * is PROT_NONE: assert(accessible[p]) at every ACCESS.
 * Invariants, checked at every folio unlock and at every quiescent state
 * (no actor inside an operation), for each page p:
 *   - protection:  nr[p]          => private, count==1, owned by the backlog
 *                  attr==SHARED   => accessible
 *                  attr==PRIVATE  => (accessible <=> count>0)
 *   - accounting:  count == #valid caches on p + refs held by actors in
 *                  flight (ghost) + the backlog's parked reference
 *   - count never underflows (asserted before every decrement);
 *   - at the very end, every cache is deactivated and, once the zap backlog
 *     is drained, count==0 on every page.
 *
 * Actors: 3 (two VCPUs, one HOST), 2 pages, each actor does a bounded
 * nondeterministic sequence of operations.  Every protection call may fail,
 * and a failed call may have taken effect on the page or not (both are
 * explored), as PageTable assumes of a failed mprotect.
 *
 * Compile-time knobs (spin -DNAME=...):
 *   FOLIO  pages per folio (= per lock), 1 or 2          (default 1)
 *   K      operations per VCPU actor (+ final deactivate) (default 2)
 *   KH     operations by the HOST actor                   (default K)
 *   ALL_OPS  every actor may do every operation (exhaustive only for K=1)
 *   FINE     do not run critical sections as one atomic step (see CS_BEGIN)
 *   MUTANT_NO_COUNT          no refcount: every release zaps a private page
 *                            (acquire already restores whenever the page is
 *                            believed inaccessible)
 *   MUTANT_UNLOCKED_GPC_READ GPC read checks `valid` under the lock but
 *                            copies after dropping it
 *   MUTANT_INVAL_KEEPS_REF   invalidation clears `valid` but forgets to drop
 *                            the cache's reference (a leak, not a fault)
 *   MUTANT_IGNORE_NR         acquire ignores needsRestore: trusts the record
 *                            after a failed zap that did take effect
 *   ACCESS_ONLY              keep only the ACCESS assertions (shows that the
 *                            safety property alone catches a mutant)
 *
 * printf("MSG: ...") lines make counterexamples readable (spin -t); pan does
 * not execute them during verification.
 */

#define NPAGE 2
#define NACT  3

#ifndef FOLIO
#define FOLIO 1
#endif
#if FOLIO == 1
#define NFOLIO 2
#elif FOLIO == 2
#define NFOLIO 1
#else
#error "FOLIO must be 1 or 2"
#endif

#ifndef K
#define K 2             /* operations per VCPU actor */
#endif
#ifndef KH
#define KH K            /* operations by the HOST actor */
#endif

mtype = { PRIVATE, SHARED };

#define folio(p) ((p) / FOLIO)

/* ---- per-page state: PageRecord (guarded by the folio lock) ---- */
mtype attr[NPAGE];        /* isShared */
byte count[NPAGE];        /* count */
bool accessible[NPAGE];   /* the REAL protection (PROT_NONE == false); the
                           * record's isAccessible equals it unless nr */
bool nr[NPAGE];           /* needsRestore: a failed protection call left the
                           * real protection unknown; restore before trusting */
bool backlog[NPAGE];      /* the zap backlog holds one reference on the page */

bool lk[NFOLIO];          /* folio locks */

/* ---- GPCs: one per actor (cache index == actor id).
 * cpage and cattached are written only by the owning actor (the model, like
 * the Swift API, assumes one owner per cache), so the owner reads them
 * without the lock.  cvalid is written under the folio lock of cpage.
 * A cache is "attached" from activate to deactivate; valid <=> it holds one
 * reference on cpage (Swift: state == .valid and on the page's list). */
byte cpage[NACT];
bool cattached[NACT];
bool cvalid[NACT];

/* ---- ghost state (not in the implementation) ---- */
byte held[NPAGE];         /* refs held by actors between acquire and release/attach */
byte busy;                /* number of actors inside an operation */

/* ------------------------------------------------------------------ */
/* invariants                                                          */

#define PAGE_PROT_OK(p) \
    (nr[p] -> (attr[p] == PRIVATE && backlog[p] && count[p] == 1) \
           : ((attr[p] == SHARED) -> accessible[p] : (accessible[p] == (count[p] > 0))))

#define VALID_ON(c, p) ((cattached[c] && cvalid[c] && cpage[c] == (p)) -> 1 : 0)
#define NVALID(p) (VALID_ON(0, p) + VALID_ON(1, p) + VALID_ON(2, p))
#define REFS_OK(p) (count[p] == NVALID(p) + held[p] + backlog[p])

/* every assertion except the ACCESS one goes through INV, so that
 * -DACCESS_ONLY can show that the safety property alone catches a mutant */
#ifndef ACCESS_ONLY
#define INV(e) assert(e)
#else
#define INV(e) skip
#endif

inline check_page(pg) {
#ifndef ACCESS_ONLY
    if
    :: !PAGE_PROT_OK(pg) ->
        printf("MSG: INVARIANT BROKEN page %d: attr=%e count=%d accessible=%d nr=%d backlog=%d\n",
               pg, attr[pg], count[pg], accessible[pg], nr[pg], backlog[pg])
    :: !REFS_OK(pg) ->
        printf("MSG: INVARIANT BROKEN page %d: count=%d but valid caches=%d held=%d backlog=%d\n",
               pg, count[pg], NVALID(pg), held[pg], backlog[pg])
    :: else
    fi;
#endif
    INV(PAGE_PROT_OK(pg));
    INV(REFS_OK(pg))
}

/* ------------------------------------------------------------------ */
/* locks                                                               */

inline lock(f) {
    atomic { !lk[f] -> lk[f] = true }
}

/* A critical section runs as one atomic step once its lock is taken
 * (CS_BEGIN lock(..) ... unlock(..) CS_END).  This is a sound reduction for
 * this model: every shared variable written inside is protected by that
 * lock.  The only lock-free reads of such variables are
 *  (a) ACCESS reading accessible[p]: a violation is a read of `false`; no
 *      section sets accessible[p] to true after setting it to false, so a
 *      `false` seen in the middle of a section is also there at its end, and
 *      the reader's control flow does not depend on the value (it only
 *      asserts) -- every violation of the fine-grained model is one of the
 *      atomic model;
 *  (b) the owner reading its own cpage/cattached, which only it writes;
 *  (c) the HOST's backlog[p] guard, which drain_backlog re-checks under the
 *      lock.
 * If a section blocks on a second lock (lock2), atomicity is broken there,
 * as it must be.  -DFINE turns this off; check.sh runs it at K=1 as a
 * cross-check. */
#ifdef FINE
#define CS_BEGIN
#define CS_END
#else
#define CS_BEGIN atomic {
#define CS_END   }
#endif

/* The invariants hold for every page of a folio whenever its lock is free,
 * so check them at each unlock (stronger than quiescence). */
inline unlock(f) {
    d_step {
        check_page(f * FOLIO);
#if FOLIO == 2
        check_page(f * FOLIO + 1);
#endif
        lk[f] = false
    }
}

/* lock the folios of pages a and b in ascending folio order (once if equal):
 * PageTable.withFolios(of:_:_:) */
inline lock2(a, b) {
    if
    :: folio(a) == folio(b) -> lock(folio(a))
    :: folio(a) <  folio(b) -> lock(folio(a)); lock(folio(b))
    :: folio(a) >  folio(b) -> lock(folio(b)); lock(folio(a))
    fi
}
inline unlock2(a, b) {
    unlock(folio(a));
    if
    :: folio(a) != folio(b) -> unlock(folio(b))
    :: else
    fi
}

/* ------------------------------------------------------------------ */
/* protection calls (caller holds the folio lock)                      */

/* A protection call failed and the page's real protection is unknown: park
 * it in the zap backlog with one reference (count 0 -> 1) and needsRestore
 * (PageTable.zapUnused / undoPartialRestore failure paths + park). */
inline park_unknown(pg) {
    INV(count[pg] == 0 && !backlog[pg]);
    count[pg] = 1; backlog[pg] = true; nr[pg] = true;
    if
    :: accessible[pg] = true            /* the call did nothing */
    :: accessible[pg] = false           /* the call took effect after all */
    fi;
    printf("MSG:   page %d parked in the zap backlog (real protection unknown: %d)\n",
           pg, accessible[pg])
}

/* restore = PageTable.restoreLocked: mprotect read-write.  On failure no
 * count changes; a page that was believed inaccessible is zapped back
 * (undoPartialRestore), and if that fails too it is parked.  A page that was
 * already needsRestore stays so (its real protection stays unknown). */
inline restore(pg, ok) {
    if
    :: accessible[pg] = true; nr[pg] = false; ok = true
    :: ok = false;
       printf("MSG:   restore(page %d) FAILED\n", pg);
       if
       :: nr[pg] -> accessible[pg] = true
       :: nr[pg] -> accessible[pg] = false
       :: !nr[pg]                       /* undone: still inaccessible */
       :: !nr[pg] -> park_unknown(pg)   /* partial effect, and the undo failed */
       fi
    fi
}

/* zap = the protection call in PageTable.zapUnused: mprotect PROT_NONE. */
inline zap(pg) {
    if
    :: accessible[pg] = false; nr[pg] = false;
       printf("MSG:   zap(page %d)\n", pg)
    :: printf("MSG:   zap(page %d) FAILED\n", pg);
       park_unknown(pg)
    fi
}

/* The record's isAccessible: what PageTable believes.  needsRestore is set
 * only together with isAccessible, and otherwise the belief is the truth. */
#define BELIEVED(pg) (accessible[pg] || nr[pg])

#ifdef MUTANT_NO_COUNT
#define UNUSED(pg)        (attr[pg] == PRIVATE && BELIEVED(pg))   /* count ignored */
#define NEEDS_RESTORE(pg) (!BELIEVED(pg) || nr[pg])
#elif defined(MUTANT_IGNORE_NR)
#define UNUSED(pg)        (count[pg] == 0 && attr[pg] == PRIVATE && BELIEVED(pg))
#define NEEDS_RESTORE(pg) (!BELIEVED(pg))
#else
/* PageTable.needsZap and PageTable.needsRestore.  While !nr, the invariant
 * makes !BELIEVED the brief's "private && count == 0". */
#define UNUSED(pg)        (count[pg] == 0 && attr[pg] == PRIVATE && BELIEVED(pg))
#define NEEDS_RESTORE(pg) (!BELIEVED(pg) || nr[pg])
#endif

/* zap the page if it is private and nobody uses it */
inline zap_unused(pg) {
    if
    :: UNUSED(pg) -> zap(pg)
    :: else
    fi
}

/* drop one reference, no zap (PageTable.releaseLocked's decrement, or the
 * decrement in GuestMemory.invalidateLocked) */
inline unref(pg) {
    INV(count[pg] > 0);                 /* no underflow */
    count[pg]--
}

/* ------------------------------------------------------------------ */
/* PageTable.acquire(_:) / PageTable.release(_:)                       */

inline acquire_locked(pg, ok) {
    if
    :: NEEDS_RESTORE(pg) -> restore(pg, ok)
    :: else -> ok = true
    fi;
    if
    :: ok -> INV(count[pg] < 255); count[pg]++; held[pg]++
    :: else                             /* error, no count changes */
    fi;
    printf("MSG: actor %d: acquire(page %d) ok=%d count=%d accessible=%d\n",
           me, pg, ok, count[pg], accessible[pg])
}

inline release_locked(pg) {
    unref(pg);
    zap_unused(pg);
    printf("MSG: actor %d: release(page %d) count=%d accessible=%d\n",
           me, pg, count[pg], accessible[pg])
}

inline acquire(pg, ok) {
    CS_BEGIN
    lock(folio(pg));
    acquire_locked(pg, ok);
    unlock(folio(pg))
    CS_END
}

inline release(pg) {
    CS_BEGIN
    lock(folio(pg));
    held[pg]--;
    release_locked(pg);
    unlock(folio(pg))
    CS_END
}

/* The copy itself (memcpy to/from the daemon's mapping). */
inline access(pg) {
    printf("MSG: actor %d: ACCESS page %d (accessible=%d)\n", me, pg, accessible[pg]);
    assert(accessible[pg])
}

/* ------------------------------------------------------------------ */
/* GuestMemory.read(at:into:) / write(at:from:) on pages lo..hi         */
/* The copy runs WITHOUT any lock.  Swift acquires a multi-page range in */
/* one section over all its folio locks; the model acquires page by page */
/* in ascending order, which allows every interleaving Swift allows.     */

inline transient(lo, hi, ok) {
    acquire(lo, ok);
    if
    :: ok && hi != lo ->
        acquire(hi, ok);
        if
        :: !ok -> release(lo)           /* undo the first page */
        :: else
        fi
    :: else
    fi;
    if
    :: ok ->
        /* one step for both pages: each read is still checked, and
         * splitting them cannot hide a violation (the reads only assert) */
        atomic {
            access(lo);
            if :: hi != lo -> access(hi) :: else fi
        };
        release(lo);
        if :: hi != lo -> release(hi) :: else fi
    :: else
    fi
}

/* ------------------------------------------------------------------ */
/* GPC operations on the actor's own cache `me`                        */

/* GuestMemory.activateCache(at:length:).  Swift acquires and attaches in
 * one section; the model splits them (a superset of interleavings). */
inline activate(me, pg, ok) {
    acquire(pg, ok);
    if
    :: ok ->
        CS_BEGIN
        lock(folio(pg));
        cpage[me] = pg; cattached[me] = true; cvalid[me] = true;
        held[pg]--;                     /* our reference now belongs to the cache */
        printf("MSG: actor %d: activate: cache on page %d, valid\n", me, pg);
        unlock(folio(pg))
        CS_END
    :: else
    fi
}

/* GuestMemory.read(cache:offset:into:) / write(cache:offset:from:) */
inline gpc_access(me, pg, v) {
#ifndef MUTANT_UNLOCKED_GPC_READ
    CS_BEGIN
    pg = cpage[me];                     /* owner-only field: no lock needed */
    lock(folio(pg));
    if
    :: cvalid[me] -> access(pg)         /* under the lock: no invalidation can interleave */
    :: else -> printf("MSG: actor %d: GPC access: ESTALE\n", me)
    fi;
    unlock(folio(pg))
    CS_END
#else
    CS_BEGIN
    pg = cpage[me];
    lock(folio(pg));
    v = cvalid[me];
    unlock(folio(pg))
    CS_END;
    if :: v -> access(pg) :: else fi    /* BUG: lock not held across the copy */
#endif
}

/* GuestMemory.refresh(_:to:length:).  The new page is acquired before the
 * old one is released, so a refresh onto the same page never zaps it.
 * Swift does the acquire inside the two-folio section; the model does it in
 * its own section first (a superset of interleavings). */
inline refresh(me, pg, q, ok, v) {
    acquire(q, ok);
    if
    :: ok ->
        CS_BEGIN
        pg = cpage[me];                 /* owner-only field */
        lock2(pg, q);
        v = cvalid[me];
        cpage[me] = q; cvalid[me] = true;   /* detach from pg, attach to q */
        held[q]--;
        printf("MSG: actor %d: refresh: cache page %d -> %d (was valid=%d)\n", me, pg, q, v);
        if
        :: v -> release_locked(pg)
        :: else
        fi;
        unlock2(pg, q)
        CS_END
    :: else                             /* error: cache unchanged */
    fi
}

/* GuestMemory.deactivate(_:) */
inline deactivate(me, pg, v) {
    CS_BEGIN
    pg = cpage[me];                     /* owner-only field */
    lock(folio(pg));
    v = cvalid[me];
    cattached[me] = false; cvalid[me] = false;
    printf("MSG: actor %d: deactivate cache on page %d (was valid=%d)\n", me, pg, v);
    if
    :: v -> release_locked(pg)
    :: else
    fi;
    unlock(folio(pg))
    CS_END
}

/* ------------------------------------------------------------------ */
/* invalidation: GuestMemory.invalidateLocked (caller holds the lock)  */
/* every valid cache on pg becomes invalid and drops its reference;    */
/* no zap here: the caller zaps the unused pages once afterwards.      */

inline invalidate_caches(pg, c) {
    c = 0;
    do
    :: c < NACT ->
        if
        :: cattached[c] && cvalid[c] && cpage[c] == pg ->
            cvalid[c] = false;
            printf("MSG:   invalidate cache %d on page %d\n", c, pg);
#ifndef MUTANT_INVAL_KEEPS_REF
            unref(pg)
#else
            skip                        /* BUG: reference leaked */
#endif
        :: else
        fi;
        c++
    :: else -> break
    od
}

/* GuestMemory.setAttributes(_:to:) -> convertLocked on pages lo..hi.
 * Becoming shared restores first, so a failure leaves every page as it was
 * (the pages restored for this call are zapped back; a failed zap parks). */
inline set_attributes(lo, hi, to, pg, c, ok) {
    CS_BEGIN
    lock2(lo, hi);
    printf("MSG: actor %d: setAttributes(pages %d..%d -> %e)\n", me, lo, hi, to);
    ok = true;
    if
    :: to == SHARED ->
        pg = lo;
        do
        :: ok && pg <= hi ->
            if
            :: attr[pg] == PRIVATE && NEEDS_RESTORE(pg) -> restore(pg, ok)
            :: else
            fi;
            pg++
        :: else -> break
        od;
        if
        :: !ok ->                       /* error: put back what we restored */
            zap_unused(lo);
            if :: hi != lo -> zap_unused(hi) :: else fi
        :: else
        fi
    :: else
    fi;
    if
    :: ok ->
        pg = lo;
        do
        :: pg <= hi ->
            if
            :: attr[pg] != to -> attr[pg] = to; invalidate_caches(pg, c)
            :: else
            fi;
            pg++
        :: else -> break
        od;
        if
        :: to == PRIVATE ->             /* pages nobody holds any more are zapped */
            zap_unused(lo);
            if :: hi != lo -> zap_unused(hi) :: else fi
        :: else
        fi
    :: else
    fi;
    unlock2(lo, hi)
    CS_END
}

/* GuestMemory.discard(_:) -> discardLocked.  Zeroing is not modeled. */
inline discard(pg, c) {
    CS_BEGIN
    lock(folio(pg));
    printf("MSG: actor %d: discard(page %d)\n", me, pg);
    invalidate_caches(pg, c);
    zap_unused(pg);
    unlock(folio(pg))
    CS_END
}

/* PageTable.retryBacklog: release the parked reference (zap may fail again) */
inline drain_backlog(pg) {
    CS_BEGIN
    lock(folio(pg));
    if
    :: backlog[pg] ->
        printf("MSG: actor %d: zap backlog retry (page %d)\n", me, pg);
        backlog[pg] = false;
        release_locked(pg)
    :: else
    fi;
    unlock(folio(pg))
    CS_END
}

/* ------------------------------------------------------------------ */
/* quiescence: `busy` counts actors inside an operation; the actor that  */
/* brings it back to 0 checks the invariants on every page.              */

inline begin_op() {
    busy++
}

/* also forgets the actor's scratch locals, so that dead values do not
 * multiply the state space */
inline end_op() {
    d_step {
        pg = 0; c = 0; ok = false; v = false;
        n++;
        busy--;
        if
        :: busy == 0 ->
            INV(!lk[0] && !lk[NFOLIO - 1]);
            INV(held[0] == 0 && held[1] == 0);
            check_page(0);
            check_page(1)
        :: else
        fi
    }
}

/* ------------------------------------------------------------------ */
/* actors                                                              */
/*                                                                     */
/* Two roles.  A VCPU does what a vCPU thread does through its client:  */
/* transient READ/WRITE and the life cycle of its own GPC.  The HOST    */
/* (VMM control thread) converts, discards, retries the zap backlog and */
/* also does transient READ/WRITE.  -DALL_OPS gives every actor both    */
/* menus (exhaustive only for K=1).                                     */

#define VCPU 0
#define HOST 1

inline vcpu_op() {
    if
    /* transient read/write: page 0, page 1, or straddling both */
    :: transient(0, 0, ok)
    :: transient(1, 1, ok)
    :: transient(0, 1, ok)
    /* GPC life cycle on the actor's own cache */
    :: !cattached[me] -> activate(me, 0, ok)
    :: !cattached[me] -> activate(me, 1, ok)
    :: cattached[me]  -> gpc_access(me, pg, v)
    :: cattached[me]  -> refresh(me, pg, 0, ok, v)
    :: cattached[me]  -> refresh(me, pg, 1, ok, v)
    :: cattached[me]  -> deactivate(me, pg, v)
    fi
}

inline host_op() {
    if
    :: transient(0, 0, ok)
    :: transient(1, 1, ok)
    :: transient(0, 1, ok)
    /* conversions, both directions, one page or the whole range */
    :: set_attributes(0, 0, SHARED,  pg, c, ok)
    :: set_attributes(1, 1, SHARED,  pg, c, ok)
    :: set_attributes(0, 1, SHARED,  pg, c, ok)
    :: set_attributes(0, 0, PRIVATE, pg, c, ok)
    :: set_attributes(1, 1, PRIVATE, pg, c, ok)
    :: set_attributes(0, 1, PRIVATE, pg, c, ok)
    /* discard */
    :: discard(0, c)
    :: discard(1, c)
    /* zap backlog retry */
    :: backlog[0] -> drain_backlog(0)
    :: backlog[1] -> drain_backlog(1)
    fi
}

#ifdef ALL_OPS
#define CAN(r) true
#else
#define CAN(r) (role == (r))
#endif

#define NOPS (role == HOST -> KH : K)

proctype actor(byte me; byte role) {
    byte n, pg, c;
    bool ok, v;

    do
    :: atomic { n < NOPS && CAN(VCPU) -> begin_op() }; vcpu_op(); end_op()
    :: atomic { n < NOPS && CAN(HOST) -> begin_op() }; host_op(); end_op()
    :: else -> break
    od;

    /* teardown: every cache is deactivated */
    if
    :: cattached[me] -> begin_op(); deactivate(me, pg, v); end_op()
    :: else
    fi
}

init {
    byte p;

    /* nondeterministic initial attributes; private pages start zapped */
    for (p : 0 .. NPAGE - 1) {
        if
        :: attr[p] = PRIVATE; accessible[p] = false
        :: attr[p] = SHARED;  accessible[p] = true
        fi;
        printf("MSG: init: page %d is %e\n", p, attr[p])
    }

    atomic {
        run actor(0, VCPU);
        run actor(1, VCPU);
        run actor(2, HOST)
    }

    (_nr_pr == 1);                      /* all actors finished */

    /* final state: all caches deactivated, only parked references left */
    for (p : 0 .. NPAGE - 1) {
        INV(!cattached[0] && !cattached[1] && !cattached[2]);
        check_page(p);
        INV(count[p] == backlog[p]);
        /* a last backlog retry, which succeeds */
        if
        :: backlog[p] ->
            backlog[p] = false; count[p]--;
            if
            :: attr[p] == PRIVATE && count[p] == 0 -> accessible[p] = false; nr[p] = false
            :: else
            fi
        :: else
        fi;
        INV(count[p] == 0);
        check_page(p)
    }
}
