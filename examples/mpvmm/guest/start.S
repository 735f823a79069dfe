/*
 * start.S - the guest's entry. mpvmm-vcpu enters it in 64-bit mode at CPL 3 with IOPL 3 (so OUT reaches the VMM
 * without an IDT), paging on an identity map it built, RSP at the vCPU's own stack and RBX = the vCPU's index:
 * no boot code is needed. guest_main() reports its verdict through a port, after which the VMM stops the vCPU.
 */
    .code64
    .section .text.start, "ax"
    .globl _start
_start:
    cld
    mov     %rbx, %rdi
    call    guest_main
1:  jmp     1b

    /* No executable stack: the guest image never runs on a host stack, but ld warns without this note. */
    .section .note.GNU-stack, "", @progbits
