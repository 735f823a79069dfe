/*
 * guest.S - the mpvmm guest: 16-bit real mode, no OS, loaded at 0x1000 and entered with BX = the vCPU's index.
 *
 * Each vCPU owns an 8 KiB window of guest memory at 0x10000 + index * 0x2000 (its DS and ES):
 *   +0x0000  mailbox   u16 len, u8 seed, u8 pad, u8 status (the device's answer: 1 good, 2 bad), ...
 *   +0x0100  request   len bytes the guest writes: seed, seed + 1, ...   (stays private: gmemd restores it per access)
 *   +0x1000  response  len bytes the device writes: the complement of each request byte (converted to shared first)
 *
 * Ports: out 0x11 (16-bit) asks the VMM to convert that page number to shared (SET_ATTRIBUTES through gmemd);
 * out 0x10 kicks the device process (the VMM forwards the kick and returns once the device has answered);
 * out 0xe9 prints a byte; out 0xf4 reports the verdict (0 pass, 1 fail), then the vCPU halts.
 */
    .code16
    .set ROUNDS, 64
    .text
    .globl _start
_start:
    cli
    mov     %bx, %bp                /* bp: the vCPU index, kept throughout */
    mov     %bx, %ax
    shl     $9, %ax
    add     $0x1000, %ax
    mov     %ax, %ds                /* ds = es = (0x10000 + index * 0x2000) >> 4 */
    mov     %ax, %es

    mov     %bp, %ax                /* the response page: (0x11000 + index * 0x2000) >> 12 */
    shl     $1, %ax
    add     $0x11, %ax
    mov     $0x11, %dx
    out     %ax, %dx

    mov     $1, %di                 /* di: the round, 1 .. ROUNDS */
round:
    mov     %di, %ax                /* len = 16 + (round * 37) & 0x7ff: mixed sizes, 53 to 2063 bytes */
    mov     $37, %cx
    mul     %cx
    and     $0x7ff, %ax
    add     $16, %ax
    mov     %ax, %cx
    movw    %ax, 0
    mov     %di, %ax                /* seed = round * 7 + index */
    mov     $7, %dl
    mul     %dl
    add     %bp, %ax
    movb    %al, 2
    movb    $0, 4

    mov     $0x100, %si             /* the request: seed, seed + 1, ... */
fill:
    movb    %al, (%si)
    inc     %al
    inc     %si
    loop    fill

    mov     %bp, %ax                /* kick; returns once the device answered */
    out     %al, $0x10
    cmpb    $1, 4
    jne     fail

    movw    0, %cx                  /* the response must be the complement of the request */
    movb    2, %al
    mov     $0x1000, %si
check:
    mov     %al, %ah
    not     %ah
    cmpb    %ah, (%si)
    jne     fail
    inc     %al
    inc     %si
    loop    check

    inc     %di
    cmp     $ROUNDS + 1, %di
    jne     round

    mov     $passed, %si
    call    print
    mov     $0, %al
    out     %al, $0xf4
    hlt

fail:
    mov     $failed, %si
    call    print
    mov     $1, %al
    out     %al, $0xf4
    hlt

print:                              /* prints the string at cs:si */
    movb    %cs:(%si), %al
    test    %al, %al
    jz      1f
    out     %al, $0xe9
    inc     %si
    jmp     print
1:  ret

passed: .asciz "guest: 64 requests checked\n"
failed: .asciz "guest: a response was wrong\n"
